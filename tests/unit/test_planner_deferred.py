"""The planner's rule for a deferred bundle (its registry is down): planned, waiting with
the reason, never dispatched (no apply of another revision) and never removed."""

from __future__ import annotations

from fleet.rollout.planner import ActualUnit, plan
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.definition import Rollout
from fleet.states import BundleState
from fleet.targeting.units import DeploymentUnit

READY = BundleState.READY
WHY = "image digests not resolved: registry down; will retry in 4s"


def unit(bundle: str, cluster: str, did: str) -> DeploymentUnit:
    return DeploymentUnit(bundle, cluster, BundleOptions(), did, None, {}, None, frozenset())


def test_deferred_bundle_is_neither_removed_nor_reapplied() -> None:
    # web runs v1 (pinned digests) on both clusters; the commit gives it the unpinned id
    # v2 (its registry is down), and api a new id on both clusters
    units = [unit(b, c, "v2") for b in ("web", "api") for c in ("c1", "c2")]
    actual = {(b, c): ActualUnit("v1", READY) for b in ("web", "api") for c in ("c1", "c2")}
    actual[("gone", "c1")] = ActualUnit("v1", READY)  # a bundle Git no longer has
    p = plan(units, actual, Rollout.model_validate({}), now=0, deferred={"web": WHY})
    assert sorted((d.unit.bundle, d.unit.cluster) for d in p.dispatch) == [
        ("api", "c1"),
        ("api", "c2"),
    ]
    assert {(w.unit.bundle, w.unit.cluster): w.reason for w in p.waiting} == {
        ("web", "c1"): WHY,
        ("web", "c2"): WHY,
    }
    assert [(r.bundle, r.cluster) for r in p.removals] == [("gone", "c1")]
    assert ("web", "c1") in p.unit_waves
    assert not any(b == "web" for b, _ in p.waves_done)  # nothing of it rolled out
    # without the rule the same inputs re-apply web everywhere: the test can fail
    again = plan(units, actual, None, now=0)
    assert ("web", "c1") in {(d.unit.bundle, d.unit.cluster) for d in again.dispatch}


def test_deferred_bundle_not_deployed_anywhere_waits() -> None:
    units = [unit("web", "c1", "v2")]
    p = plan(units, {}, None, now=0, deferred={"web": WHY})
    assert not p.dispatch and not p.removals
    assert [w.reason for w in p.waiting] == [WHY]
    assert not p.converged
