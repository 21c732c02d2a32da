"""FLEET_ALLOWED_HOSTS against real local HTTP servers: a webhook notifier and an http gate
deliver to an allowed host, and one to a refused host is refused before any connection
(the server sees no request), as is a redirect from an allowed host to a refused one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fleet.events.model import Event, EventType, Notification, NotifierTarget
from fleet.plugin import FleetPlugins, GateSpec, GateTarget, GateVerdict, MetricProvider
from tests.support.gates import ProbeServer, drive, wave_context
from tests.support.notify_servers import Receiver


@pytest.fixture(scope="module")
def plugins() -> FleetPlugins:
    return FleetPlugins.load(entry_points=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def probe() -> Iterator[ProbeServer]:
    server = ProbeServer()
    server.start()
    yield server
    server.stop()


class Redirector:
    """Answers every request with `302 Location: <to>` and counts them."""

    def __init__(self, to: str) -> None:
        owner = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner.hits += 1
                self.send_response(302)
                self.send_header("Location", to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def note() -> Notification:
    event = Event(EventType.UNIT_FAILED, "boom", fleet="acme", bundle="web", cluster="eu-1")
    return Notification(event.type, "web: boom", event.level, (event,), fleet="acme")


def webhook(url: str) -> NotifierTarget:
    return NotifierTarget("audit", "webhook", url=url, retries=2, backoff=0.01)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def test_a_webhook_to_an_allowed_host_delivers(
    plugins: FleetPlugins, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "FLEET_ALLOWED_HOSTS", f"hooks.example.com, 127.0.0.1:{port_of(receiver.url)}"
    )
    delivery = plugins.notify(webhook(receiver.url + "/hook"), note())
    assert delivery is not None and delivery.ok, delivery
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_webhook_to_a_refused_host_never_connects(
    plugins: FleetPlugins, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_ALLOWED_HOSTS", "hooks.example.com, 10.0.0.0/8")
    delivery = plugins.notify(webhook(receiver.url + "/hook?token=s3cret"), note())
    assert delivery is not None and not delivery.ok
    port = port_of(receiver.url)
    assert delivery.message == f"refused: 127.0.0.1:{port} is not in FLEET_ALLOWED_HOSTS"
    assert delivery.attempts == 0  # final: not retried
    assert receiver.requests == []


def test_a_redirect_is_not_followed(
    plugins: FleetPlugins, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    hop = Redirector(receiver.url + "/internal")
    try:
        monkeypatch.setenv("FLEET_ALLOWED_HOSTS", f"127.0.0.1:{hop.port}")
        delivery = plugins.notify(webhook(f"http://127.0.0.1:{hop.port}/hook"), note())
        assert delivery is not None and not delivery.ok
        assert delivery.message == f"127.0.0.1:{hop.port}: HTTP 302"
        assert hop.hits == 1 and receiver.requests == []
    finally:
        hop.stop()


def test_a_webhook_to_link_local_is_refused_without_the_setting(
    plugins: FleetPlugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEET_ALLOWED_HOSTS", raising=False)
    delivery = plugins.notify(webhook("http://169.254.169.254/latest/meta-data/"), note())
    assert delivery is not None and not delivery.ok
    assert "link-local" in delivery.message and "FLEET_ALLOWED_HOSTS" in delivery.message


def test_an_http_gate_checks_only_allowed_hosts(
    plugins: FleetPlugins, probe: ProbeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = GateSpec(type="http", name="smoke", url=probe.url + "/status/204/{{cluster}}")
    target = GateTarget("canary", {}, "shop")
    monkeypatch.setenv("FLEET_ALLOWED_HOSTS", f"127.0.0.1:{port_of(probe.url)}")
    gate = plugins.gate(spec, {})
    assert gate is not None
    verdict, _ = drive(gate, wave_context(target))
    assert verdict.verdict is GateVerdict.PASSED, verdict.message
    assert [r.path for r in probe.requests] == ["/status/204/canary"]

    monkeypatch.setenv("FLEET_ALLOWED_HOSTS", "*.apps.example.com")
    gate = plugins.gate(spec, {})
    assert gate is not None
    verdict, _ = drive(gate, wave_context(target))
    assert verdict.verdict is GateVerdict.FAILED
    assert f"refused: 127.0.0.1:{port_of(probe.url)} is not in FLEET_ALLOWED_HOSTS" in (
        verdict.message
    )
    assert len(probe.requests) == 1  # no second request


def test_a_metric_provider_outside_the_list_is_never_asked(
    plugins: FleetPlugins, probe: ProbeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_ALLOWED_HOSTS", "prometheus.monitoring.svc:9090")
    provider = MetricProvider(name="prom", address=probe.url)
    spec = GateSpec(type="prometheus", query="up", thresholdRange={"min": 1})
    gate = plugins.gate(spec, {"prom": provider})
    assert gate is not None
    answer = gate.check(wave_context(GateTarget("canary")))
    assert answer.verdict is not GateVerdict.PASSED
    assert "is not in FLEET_ALLOWED_HOSTS" in answer.message, answer.message
    assert probe.requests == []
