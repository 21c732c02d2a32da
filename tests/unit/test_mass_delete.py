"""The mass-delete guard's rules (pure): every bundle from a cluster, a share of the objects."""

from __future__ import annotations

import pytest

from fleet.config import Settings
from fleet.errors import UserError
from fleet.rollout.mass_delete import (
    MassDeleteRule,
    RemovalCount,
    cached_verdict,
    commit_allows,
    judge_mass_delete,
)
from fleet.rollout.planner import Removal
from fleet.states import ActualUnit, BundleState

RULE = MassDeleteRule(share=0.5, minimum=10)


def test_removing_every_bundle_from_a_cluster_is_blocked() -> None:
    deployed = {("a", "c1"): 2, ("b", "c1"): 1, ("a", "c2"): 2}
    removals = [RemovalCount("a", "c1", 2), RemovalCount("b", "c1", 1)]
    verdict = judge_mass_delete("demo", removals, deployed, {("a", "c2")}, RULE)
    assert verdict.blocked
    assert verdict.reasons == [
        "would remove every bundle of fleet demo from cluster c1 (2 bundles, 3 objects)"
    ]
    message = verdict.message("run fleet sync --allow-mass-delete")
    assert message.startswith("mass delete stopped: this commit would remove every bundle")
    assert "nothing was deleted" in message and message.endswith("--allow-mass-delete")


def test_a_cluster_that_keeps_a_bundle_or_deletes_nothing_is_not_a_mass_delete() -> None:
    deployed = {("a", "c1"): 2, ("b", "c1"): 1}
    # a rename: the cluster still gets a bundle of the commit
    assert not judge_mass_delete(
        "demo", [RemovalCount("a", "c1", 0)], deployed, {("b", "c1"), ("new", "c1")}, RULE
    ).blocked
    # every bundle leaves, but with keepResources (nothing deleted)
    keep = [RemovalCount("a", "c1", 0), RemovalCount("b", "c1", 0)]
    assert not judge_mass_delete("demo", keep, deployed, set(), RULE).blocked
    # unknown counts are not taken as "nothing to delete"
    unknown = [RemovalCount("a", "c1", None), RemovalCount("b", "c1", 0)]
    assert judge_mass_delete("demo", unknown, deployed, set(), RULE).blocked


def test_more_than_the_share_of_the_objects_is_blocked_above_the_minimum() -> None:
    deployed = {("big", "c1"): 30, ("small", "c1"): 10, ("other", "c2"): 5}
    desired = {("small", "c1"), ("other", "c2")}
    verdict = judge_mass_delete("demo", [RemovalCount("big", "c1", 30)], deployed, desired, RULE)
    assert verdict.reasons == [
        "would delete 30 of the fleet's 45 objects (67%, more than FLEET_MASS_DELETE_SHARE 50%)"
    ]
    assert (verdict.deleting, verdict.total) == (30, 45)
    # below the minimum: a small fleet removes a bundle without ceremony
    small = {("a", "c1"): 3, ("b", "c1"): 1}
    assert not judge_mass_delete(
        "demo", [RemovalCount("a", "c1", 3)], small, {("b", "c1")}, RULE
    ).blocked
    # at or below the share
    assert not judge_mass_delete(
        "demo", [RemovalCount("big", "c1", 30)], {**deployed, ("x", "c2"): 15}, desired, RULE
    ).blocked
    # share 1 turns the share rule off
    off = MassDeleteRule(share=1.0, minimum=10)
    assert not judge_mass_delete(
        "demo", [RemovalCount("big", "c1", 30)], deployed, desired, off
    ).blocked


def test_cached_verdict_counts_what_workers_reported() -> None:
    cached = {
        ("a", "c1"): ActualUnit("1", BundleState.READY, objects=20),
        ("b", "c1"): ActualUnit("1", BundleState.READY, objects=4, keep_resources=True),
        ("c", "c2"): ActualUnit("1", BundleState.READY, objects=10),
    }
    removals = [Removal("a", "c1"), Removal("b", "c1", keep_resources=True)]
    verdict = cached_verdict("demo", removals, cached, [("c", "c2")], RULE)
    assert verdict.deleting == 20 and verdict.total == 34
    assert len(verdict.reasons) == 2  # every bundle from c1, and 59% of the objects
    assert verdict.to_json("allow")["blocked"] is True


def test_the_commit_trailer_allows() -> None:
    assert commit_allows("paths: move apps\n\nFleet-Allow-Mass-Delete: true\n")
    assert commit_allows("x\n\n  fleet-allow-mass-delete: TRUE")
    assert not commit_allows("Fleet-Allow-Mass-Delete: true please")
    assert not commit_allows("mention of Fleet-Allow-Mass-Delete in prose")


def test_settings_read_the_thresholds() -> None:
    settings = Settings.from_env(
        {"FLEET_MASS_DELETE_SHARE": "0.25", "FLEET_MASS_DELETE_MIN_OBJECTS": "3"}
    )
    assert (settings.mass_delete_share, settings.mass_delete_min_objects) == (0.25, 3)
    assert Settings.from_env({}).mass_delete_share == 0.5
    assert Settings.from_env({}).mass_delete_min_objects == 10
    for bad in ("0", "1.5", "half"):
        with pytest.raises(UserError, match="FLEET_MASS_DELETE_SHARE must be a share"):
            Settings.from_env({"FLEET_MASS_DELETE_SHARE": bad})
    with pytest.raises(UserError, match="FLEET_MASS_DELETE_MIN_OBJECTS must be a whole number"):
        Settings.from_env({"FLEET_MASS_DELETE_MIN_OBJECTS": "2.5"})
