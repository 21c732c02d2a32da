"""The built-in notifiers against real receivers: a local HTTP server that checks the
signature and the payload, a server implementing GitHub's and GitLab's commit-status
endpoints, and a real Prometheus Alertmanager (Debian's `prometheus-alertmanager`).

Each notification goes through the plugin manager (`FleetPlugins.notify`, the
`fleet_notify` hook) exactly as the runtimes send it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest

from fleet.events.alerts import AlertBook, group
from fleet.events.model import Event, EventType, Notification, NotifierTarget
from fleet.plugin.manager import FleetPlugins
from tests.support.notify_servers import Receiver, StatusForge
from tests.support.servers import AlertmanagerServer

SHA = "0123456789abcdef0123456789abcdef01234567"
PULL = "ErrApplied: Deployment web/web: image pull back-off"


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
def forge() -> Iterator[StatusForge]:
    server = StatusForge()
    server.start()
    yield server
    server.stop()


def failed(clusters: list[str]) -> list[Event]:
    return [
        Event(
            EventType.UNIT_FAILED,
            f"{c}: {PULL}",
            fleet="acme",
            bundle="web",
            cluster=c,
            commit=SHA,
            reason=PULL,
            objects=("Deployment web/web",),
        )
        for c in clusters
    ]


def failure(clusters: list[str], book: AlertBook | None = None) -> Notification:
    events = (book or AlertBook()).changes(failed(clusters))
    [note] = group(events, status_url="http://fleet:8080/status")
    return note


def recovery(clusters: list[str], book: AlertBook) -> Notification:
    events = [
        Event(
            EventType.UNIT_APPLIED,
            "Ready: applied",
            fleet="acme",
            bundle="web",
            cluster=c,
            commit=SHA,
            reason="Ready",
            details={"state": "Ready"},
        )
        for c in clusters
    ]
    [note] = group(book.changes(events))
    return note


def commit_note(kind: EventType, message: str) -> Notification:
    event = Event(kind, message, fleet="acme", commit=SHA)
    return Notification(kind, message, event.level, (event,), fleet="acme", commit=SHA,
                        status_url="http://fleet:8080/status")  # fmt: skip


def target(kind: str, url: str | None = None, **kw: object) -> NotifierTarget:
    return NotifierTarget("n", kind, url=url, backoff=0.01, **kw)  # type: ignore[arg-type]


def test_webhook_body_is_signed_with_hmac_sha256(plugins: FleetPlugins, receiver: Receiver) -> None:
    note = failure(["edge-1", "edge-2"])
    opts = {"credentialEnv": "FLEET_NOTIFIER_HOOK"}
    delivery = plugins.notify(target("webhook", receiver.url + "/hook", secret="s3cret",
                                     options=opts), note)  # fmt: skip
    assert delivery is not None and delivery.ok, delivery
    [request] = receiver.requests
    expected = "sha256=" + hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-fleet-signature-256"], expected)
    assert request.headers["x-fleet-event"] == "unit.failed"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert (
        body["title"]
        == "web: ErrApplied on edge-1, edge-2: Deployment web/web: image pull back-off"
    )
    assert body["clusters"] == ["edge-1", "edge-2"] and body["resolved"] is False
    assert body["statusUrl"] == "http://fleet:8080/status"
    assert {e["cluster"] for e in body["events"]} == {"edge-1", "edge-2"}
    assert set(body["events"][0]) >= {"type", "severity", "time", "fleet", "bundle", "cluster",
                                      "commit", "deploymentId", "message", "objects"}  # fmt: skip
    assert "s3cret" not in request.body.decode()


def test_a_failing_receiver_is_retried_with_backoff_then_reported(plugins: FleetPlugins) -> None:
    flaky = Receiver(fail_first=2)
    flaky.start()
    try:
        delivery = plugins.notify(target("webhook", flaky.url, retries=3), failure(["a"]))
        assert delivery is not None and delivery.ok and delivery.attempts == 3
        assert len(flaky.requests) == 3
        ids = {r.headers["x-fleet-delivery"] for r in flaky.requests}
        assert len(ids) == 1  # the same delivery id on every retry: receivers can dedupe
    finally:
        flaky.stop()
    down = Receiver(fail_first=-1)
    down.start()
    try:
        delivery = plugins.notify(target("webhook", down.url, retries=2), failure(["a"]))
        assert delivery is not None and not delivery.ok and delivery.attempts == 3
        assert "HTTP 500 (after 3 attempts)" in delivery.message
    finally:
        down.stop()


def test_slack_incoming_webhook_message_with_blocks(
    plugins: FleetPlugins, receiver: Receiver
) -> None:
    clusters = [f"edge-{i:02d}" for i in range(25)]
    delivery = plugins.notify(target("slack", secret=receiver.url + "/services/T/B/X"),
                              failure(clusters))  # fmt: skip
    assert delivery is not None and delivery.ok, delivery
    [request] = receiver.requests
    assert request.path == "/services/T/B/X"
    body = request.json()
    assert body["text"].endswith(
        "web: ErrApplied on 25 clusters: Deployment web/web: image pull back-off"
    )
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["header", "section", "section", "context", "actions"]
    assert body["blocks"][0]["text"]["type"] == "plain_text"
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    assert "(+5)" in body["blocks"][3]["elements"][0]["text"]
    assert body["blocks"][4]["elements"][0]["url"] == "http://fleet:8080/status"
    # without its URL (the secret) nothing is sent, and it says where the URL goes
    missing = plugins.notify(target("slack", options={"credentialEnv": "FLEET_NOTIFIER_X"}),
                             failure(["a"]))  # fmt: skip
    assert missing is not None and not missing.ok and "FLEET_NOTIFIER_X" in missing.message


def test_github_commit_status_pending_then_success(
    plugins: FleetPlugins, forge: StatusForge
) -> None:
    gh = target("github", secret=forge.token, api_url=forge.url,
                options={"repository": "acme/fleet", "context": "fleet/acme"})  # fmt: skip
    for kind in (EventType.COMMIT_DETECTED, EventType.ROLLOUT_SUCCEEDED):
        delivery = plugins.notify(gh, commit_note(kind, f"commit {SHA[:12]}: {kind.value}"))
        assert delivery is not None and delivery.ok, delivery
    first = forge.requests[0]
    assert first.path == f"/repos/acme/fleet/statuses/{SHA}"
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["x-github-api-version"] == "2022-11-28"
    statuses = forge.statuses[("acme/fleet", SHA)]
    assert [s["state"] for s in statuses] == ["success", "pending"]
    assert statuses[0]["context"] == "fleet/acme"
    assert statuses[0]["target_url"] == "http://fleet:8080/status"
    # a token that is wrong is a failed delivery, not retried (4xx)
    bad = target("github", secret="nope", api_url=forge.url, options={"repository": "acme/fleet"})
    delivery = plugins.notify(bad, commit_note(EventType.ROLLOUT_FAILED, "failed"))
    assert delivery is not None and not delivery.ok and delivery.attempts == 1
    assert "HTTP 401" in delivery.message
    # events that are no commit status send nothing
    before = len(forge.requests)
    assert plugins.notify(gh, failure(["a"])).ok  # type: ignore[union-attr]
    assert len(forge.requests) == before


def test_gitlab_commit_status_pending_then_failed(
    plugins: FleetPlugins, forge: StatusForge
) -> None:
    gl = target("gitlab", secret=forge.token, api_url=forge.url + "/api/v4",
                options={"repository": "acme/fleet", "context": "fleet/acme"})  # fmt: skip
    for kind in (EventType.COMMIT_DETECTED, EventType.ROLLOUT_FAILED):
        delivery = plugins.notify(gl, commit_note(kind, "x" * 300))
        assert delivery is not None and delivery.ok, delivery
    assert forge.requests[0].path == f"/api/v4/projects/acme%2Ffleet/statuses/{SHA}"
    assert forge.requests[0].headers["private-token"] == forge.token
    statuses = forge.statuses[("acme/fleet", SHA)]
    assert [s["status"] for s in statuses] == ["failed", "pending"]
    assert statuses[0]["name"] == "fleet/acme"
    assert len(statuses[0]["description"]) == 140


def test_alertmanager_one_alert_fires_for_a_failure_then_resolves(
    plugins: FleetPlugins, alertmanager: AlertmanagerServer
) -> None:
    am = target("alertmanager", alertmanager.url)
    book = AlertBook()
    fleet = "acme"
    delivery = plugins.notify(am, failure(["am-eu"], book))
    assert delivery is not None and delivery.ok, delivery
    [alert] = alertmanager.alerts(alertname="FleetUnitFailed", fleet=fleet, cluster="am-eu")
    assert alert["labels"]["bundle"] == "web"  # type: ignore[index]
    assert alert["labels"]["severity"] == "error"  # type: ignore[index]
    assert alert["status"]["state"] == "active"  # type: ignore[index]
    assert "image pull back-off" in alert["annotations"]["summary"]  # type: ignore[index]
    # the same failure reported again is no notification at all (the book), so still one
    assert book.changes(failed(["am-eu"])) == []
    # a reminder (fleet serve, every FLEET_ALERT_RESEND) keeps the same alert firing
    [reminder] = group(book.still_failing(), repeat=True)
    assert plugins.notify(am, reminder).ok  # type: ignore[union-attr]
    [again] = alertmanager.alerts(alertname="FleetUnitFailed", fleet=fleet, cluster="am-eu")
    assert again["fingerprint"] == alert["fingerprint"]
    assert str(again["endsAt"]) >= str(alert["endsAt"])
    # people are not reminded: chat and webhooks ignore reminders
    assert plugins.notify(target("slack", secret="http://127.0.0.1:1/x"), reminder).ok  # type: ignore[union-attr]
    delivery = plugins.notify(am, recovery(["am-eu"], book))
    assert delivery is not None and delivery.ok, delivery
    assert alertmanager.alerts(alertname="FleetUnitFailed", cluster="am-eu") == []
