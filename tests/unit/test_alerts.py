"""Alerts people do not mute: state changes only, grouping across clusters, routing."""

from __future__ import annotations

import threading

from fleet.events.alerts import AlertBook, PendingGroups, group
from fleet.events.delivery import Notifier
from fleet.events.model import Delivery, Event, EventType, Notification, NotifierTarget, Severity
from fleet.events.routing import Route, credential_env, routes
from fleet.spec.definition import NotifierSpec

PULL = "ErrApplied: Deployment web/web: image pull back-off"


def failed(cluster: str, bundle: str = "web", reason: str = PULL, commit: str = "c1") -> Event:
    return Event(EventType.UNIT_FAILED, f"{cluster}: {reason}", fleet="acme", bundle=bundle,
                 cluster=cluster, commit=commit, reason=reason)  # fmt: skip


def applied(cluster: str, bundle: str = "web") -> Event:
    return Event(EventType.UNIT_APPLIED, "Ready: applied", fleet="acme", bundle=bundle,
                 cluster=cluster, commit="c1", reason="Ready",
                 details={"state": "Ready"})  # fmt: skip


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.got: list[tuple[str, Notification]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, target: NotifierTarget, note: Notification) -> Delivery | None:
        with self.lock:
            self.got.append((target.name, note))
        return Delivery.failed("HTTP 500") if self.fail else Delivery(True)


def route(name: str = "ops", **kw: object) -> Route:
    spec = NotifierSpec.model_validate({"name": name, "type": "test", **kw})
    return routes([spec], "acme", {})[0]


def test_twenty_clusters_failing_the_same_way_are_one_notification() -> None:
    clusters = [f"edge-{i:02d}" for i in range(20)]
    [note] = group(AlertBook().changes(failed(c) for c in clusters))
    assert note.title == "web: ErrApplied on 20 clusters: Deployment web/web: image pull back-off"
    assert note.clusters == sorted(clusters)
    assert len(note.events) == 20 and note.severity is Severity.ERROR and not note.resolved


def test_different_failures_bundles_and_commits_stay_apart() -> None:
    events = [failed("a"), failed("b"), failed("c", reason="ErrApplied: quota exceeded"),
              failed("d", bundle="db"), failed("e", commit="c2")]  # fmt: skip
    titles = sorted(n.title for n in group(events))
    assert titles == [
        "db: ErrApplied on d: Deployment web/web: image pull back-off",
        "web: ErrApplied on a, b: Deployment web/web: image pull back-off",
        "web: ErrApplied on c: quota exceeded",
        "web: ErrApplied on e: Deployment web/web: image pull back-off",
    ]


def test_a_unit_that_stays_broken_over_ten_ticks_alerts_once_and_once_when_it_recovers() -> None:
    recorder = Recorder()
    notifier = Notifier([route()], recorder, group_wait=5.0)
    now = 1000.0
    for _ in range(10):  # every tick a worker reports the same failure again
        notifier.add([failed("prod-eu")], now)
        notifier.flush_due(now)
        now += 6.0
    notifier.add([applied("prod-eu")], now)
    notifier.flush_due(now + 6.0)
    notifier.close()
    titles = [n.title for _, n in recorder.got]
    assert titles == [
        "web: ErrApplied on prod-eu: Deployment web/web: image pull back-off",
        "web: recovered on prod-eu (Ready)",
    ]
    assert recorder.got[1][1].resolved


def test_group_wait_collects_reports_that_arrive_over_several_ticks() -> None:
    pending = PendingGroups(wait=10.0)
    pending.add([failed("a")], now=0.0)
    pending.add([failed("b")], now=4.0)
    assert pending.due(8.0) == []
    assert [e.cluster for e in pending.due(10.0)] == ["a", "b"]
    assert len(pending) == 0


def test_routing_by_type_severity_bundle_and_cluster() -> None:
    events = [failed("prod-eu"), failed("dev-eu"), applied("prod-us"), failed("prod-us", "db")]
    prod_web = route(events=["unit.failed"], bundles=["web"], clusters=["prod-*"])
    assert [e.cluster for e in events if prod_web.wants(e)] == ["prod-eu"]
    everything = route(events=["*"], severities=["info"])
    assert [e.cluster for e in events if everything.wants(e)] == ["prod-us"]
    default = route()  # failures, not every applied unit
    assert [e.cluster for e in events if default.wants(e)] == ["prod-eu", "dev-eu", "prod-us"]
    # a recovery goes wherever the failure went, even with unit.applied not routed
    book = AlertBook()
    book.changes([failed("prod-eu")])
    [recovery] = book.changes([applied("prod-eu")])
    assert prod_web.wants(recovery) and not prod_web.wants(applied("prod-eu"))


def test_secrets_come_from_the_environment_by_credential_name() -> None:
    spec = NotifierSpec.model_validate(
        {"name": "pr", "type": "github", "credential": "gh-status", "repository": "acme/fleet"}
    )
    env = {"FLEET_NOTIFIER_GH_STATUS": "tok", "FLEET_NOTIFIER_GH_STATUS_URL": "https://ghe/api"}
    [found] = routes([spec], "acme", env)
    assert credential_env("gh-status") == "FLEET_NOTIFIER_GH_STATUS"
    assert (found.target.secret, found.target.api_url) == ("tok", "https://ghe/api")
    assert found.target.options["repository"] == "acme/fleet"
    assert found.target.options["context"] == "fleet/acme"
    assert "tok" not in repr(found.target)


def test_a_failing_notifier_is_reported_and_never_raises() -> None:
    recorder = Recorder(fail=True)
    reported: list[Event] = []
    notifier = Notifier([route()], recorder, group_wait=0.0, report=reported.append)
    notifier.add([failed("prod-eu")], 0.0)
    assert notifier.flush_due(0.0) == 1
    notifier.close()
    assert notifier.sender.results[("ops", "failed")] == 1
    [event] = reported
    assert event.type is EventType.NOTIFIER_FAILED and "HTTP 500" in event.message


def test_a_notifier_type_nobody_serves_is_a_failure() -> None:
    reported: list[Event] = []
    notifier = Notifier([route()], lambda t, n: None, group_wait=0.0, report=reported.append)
    notifier.add([failed("a")], 0.0)
    notifier.close()
    assert "no plugin serves notifier type 'test'" in reported[0].message


def test_what_is_still_failing_is_sent_again_as_a_reminder_until_it_recovers() -> None:
    recorder = Recorder()
    notifier = Notifier([route()], recorder, group_wait=0.0)
    notifier.add([failed("a"), failed("b")], 0.0)
    notifier.flush_due(0.0)
    assert notifier.remind() == 1
    notifier.add([applied("a")], 1.0)
    notifier.flush_due(1.0)
    assert notifier.remind() == 1
    notifier.add([applied("b")], 2.0)
    notifier.flush_due(2.0)
    assert notifier.remind() == 0
    notifier.close()
    reminders = [n for _, n in recorder.got if n.repeat]
    assert [n.clusters for n in reminders] == [["a", "b"], ["b"]]
    assert all(n.type is EventType.UNIT_FAILED and not n.resolved for n in reminders)
