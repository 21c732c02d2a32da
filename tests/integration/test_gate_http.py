"""The `http` gate against a small real HTTP server: 2xx passes, 500 and timeouts fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from fleet.plugin import FleetPlugins, Gate, GateSpec, GateTarget, GateVerdict
from tests.support.gates import ProbeServer, drive, wave_context

WAVE = (GateTarget("canary", {"tier": "web/front"}, "shop"), GateTarget("eu-1", {}, "shop"))


@pytest.fixture(scope="module")
def plugins() -> FleetPlugins:
    return FleetPlugins.load(entry_points=False)


@pytest.fixture
def probe() -> Iterator[ProbeServer]:
    server = ProbeServer()
    server.start()
    yield server
    server.stop()


def _gate(plugins: FleetPlugins, **entry: Any) -> Gate:
    gate = plugins.gate(GateSpec(type="http", **entry), {})
    assert gate is not None
    return gate


def test_2xx_from_every_cluster_passes(plugins: FleetPlugins, probe: ProbeServer) -> None:
    gate = _gate(plugins, name="smoke", url=probe.url + "/status/204/{{cluster}}?ns={{namespace}}")
    verdict, _ = drive(gate, wave_context(*WAVE))
    assert verdict.verdict is GateVerdict.PASSED, verdict.message
    assert verdict.message == (
        "smoke: HTTP 204 on canary, HTTP 204 on eu-1 (expect 2xx), 1 of 1 rounds ok"
    )
    assert [r.path for r in probe.requests] == [
        "/status/204/canary?ns=shop",
        "/status/204/eu-1?ns=shop",
    ]


def test_a_500_fails(plugins: FleetPlugins, probe: ProbeServer) -> None:
    gate = _gate(plugins, name="smoke", url=probe.url + "/status/{{labels.code}}")
    targets = (GateTarget("canary", {"code": "200"}), GateTarget("eu-1", {"code": "500"}))
    verdict, _ = drive(gate, wave_context(*targets))
    assert verdict.verdict is GateVerdict.FAILED
    assert verdict.message == (
        "smoke: HTTP 500 on eu-1 (expect 2xx), 1 of 1 rounds failed (failureLimit 0)"
    )


def test_a_timeout_fails(plugins: FleetPlugins, probe: ProbeServer) -> None:
    gate = _gate(plugins, url=probe.url + "/sleep/3", timeout="1s")
    verdict, _ = drive(gate, wave_context(WAVE[0]))
    assert verdict.verdict is GateVerdict.FAILED
    assert verdict.message.startswith("http check: no answer within 1s on canary (expect 2xx)")


def test_a_refused_connection_fails(plugins: FleetPlugins) -> None:
    gate = _gate(plugins, url="http://127.0.0.1:9/healthz")
    verdict, _ = drive(gate, wave_context(WAVE[0]))
    assert verdict.verdict is GateVerdict.FAILED
    assert "request failed: ConnectError" in verdict.message


def test_expected_statuses_and_rounds(plugins: FleetPlugins, probe: ProbeServer) -> None:
    gate = _gate(plugins, url=probe.url + "/status/503", expectStatus=[503], count=2, interval="1s")
    verdict, _ = drive(gate, wave_context(WAVE[0]))
    assert verdict.verdict is GateVerdict.PASSED, verdict.message
    assert len(probe.requests) == 2
    assert verdict.message == "http check: HTTP 503 on canary (expect 503), 2 of 2 rounds ok"


def test_a_label_value_stays_inside_its_url_part(plugins: FleetPlugins, probe: ProbeServer) -> None:
    gate = _gate(plugins, url=probe.url + "/status/200/{{labels.tier}}")
    target = GateTarget("canary", {"tier": "../../sleep/30?x=#"})
    assert drive(gate, wave_context(target))[0].verdict is GateVerdict.PASSED
    assert [r.path for r in probe.requests] == ["/status/200/..%2F..%2Fsleep%2F30%3Fx%3D%23"]


def test_post_with_credential_and_headers(plugins: FleetPlugins, probe: ProbeServer) -> None:
    secret = "smoke-s3cret-token"
    gate = _gate(
        plugins, url=probe.url + "/status/500/{{bundle}}", method="POST",
        body={"check": "deep"}, headers={"X-Smoke": "fleet"}, credential="smoke",
    )  # fmt: skip
    failed, _ = drive(gate, wave_context(WAVE[0], env={"FLEET_GATE_SMOKE": secret}))
    assert failed.verdict is GateVerdict.FAILED
    (request,) = probe.requests
    assert (request.method, request.path) == ("POST", "/status/500/web")
    assert request.headers["authorization"] == f"Bearer {secret}"
    assert request.headers["x-smoke"] == "fleet"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"check": "deep"}
    assert secret not in failed.message
    unset, _ = drive(gate, wave_context(WAVE[0]))
    assert unset.verdict is GateVerdict.INCONCLUSIVE
    assert unset.message == "http check: FLEET_GATE_SMOKE is not set (its credential)"
    assert len(probe.requests) == 1  # nothing sent without it
