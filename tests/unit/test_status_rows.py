"""One status row per unit, the same words in each mode (`fleet.status.rows`)."""

from __future__ import annotations

from fleet.engine import Action, ObjectResult, RemovalResult, UnitResult
from fleet.engine.kube import ObjectRef
from fleet.spec.bundle_options import BundleOptions
from fleet.states import ActualUnit, BundleState
from fleet.status.rows import INVENTORIES_UNREAD, needs_look, removal_row, unit_row
from fleet.targeting.units import DeploymentUnit

READY, ERR, OUT = BundleState.READY, BundleState.ERR_APPLIED, BundleState.OUT_OF_SYNC
WANT = "b" * 64
OLD = "a" * 64


def unit() -> DeploymentUnit:
    return DeploymentUnit("web", "dev-eu", BundleOptions(), WANT, None)


def test_the_cluster_runs_what_git_wants() -> None:
    row = unit_row(unit(), ActualUnit(WANT, READY, "c1"), wave="(all)")
    assert (row.state, row.message, row.commit, row.wave) == (READY, "in sync", "c1", "(all)")
    failed = unit_row(unit(), ActualUnit(WANT, ERR, "c1"))
    assert (failed.state, failed.message) == (ERR, "last sync failed")
    assert needs_look(unit(), ActualUnit(WANT, READY)) and not needs_look(
        unit(), ActualUnit(WANT, ERR)
    )


def test_the_same_case_reads_the_same_in_each_mode() -> None:
    other = ActualUnit(OLD, READY, "c0")
    assert unit_row(unit(), other).message == f"runs {OLD[:12]}, Git wants {WANT[:12]}"
    assert unit_row(unit(), None).message == "not deployed"
    dispatched = unit_row(unit(), other, dispatched=True)
    assert (dispatched.state, dispatched.message) == (
        OUT,
        f"runs {OLD[:12]}, Git wants {WANT[:12]}; dispatched",
    )
    down = unit_row(unit(), other, down="connection refused")
    assert (down.state, down.message) == (ERR, "cluster unreachable: connection refused")
    # what the planner does about it (the wave's offline policy) is said too
    skipped = "offline (skipped by the wave's offline policy)"
    down = unit_row(unit(), other, down="connection refused", waiting=skipped)
    assert (down.state, down.message) == (
        ERR,
        f"cluster unreachable: connection refused; {skipped}",
    )


def test_waiting_and_unread_inventories_are_pending() -> None:
    assert unit_row(unit(), None, waiting="depends on db (not deployed)").message == (
        "depends on db (not deployed)"
    )
    unread = unit_row(unit(), None, inventories_unread=True, waiting="x")
    assert (unread.state, unread.message) == (BundleState.PENDING, INVENTORIES_UNREAD)
    known_failure = ActualUnit(
        "", ERR, "", "cluster dev-eu unreachable (refused), will retry in 4s"
    )
    row = unit_row(unit(), known_failure, waiting="x", dispatched=True)
    assert (row.state, row.message) == (ERR, known_failure.message)


def test_a_result_of_this_pass_wins() -> None:
    result = UnitResult("web", "dev-eu", WANT, "c2", READY, "3 objects ready", writes=2)
    row = unit_row(unit(), ActualUnit(OLD, READY, "c0"), result=result)
    assert (row.state, row.message, row.commit, row.writes) == (READY, "3 objects ready", "c2", 2)
    result.diff = "--- a\n+++ b\n"
    dry = unit_row(unit(), ActualUnit(OLD, READY, "c0"), result=result, dry_run=True)
    assert (dry.message, dry.commit) == ("would change: 2 diff lines", "c0")


def test_removal_rows() -> None:
    ref = ObjectRef("v1", "ConfigMap", "ns", "a")
    kept = ObjectRef("v1", "ConfigMap", "ns", "b")
    done = RemovalResult("old", [ObjectResult(ref, Action.PRUNED), ObjectResult(kept, Action.KEPT)])
    row = removal_row("old", "dev-eu", ActualUnit(OLD, READY, "c0"), result=done)
    assert (row.state, row.message, row.commit) == (
        READY,
        "left Git: deleted 1 objects, kept 1",
        "c0",
    )
    dry = RemovalResult("old", [ObjectResult(ref, Action.PRUNED)], dry_run=True)
    assert (dry.state, dry.message) == (OUT, "left Git: would delete 1 objects")
    failed = RemovalResult("old", [ObjectResult(ref, Action.FAILED, ERR, "forbidden")])
    assert (failed.state, failed.message) == (ERR, "forbidden")
    unread = RemovalResult.not_removed("old", ValueError("inventory corrupt"))
    assert (unread.state, unread.message) == (ERR, "not removed: inventory corrupt")
    due = removal_row("old", "dev-eu", ActualUnit(OLD, READY, "c0"), next_step="removal dispatched")
    assert (due.state, due.message) == (OUT, "left Git: removal dispatched")
