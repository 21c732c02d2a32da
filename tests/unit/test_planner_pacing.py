"""The planner's progressive-delivery rules: offline policies, windows and freezes, maxNew,
delay, maxUnavailablePartitions, per-bundle waves in the plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fleet.rollout.planner import ActualUnit, Plan, plan
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.definition import Rollout
from fleet.states import BundleState
from fleet.targeting.units import DeploymentUnit

READY, NOT_READY, ERR = BundleState.READY, BundleState.NOT_READY, BundleState.ERR_APPLIED
SKIPPED = "offline (skipped by the wave's offline policy)"
COUNTED = "offline (counted as unavailable by the wave's offline policy)"

LABELS = {
    "canary": {"env": "dev"},
    "eu-1": {"env": "prod", "region": "eu"},
    "eu-2": {"env": "prod", "region": "eu"},
    "eu-3": {"env": "prod", "region": "eu"},
    "us-1": {"env": "prod", "region": "us"},
}


def unit(cluster: str, bundle: str = "web", did: str = "v2", **options: Any) -> DeploymentUnit:
    return DeploymentUnit(
        bundle, cluster, BundleOptions.model_validate(options), did, None, LABELS[cluster]
    )


def fleet(bundle: str = "web", **options: Any) -> list[DeploymentUnit]:
    return [unit(c, bundle, **options) for c in LABELS]


def rollout(**doc: Any) -> Rollout:
    return Rollout.model_validate(doc)


def waves(**extra: Any) -> Rollout:
    canary = {"name": "canary", "clusters": ["canary"], **extra.pop("canary", {})}
    eu = {"name": "eu", "selector": {"matchLabels": {"region": "eu"}}, **extra.pop("eu", {})}
    return rollout(waves=[canary, eu], **extra)


def at_v1(*clusters: str, bundle: str = "web") -> dict[tuple[str, str], ActualUnit]:
    return {(bundle, c): ActualUnit("v1", READY) for c in clusters}


def done(*clusters: str, bundle: str = "web") -> dict[tuple[str, str], ActualUnit]:
    return {(bundle, c): ActualUnit("v2", READY) for c in clusters}


def dispatched(p: Plan) -> list[str]:
    return [d.unit.cluster for d in p.dispatch]


def why(p: Plan) -> Mapping[str, str]:
    return {w.unit.cluster: w.reason for w in p.waiting}


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# ---------------------------------------------------------------- offline policy


def test_offline_wait_keeps_todays_behaviour() -> None:
    actual = at_v1(*LABELS)
    p = plan(fleet(), actual, waves(), now=0, offline=["canary"])
    assert dispatched(p) == ["canary"]  # the runtime finds it down; the wave waits for it
    # the next wave says why: offline, not "not deployed" or an old id (unknown while down)
    assert why(p)["eu-1"] == "wave eu waits for wave canary (canary: offline)"


def test_offline_skip_completes_the_wave_without_it() -> None:
    actual = at_v1(*LABELS)
    p = plan(fleet(), actual, waves(offline="skip"), now=0, offline=["canary", "eu-2"])
    assert why(p)["canary"] == SKIPPED and why(p)["eu-2"] == SKIPPED
    assert dispatched(p) == ["eu-1", "eu-3"]  # wave canary is complete without canary
    assert ("web", "canary") in p.waves_done
    # back online: deployed, like any other unit of its wave
    p = plan(fleet(), actual | done("eu-1", "eu-3"), waves(offline="skip"), now=0)
    assert dispatched(p) == ["canary"]


def test_offline_skip_per_wave_or_per_bundle() -> None:
    actual = at_v1(*LABELS)
    p = plan(fleet(), actual, waves(canary={"offline": "skip"}), now=0, offline=["canary"])
    assert dispatched(p) == ["eu-1", "eu-2", "eu-3"]
    units = fleet(rolloutStrategy={"offline": "skip"})
    p = plan(units, actual, waves(), now=0, offline=["canary"])
    assert dispatched(p) == ["eu-1", "eu-2", "eu-3"]


def test_offline_unavailable_uses_the_budget_and_is_not_waited_for() -> None:
    actual = at_v1(*LABELS) | done("canary")
    policy = waves(eu={"maxUnavailable": 2, "offline": "unavailable"})
    p = plan(fleet(), actual, policy, now=0, offline=["eu-1"])
    assert why(p)["eu-1"] == COUNTED
    assert dispatched(p) == ["eu-2"]  # one of the two places is taken by eu-1
    assert why(p)["eu-3"] == "maxUnavailable 2 reached in wave eu"
    # every other unit done: the wave is complete, the next one starts
    actual |= done("eu-2", "eu-3")
    p = plan(fleet(), actual, policy, now=0, offline=["eu-1"])
    assert ("web", "eu") in p.waves_done and dispatched(p) == ["us-1"]


# ------------------------------------------------------- windows and freezes


WINDOWS = rollout(
    windows=[
        {"selector": {"matchLabels": {"env": "prod"}}, "schedule": "0 2 * * *", "duration": "2h"}
    ],
    freezes=[{"clusters": ["canary"], "reason": "demo day", "until": "2026-12-04T00:00:00Z"}],
)


def test_a_new_revision_waits_for_its_window() -> None:
    actual = at_v1(*LABELS)
    p = plan(fleet(), actual, WINDOWS, now=ts("2026-12-03T10:00:00"))
    assert dispatched(p) == []
    assert why(p)["eu-1"] == "outside its maintenance window (next: 2026-12-04 02:00 UTC)"
    assert why(p)["canary"] == "frozen: demo day (until 2026-12-04T00:00:00Z)"
    p = plan(fleet(), actual, WINDOWS, now=ts("2026-12-04T03:00:00"))
    assert dispatched(p) == list(LABELS)  # inside the window, and the freeze is over


def test_retries_and_drift_corrections_are_not_held_by_windows() -> None:
    actual = {
        ("web", "eu-1"): ActualUnit("v2", ERR),
        ("web", "eu-2"): ActualUnit("v2", BundleState.MODIFIED),
        ("web", "eu-3"): ActualUnit("v1", READY),
    }
    units = [unit(c, correctDrift={"enabled": True}) for c in ("eu-1", "eu-2", "eu-3")]
    p = plan(units, actual, WINDOWS, now=ts("2026-12-03T10:00:00"))
    assert [(d.unit.cluster, d.reason) for d in p.dispatch] == [
        ("eu-1", "retry after ErrApplied"),
        ("eu-2", "correct drift"),
    ]
    assert why(p)["eu-3"].startswith("outside its maintenance window")


# ---------------------------------------------------------------------- pacing


def test_max_new_per_wave_counts_units_started_and_not_available() -> None:
    actual = at_v1(*LABELS) | done("canary")
    actual[("web", "eu-1")] = ActualUnit("v2", NOT_READY)  # started, not available yet
    policy = waves(eu={"maxNew": 2})
    p = plan(fleet(), actual, policy, now=0)
    assert dispatched(p) == ["eu-2"]
    assert why(p)["eu-3"] == "maxNew 2 reached in wave eu"


def test_max_new_per_bundle_across_waves() -> None:
    actual = at_v1(*LABELS) | done("canary")
    p = plan(fleet(rolloutStrategy={"maxNew": 1}), actual, waves(), now=0)
    assert dispatched(p) == ["eu-1"]
    assert why(p)["eu-2"] == "maxNew 1 reached for the bundle"
    # the definition's maxNew is the bundle cap when the bundle gives none; per bundle
    both = fleet("a") + fleet("b")
    actual = at_v1(*LABELS, bundle="a") | at_v1(*LABELS, bundle="b")
    p = plan(both, actual, rollout(maxNew=2), now=0)
    assert [d.unit.key for d in p.dispatch] == [
        ("a", "canary"), ("a", "eu-1"), ("b", "canary"), ("b", "eu-1"),
    ]  # fmt: skip


def test_max_new_does_not_cap_retries() -> None:
    actual = {("web", c): ActualUnit("v2", ERR) for c in LABELS}
    p = plan(fleet(), actual, rollout(maxNew=1), now=0)
    assert len(p.dispatch) == len(LABELS)


def test_delay_after_the_previous_wave_passed() -> None:
    actual = at_v1(*LABELS) | done("canary")
    policy = waves(eu={"delay": "10m"})
    p = plan(fleet(), actual, policy, now=1000)
    assert why(p)["eu-1"] == "wave eu starts 10m after wave canary passed"  # time not known
    p = plan(fleet(), actual, policy, now=1000, completed_at={("web", "canary"): 700})
    assert why(p)["eu-1"] == "wave eu starts 10m after wave canary (5m left)"
    p = plan(fleet(), actual, policy, now=1300, completed_at={("web", "canary"): 700})
    assert dispatched(p) == ["eu-1", "eu-2", "eu-3"]


def test_partition_delay_and_waves_done() -> None:
    strategy = {"partitions": [{"name": "one", "clusterName": "canary"},
                               {"name": "two", "clusterName": "eu-1", "delay": "1m"}]}  # fmt: skip
    units = fleet(rolloutStrategy=strategy)
    actual = at_v1(*LABELS) | done("canary")
    p = plan(units, actual, None, now=100, completed_at={("web", "one"): 90})
    assert why(p)["eu-1"] == "wave two starts 1m after wave one (50s left)"
    assert p.waves_done == [("web", "one")]
    assert p.unit_waves[("web", "eu-1")] == "two" and p.unit_waves[("web", "us-1")] == "(rest)"


# ----------------------------------------------------- maxUnavailablePartitions


def test_max_unavailable_partitions_zero_is_wave_by_wave() -> None:
    strategy = {"partitions": [{"clusterName": "canary"}, {"clusterName": "eu-1"}]}
    p = plan(fleet(rolloutStrategy=strategy), at_v1(*LABELS), None, now=0)
    assert dispatched(p) == ["canary"]


def test_max_unavailable_partitions_lets_later_waves_overlap() -> None:
    strategy = {
        "maxUnavailablePartitions": 1,
        "partitions": [{"clusterName": "canary"}, {"clusterName": "eu-1"}],
    }
    p = plan(fleet(rolloutStrategy=strategy), at_v1(*LABELS), None, now=0)
    # partition-0 is incomplete (tolerated), partition-1 starts; two incomplete stop the rest
    assert dispatched(p) == ["canary", "eu-1"]
    assert why(p)["eu-2"].startswith("wave (rest) waits for wave partition-1")


def test_a_wave_with_gates_is_not_tolerated_as_unavailable() -> None:
    strategy = {
        "maxUnavailablePartitions": 1,
        "partitions": [
            {"clusterName": "canary", "gates": [{"type": "approval"}]},
            {"clusterName": "eu-1"},
        ],
    }
    p = plan(fleet(rolloutStrategy=strategy), at_v1(*LABELS), None, now=0)
    assert dispatched(p) == ["canary"]


def test_units_carry_their_bundles_wave() -> None:
    partitioned = fleet(
        "api", rolloutStrategy={"partitions": [{"name": "us", "clusterName": "us-1"}]}
    )
    p = plan(partitioned + fleet("web"), {}, waves(), now=0)
    assert p.unit_waves[("api", "us-1")] == "us" and p.unit_waves[("web", "us-1")] == "(rest)"
    assert p.waves["us-1"] == "(rest)"  # the definition's view
    assert {d.wave for d in p.dispatch} == {"us", "canary"}
    assert sorted(p.bundle_waves) == ["api", "web"]


def test_offline_under_wait_in_one_wave_dispatches_everything() -> None:
    units: Sequence[DeploymentUnit] = fleet()
    p = plan(units, {}, None, now=0, offline=frozenset({"canary"}))
    assert len(p.dispatch) == len(LABELS)  # one wave, policy wait: everything goes
