"""The planner: dispatch, waves, maxUnavailable, dependsOn, paused, removals, retries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from fleet.gates.model import GateVerdict
from fleet.rollout.planner import (
    ActualUnit,
    Plan,
    WaveCheck,
    plan,
    resolve_max_unavailable,
)
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.definition import Rollout
from fleet.states import BundleState
from fleet.targeting.dependencies import dependency_cycle, dependency_order
from fleet.targeting.units import DeploymentUnit

READY, NOT_READY, ERR = BundleState.READY, BundleState.NOT_READY, BundleState.ERR_APPLIED

CLUSTERS = {
    "dev-1": {"env": "dev", "region": "eu"},
    "prod-1": {"env": "prod", "region": "eu"},
    "prod-2": {"env": "prod", "region": "eu"},
    "prod-3": {"env": "prod", "region": "us"},
    "prod-4": {"env": "prod", "region": "us"},
}


def unit(
    bundle: str, cluster: str, did: str = "v2", groups: Sequence[str] = (), **options: Any
) -> DeploymentUnit:
    return DeploymentUnit(
        bundle,
        cluster,
        BundleOptions.model_validate(options),
        did,
        None,
        CLUSTERS.get(cluster, {}),
        None,
        frozenset(groups),
    )


def rollout(**doc: Any) -> Rollout:
    return Rollout.model_validate(doc)


def keys(items: Sequence[Any]) -> list[tuple[str, str]]:
    return [(i.unit.bundle, i.unit.cluster) for i in items]


def reasons(p: Plan) -> dict[tuple[str, str], str]:
    return {(w.unit.bundle, w.unit.cluster): w.reason for w in p.waiting}


WAVES = rollout(
    waves=[
        {"name": "canary", "selector": {"matchLabels": {"env": "dev"}}},
        {"name": "eu", "selector": {"matchLabels": {"region": "eu"}}},
        {"name": "us", "clusters": ["prod-3"]},
    ]
)


def test_dispatch_what_differs_only() -> None:
    units = [unit("web", "dev-1"), unit("web", "prod-1"), unit("web", "prod-2")]
    actual = {("web", "dev-1"): ActualUnit("v2", READY), ("web", "prod-1"): ActualUnit("v1", READY)}
    p = plan(units, actual, None, now=0)
    assert [(d.unit.cluster, d.reason) for d in p.dispatch] == [
        ("prod-1", "changed"),
        ("prod-2", "not deployed"),
    ]
    assert [u.cluster for u in p.in_sync] == ["dev-1"]
    assert not p.converged


def test_err_applied_is_retried_and_not_ready_is_progressing() -> None:
    units = [unit("web", "dev-1"), unit("web", "prod-1")]
    actual = {
        ("web", "dev-1"): ActualUnit("v2", ERR),
        ("web", "prod-1"): ActualUnit("v2", NOT_READY),
    }
    p = plan(units, actual, None, now=0)
    assert [(d.unit.cluster, d.reason) for d in p.dispatch] == [("dev-1", "retry after ErrApplied")]
    assert [(x.unit.cluster, x.state) for x in p.progressing] == [("prod-1", NOT_READY)]


def test_converged_when_everything_runs_its_id() -> None:
    units = [unit("web", c) for c in CLUSTERS]
    actual = {("web", c): ActualUnit("v2", READY) for c in CLUSTERS}
    assert plan(units, actual, WAVES, now=0).converged


def test_waves_in_order_per_bundle() -> None:
    units = [unit(b, c) for b in ("web", "db") for c in CLUSTERS]
    # db's canary is done, web's is not: db may go on to wave eu, web may not.
    actual = {
        ("db", "dev-1"): ActualUnit("v2", READY),
        ("web", "dev-1"): ActualUnit("v2", NOT_READY),
    }
    p = plan(units, actual, WAVES, now=0)
    assert keys(p.dispatch) == [("db", "prod-1"), ("db", "prod-2")]
    why = reasons(p)
    assert why[("web", "prod-1")] == "wave eu waits for wave canary (dev-1: NotReady)"
    # clusters in no wave form the implicit last wave
    assert (
        why[("db", "prod-4")]
        == "wave (rest) waits for wave eu (prod-1: not deployed, prod-2: not deployed)"
    )
    assert p.waves == {
        "dev-1": "canary",
        "prod-1": "eu",
        "prod-2": "eu",
        "prod-3": "us",
        "prod-4": "(rest)",
    }


def test_first_sync_starts_with_the_first_wave_only() -> None:
    units = [unit("web", c) for c in CLUSTERS]
    p = plan(units, {}, WAVES, now=0)
    assert keys(p.dispatch) == [("web", "dev-1")]
    assert len(p.waiting) == 4


def test_wave_by_group_and_no_waves_is_one_wave() -> None:
    units = [unit("web", "dev-1", groups=["dev"]), unit("web", "prod-1", groups=["prod"])]
    by_group = rollout(waves=[{"name": "first", "group": "dev"}])
    assert keys(plan(units, {}, by_group, now=0).dispatch) == [("web", "dev-1")]
    assert len(plan(units, {}, None, now=0).dispatch) == 2
    assert len(plan(units, {}, rollout(), now=0).dispatch) == 2


@pytest.mark.parametrize(
    ("value", "total", "expected"),
    [(1, 4, 1), (2, 4, 2), ("50%", 4, 2), ("50%", 3, 1), ("10%", 4, 1), ("100%", 7, 7), (0, 3, 1)],
)
def test_max_unavailable_resolution(value: int | str, total: int, expected: int) -> None:
    assert resolve_max_unavailable(value, total) == expected


def test_max_unavailable_int_limits_updates_in_a_wave() -> None:
    prods = ["prod-1", "prod-2", "prod-3", "prod-4"]
    units = [unit("web", c) for c in prods]
    actual = {("web", c): ActualUnit("v1", READY) for c in prods}
    p = plan(units, actual, rollout(maxUnavailable=1), now=0)
    assert keys(p.dispatch) == [("web", "prod-1")]
    assert set(reasons(p).values()) == {"maxUnavailable 1 reached in wave (all)"}
    # prod-1 updated but not Ready yet: it is the one unavailable, nothing else goes
    actual[("web", "prod-1")] = ActualUnit("v2", NOT_READY)
    p = plan(units, actual, rollout(maxUnavailable=1), now=0)
    assert p.dispatch == [] and keys(p.progressing) == [("web", "prod-1")]
    actual[("web", "prod-1")] = ActualUnit("v2", READY)
    assert keys(plan(units, actual, rollout(maxUnavailable=1), now=0).dispatch) == [
        ("web", "prod-2")
    ]


def test_max_unavailable_percent_per_wave_overrides_the_default() -> None:
    prods = ["prod-1", "prod-2", "prod-3", "prod-4"]
    units = [unit("web", c) for c in prods]
    actual = {("web", c): ActualUnit("v1", READY) for c in prods}
    r = rollout(
        maxUnavailable=1, waves=[{"name": "all-prod", "selector": {}, "maxUnavailable": "50%"}]
    )
    assert keys(plan(units, actual, r, now=0).dispatch) == [("web", "prod-1"), ("web", "prod-2")]


def test_retrying_an_unavailable_unit_uses_no_extra_budget() -> None:
    units = [unit("web", "prod-1"), unit("web", "prod-2"), unit("web", "prod-3")]
    actual = {
        ("web", "prod-1"): ActualUnit("v2", ERR),
        ("web", "prod-2"): ActualUnit("v1", ERR),
        ("web", "prod-3"): ActualUnit("v1", READY),
    }
    p = plan(units, actual, rollout(maxUnavailable=1), now=0)
    assert keys(p.dispatch) == [("web", "prod-1"), ("web", "prod-2")]
    assert reasons(p) == {("web", "prod-3"): "maxUnavailable 1 reached in wave (all)"}


def test_depends_on_by_name_waits_for_ready_at_desired_id() -> None:
    units = [unit("db", "dev-1"), unit("web", "dev-1", dependsOn=[{"name": "db"}])]
    p = plan(units, {}, None, now=0)
    assert keys(p.dispatch) == [("db", "dev-1")]
    assert reasons(p) == {("web", "dev-1"): "depends on db (not deployed)"}
    p = plan(units, {("db", "dev-1"): ActualUnit("v2", NOT_READY)}, None, now=0)
    assert reasons(p) == {("web", "dev-1"): "depends on db (NotReady)"}
    p = plan(units, {("db", "dev-1"): ActualUnit("v1", READY)}, None, now=0)
    assert reasons(p)[("web", "dev-1")] == "depends on db (OutOfSync)"
    p = plan(units, {("db", "dev-1"): ActualUnit("v2", READY)}, None, now=0)
    assert keys(p.dispatch) == [("web", "dev-1")]


def test_depends_on_by_selector_and_missing_dependency() -> None:
    units = [
        unit("crds", "dev-1", labels={"layer": "base"}),
        unit("operator", "dev-1", labels={"layer": "base"}),
        unit("app", "dev-1", dependsOn=[{"selector": {"matchLabels": {"layer": "base"}}}]),
        unit("lonely", "dev-1", dependsOn=[{"name": "elsewhere"}]),
    ]
    actual = {("crds", "dev-1"): ActualUnit("v2", READY)}
    p = plan(units, actual, None, now=0)
    why = reasons(p)
    assert why[("app", "dev-1")] == "depends on operator (not deployed)"
    assert why[("lonely", "dev-1")] == "depends on elsewhere (not deployed to this cluster)"
    actual[("operator", "dev-1")] = ActualUnit("v2", BundleState.MODIFIED)  # healthy, drifted
    assert ("app", "dev-1") in keys(plan(units, actual, None, now=0).dispatch)


def test_dependency_order_puts_dependencies_first() -> None:
    units = [
        unit("app", "dev-1", dependsOn=[{"name": "operator"}]),
        unit("operator", "dev-1", dependsOn=[{"name": "crds"}]),
        unit("crds", "dev-1"),
        unit("other", "dev-1"),
    ]
    assert [u.bundle for u in dependency_order(units)] == ["crds", "operator", "app", "other"]
    cycle = [
        unit("a", "dev-1", dependsOn=[{"name": "b"}]),
        unit("b", "dev-1", dependsOn=[{"name": "a"}]),
    ]
    assert sorted(u.bundle for u in dependency_order(cycle)) == ["a", "b"]


def test_paused_bundles_are_not_dispatched() -> None:
    units = [unit("web", "dev-1", paused=True), unit("web", "prod-1", paused=True)]
    p = plan(units, {("web", "prod-1"): ActualUnit("v2", READY)}, None, now=0)
    assert p.dispatch == []
    assert reasons(p) == {("web", "dev-1"): "paused"}
    assert keys(p.waiting) == [("web", "dev-1")]


def test_removals_of_bundles_that_left_git_respect_keep_resources() -> None:
    units = [unit("web", "dev-1")]
    actual = {
        ("web", "dev-1"): ActualUnit("v2", READY),
        ("old", "dev-1"): ActualUnit("x", READY),
        ("web", "prod-1"): ActualUnit("v2", READY, keep_resources=True),  # untargeted
    }
    p = plan(units, actual, WAVES, now=0)
    assert [(r.bundle, r.cluster, r.keep_resources) for r in p.removals] == [
        ("old", "dev-1", False),
        ("web", "prod-1", True),
    ]
    assert not p.converged


def test_drift_correction_and_drift_check() -> None:
    drift = {"correctDrift": {"enabled": True}}
    units = [unit("web", "dev-1", **drift), unit("web", "prod-1", **drift), unit("db", "prod-1")]
    actual = {
        ("web", "dev-1"): ActualUnit("v2", BundleState.MODIFIED),
        ("web", "prod-1"): ActualUnit("v2", READY),
        ("db", "prod-1"): ActualUnit("v2", BundleState.MODIFIED),
    }
    p = plan(units, actual, rollout(maxUnavailable=1), now=0)
    assert [(d.unit.cluster, d.reason) for d in p.dispatch] == [("dev-1", "correct drift")]
    p = plan(units, actual, rollout(maxUnavailable=1), now=0, drift_check=True)
    assert [(d.unit.cluster, d.reason) for d in p.dispatch] == [
        ("dev-1", "correct drift"),
        ("prod-1", "check drift"),
    ]


def test_units_with_pull_secrets_are_checked_by_every_sync() -> None:
    pulls = {"images": {"pullSecrets": [{"registry": "bed"}]}}
    units = [unit("web", "dev-1", **pulls), unit("web", "prod-1", **pulls), unit("db", "prod-1")]
    units.append(unit("web", "prod-2", **pulls))
    actual = {
        ("web", "dev-1"): ActualUnit("v2", READY),
        ("web", "prod-1"): ActualUnit("v2", NOT_READY),
        ("db", "prod-1"): ActualUnit("v2", READY),
        ("web", "prod-2"): ActualUnit("v2", BundleState.WAIT_APPLIED),
    }
    assert plan(units, actual, None, now=0).dispatch == []  # the credential is in no id
    p = plan(units, actual, rollout(maxUnavailable=1), now=0, drift_check=True)
    assert [(d.unit.cluster, d.reason) for d in p.dispatch] == [
        ("dev-1", "check pull secrets"),
        ("prod-1", "check pull secrets"),
    ]


class _Bake:
    """A verifier whose gate passes a complete wave from t=100 on."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, list[str], float]] = []

    def held(self, bundle: str) -> str | None:
        return None

    def watch(self, bundle: str, wave: str, units: Sequence[DeploymentUnit],
              actual: object, now: float) -> str | None:  # fmt: skip
        return None

    def verify(
        self, bundle: str, wave: str, units: Sequence[DeploymentUnit], now: float
    ) -> WaveCheck:
        self.seen.append((bundle, wave, [u.cluster for u in units], now))
        if now < 100:
            return WaveCheck(GateVerdict.PENDING, "canary bakes until t=100")
        return WaveCheck(GateVerdict.PASSED)


def test_gates_hold_a_wave_until_they_pass() -> None:
    units = [unit("web", "dev-1"), unit("web", "prod-1")]
    actual = {("web", "dev-1"): ActualUnit("v2", READY)}
    bake = _Bake()
    r = rollout(waves=[{"name": "canary", "clusters": ["dev-1"]}])
    p = plan(units, actual, r, now=50, verifier=bake)
    assert reasons(p) == {
        (
            "web",
            "prod-1",
        ): "wave (rest) waits for the gates of wave canary: canary bakes until t=100"
    }
    assert bake.seen == [("web", "canary", ["dev-1"], 50)]
    assert keys(plan(units, actual, r, now=150, verifier=bake).dispatch) == [("web", "prod-1")]


def test_dependency_cycles_are_found() -> None:
    a = unit("a", "dev-eu", dependsOn=[{"name": "b"}])
    b = unit("b", "dev-eu", dependsOn=[{"name": "c"}])
    c = unit("c", "dev-eu", dependsOn=[{"name": "a"}])
    assert dependency_cycle([a, b, c]) == ["a", "b", "c", "a"]
    free = unit("c", "dev-eu")
    assert dependency_cycle([a, b, free]) is None
    by_label = unit(
        "d",
        "dev-eu",
        labels={"tier": "db"},
        dependsOn=[{"selector": {"matchLabels": {"tier": "db"}}}],
    )
    assert dependency_cycle([by_label]) is None  # a bundle never depends on itself


def test_a_drift_check_due_in_a_wave_does_not_hold_the_next_wave() -> None:
    drift = {"correctDrift": {"enabled": True}}
    units = [unit("web", "dev-1", **drift), unit("web", "prod-1", **drift)]
    actual = {("web", "dev-1"): ActualUnit("v2", READY)}
    r = rollout(waves=[{"name": "canary", "clusters": ["dev-1"]}])
    p = plan(units, actual, r, now=0, drift_check=True)
    assert [(d.unit.cluster, d.reason) for d in p.dispatch] == [
        ("dev-1", "check drift"),
        ("prod-1", "not deployed"),
    ]
