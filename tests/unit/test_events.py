"""Events from engine results (changes only), their JSON form, and the definition's types."""

from __future__ import annotations

import typing

from fleet.engine import Action, ObjectResult, RemovalResult, UnitResult
from fleet.engine.drift import DriftItem
from fleet.engine.kube import ObjectRef
from fleet.events import changes
from fleet.events.model import Event, EventType, Severity
from fleet.events.sinks import from_kube_event, kube_event_body, kube_reason
from fleet.spec.definition import EVENT_TYPES, NotifierEvent
from fleet.states import ActualUnit, BundleState

WEB = ObjectRef("apps/v1", "Deployment", "web", "web")
OLD = ObjectRef("v1", "ConfigMap", "web", "old")


def result(
    state: BundleState, *objects: ObjectResult, dep: str = "id2", msg: str = ""
) -> UnitResult:
    return UnitResult("web", "prod-eu", dep, "c0ffee" * 6, state, msg or state.value, list(objects))


def test_the_definition_knows_every_event_type() -> None:
    assert set(EVENT_TYPES) == {t.value for t in EventType}
    patterns = set(typing.get_args(NotifierEvent))
    assert set(EVENT_TYPES) <= patterns
    assert {p for p in patterns if p not in EVENT_TYPES} == {
        "commit.*", "unit.*", "bundle.*", "drift.*", "wave.*", "rollout.*", "cluster.*", "image.*",
        "*",
    }  # fmt: skip


def test_a_new_deployment_is_applied_and_a_noop_is_no_event() -> None:
    applied = result(BundleState.READY, ObjectResult(WEB, Action.CONFIGURED))
    [event] = changes.unit_events("acme", ActualUnit("id1", BundleState.READY), applied)
    assert event.type is EventType.UNIT_APPLIED
    assert event.objects == ("Deployment web/web",)
    assert (event.fleet, event.bundle, event.cluster, event.deployment_id) == (
        "acme", "web", "prod-eu", "id2"
    )  # fmt: skip
    assert event.level is Severity.INFO and "recovered" not in event.details
    noop = result(BundleState.READY, ObjectResult(WEB, Action.UNCHANGED))
    assert changes.unit_events("acme", ActualUnit("id2", BundleState.READY), noop) == []


def test_a_failure_is_news_once_per_deployment_id() -> None:
    failed = result(
        BundleState.ERR_APPLIED,
        ObjectResult(WEB, Action.FAILED, BundleState.ERR_APPLIED, "image pull back-off"),
        msg="prod-eu: Deployment web/web: image pull back-off",
    )
    [event] = changes.unit_events("acme", ActualUnit("id1", BundleState.READY), failed)
    assert event.type is EventType.UNIT_FAILED and event.level is Severity.ERROR
    assert event.reason == "ErrApplied: Deployment web/web: image pull back-off"  # no cluster
    assert event.objects == ("Deployment web/web",)
    # the retry fails again at the same id: nothing new
    assert changes.unit_events("acme", ActualUnit("id2", BundleState.ERR_APPLIED), failed) == []
    # a new commit that fails is news
    assert changes.unit_events("acme", ActualUnit("id0", BundleState.ERR_APPLIED), failed)


def test_recovery_pruning_and_drift() -> None:
    fixed = result(
        BundleState.READY,
        ObjectResult(WEB, Action.UNCHANGED),
        ObjectResult(OLD, Action.PRUNED),
        ObjectResult(WEB, Action.CORRECTED),
    )
    events = changes.unit_events("acme", ActualUnit("id2", BundleState.ERR_APPLIED), fixed)
    assert [e.type for e in events] == [
        EventType.UNIT_APPLIED,
        EventType.UNIT_PRUNED,
        EventType.DRIFT_CORRECTED,
    ]
    assert events[0].details["recovered"] == "true"
    assert events[1].objects == ("ConfigMap web/old",)
    drifted = [DriftItem(WEB, "modified", ["spec.replicas"])]
    found = changes.drift_events("acme", ActualUnit("id2", BundleState.READY), "web", "prod-eu",
                                 "id2", drifted)  # fmt: skip
    assert [e.type for e in found] == [EventType.DRIFT_DETECTED]
    assert found[0].level is Severity.WARNING
    again = ActualUnit("id2", BundleState.MODIFIED)
    assert changes.drift_events("acme", again, "web", "prod-eu", "id2", drifted) == []


def test_removals_and_dry_runs() -> None:
    removed = RemovalResult("web", [ObjectResult(OLD, Action.PRUNED)], commit="abc")
    [event] = changes.removal_events("acme", "prod-eu", removed)
    assert event.type is EventType.BUNDLE_REMOVED and event.objects == ("ConfigMap web/old",)
    broken = RemovalResult("web", error="not removed: forbidden")
    assert changes.removal_events("acme", "prod-eu", broken)[0].type is EventType.UNIT_FAILED
    assert changes.removal_events("acme", "c", RemovalResult("web", dry_run=True)) == []
    dry = result(BundleState.OUT_OF_SYNC, ObjectResult(WEB, Action.CONFIGURED))
    dry.dry_run = True
    assert changes.unit_events("acme", None, dry) == []


def test_cluster_names_leave_the_reason_but_not_other_words() -> None:
    assert changes.cluster_free("eu: cannot reach eu (eu-west stays)", "eu") == (
        "cannot reach <cluster> (eu-west stays)"
    )


def test_json_round_trip_and_one_line_messages() -> None:
    event = Event(
        EventType.UNIT_FAILED,
        "line one\nline two",
        fleet="acme",
        bundle="web",
        cluster="prod-eu",
        commit="abc",
        objects=("Deployment web/web",),
        wave="prod",
        time=1_700_000_000.5,
        details={"state": "ErrApplied"},
    )
    assert event.message == "line one line two"
    again = Event.from_json(event.to_json())
    assert again == event
    assert again.to_json()["deploymentId"] == ""


def test_kubernetes_event_on_the_inventory_and_back() -> None:
    event = changes.commit_detected("acme", "abc", 1, 1)
    unit = Event(EventType.UNIT_FAILED, "ErrApplied: boom", fleet="acme", bundle="web",
                 cluster="prod-eu", commit="abc123", time=1_700_000_000.0)  # fmt: skip
    body = kube_event_body(unit, instance="worker-1")
    assert body["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "namespace": "fleet-system",
        "name": "acme.bundle-web",
    }
    assert (body["reason"], body["type"]) == ("UnitFailed", "Warning")
    assert kube_reason(EventType.ROLLOUT_ROLLED_BACK) == "RolloutRolledBack"
    back = from_kube_event(body, "prod-eu")
    assert back is not None
    assert (back.type, back.bundle, back.fleet, back.commit, back.time) == (
        EventType.UNIT_FAILED, "web", "acme", "abc123", 1_700_000_000.0
    )  # fmt: skip
    assert event.unit is None  # fleet-wide events never go to a cluster
