"""Rejected revisions rebuilt from the clusters' history after a lost rollout store.

`fleet.rollout.rebuild` reads what a cluster's `rolledBack` revisions say (the rollout
revision in their details) and the tracker rejects those again when it begins: a store
that lost its records must not roll the bad revision out again, and a store that lost
nothing must not be written to.
"""

from __future__ import annotations

from typing import Any

from fleet.engine.history import Revision
from fleet.rollout import record as rec
from fleet.rollout.planner import plan
from fleet.rollout.rebuild import FROM_HISTORY, merge, reject_rolled_back, rolled_back_of
from fleet.rollout.record import BundleRollout, revision_of
from tests.unit.test_rollout_tracker import (
    READY,
    actual,
    dispatched,
    the_rollout,
    tracker,
    units,
    waiting,
)

V2 = revision_of(u.deployment_id for u in units("v2"))
V3 = revision_of(u.deployment_id for u in units("v3"))


def revision(
    status: Any, details: Any, bundle: str = "web", reason: str = "gate e: 0.2"
) -> Revision:
    return Revision(bundle, "f", 3, "v2", "c2", "", status, reason, details)


def test_a_clusters_rolled_back_revisions_name_their_rollout_revision() -> None:
    found = rolled_back_of([
        revision("rolledBack", {"revision": "aaa", "wave": "canary"}),
        revision("rolledBack", {"revision": "bbb", "commit": "c"}, reason="wave eu: gate e: 1"),
        revision("rolledBack", {"revision": "ccc", "wave": "eu"}, reason="wave eu: gate e: 1"),
        revision("rolledBack", None),  # rolled back by the engine alone: no rollout said
        revision("rolledBack", {"ids": ["1"]}),
        revision("ready", {"revision": "ddd"}),
        revision("rolledBack", {"revision": "eee"}, bundle="db", reason=""),
    ])  # fmt: skip
    assert found == {
        "web": {"aaa": "wave canary: gate e: 0.2", "bbb": "wave eu: gate e: 1",
                "ccc": "wave eu: gate e: 1"},
        "db": {"eee": "rolled back"},
    }  # fmt: skip


def test_clusters_answers_merge_and_the_first_reason_wins() -> None:
    one = {"web": {"aaa": "on canary"}}
    two = {"web": {"aaa": "on eu-1", "bbb": "x"}, "db": {"ccc": "y"}}
    assert merge(one, two) == {"web": {"aaa": "on canary", "bbb": "x"}, "db": {"ccc": "y"}}
    assert merge() == {}


def test_a_lost_store_holds_the_rolled_back_revision_on_every_wave() -> None:
    r = the_rollout(autoRollback=True, waves=[
        {"name": "canary", "clusters": ["canary"], "bake": "1m"},
        {"name": "eu", "clusters": ["eu-1", "eu-2"]}])  # fmt: skip
    history = {"web": {V2: "wave canary: gate e: 0.2 on canary"}}
    t = tracker(r, history=history)  # no records: the store lost them
    found = t.records["web"]
    assert found.outcome == rec.ROLLED_BACK and found.revision == V2
    assert found.rejected == {V2: f"wave canary: gate e: 0.2 on canary {FROM_HISTORY}"}
    assert t.dirty == {"web"}
    # the canary was put back to v1, the others never left it: nobody gets v2 again
    now = actual({c: ("v1", READY) for c in ("canary", "eu-1", "eu-2")})
    p = plan(units(), now, r, now=10, verifier=t)
    assert dispatched(p) == []
    assert set(waiting(p)) == {"canary", "eu-1", "eu-2"}
    assert all(f"revision {V2} was rolled back (wave canary: gate e" in why
               for why in waiting(p).values())  # fmt: skip


def test_a_record_started_before_the_clusters_were_read_is_rolled_back_once_they_are() -> None:
    r = the_rollout()
    first = tracker(r)  # the first tick after a wipe: nothing read yet
    assert first.records["web"].outcome == rec.PROGRESSING
    history = {"web": {V2: "wave canary: gate e: 0.2", "old": "wave eu: x"}}
    again = tracker(r, records=first.records, history=history)
    found = again.records["web"]
    assert found.outcome == rec.ROLLED_BACK and again.dirty == {"web"}
    assert list(found.rejected) == [V2]  # a going record hears only of its own revision
    assert again.held("web") is not None
    # the next tick: nothing new, nothing to write
    third = tracker(r, records={"web": BundleRollout.from_json(found.to_json())},
                    history=history)  # fmt: skip
    assert third.dirty == set()


def test_a_new_commit_rolls_out_normally_and_carries_what_was_rolled_back() -> None:
    r = the_rollout()
    history = {"web": {V2: "wave canary: gate e: 0.2", "old": "wave eu: x"}}
    t = tracker(r, units=units("v3"), history=history)
    found = t.records["web"]
    assert found.revision == V3 and found.outcome == rec.PROGRESSING
    assert set(found.rejected) == {V2, "old"}
    assert t.held("web") is None
    p = plan(units("v3"), actual({c: ("v1", READY) for c in ("canary", "eu-1", "eu-2")}), r,
             now=10, verifier=t)  # fmt: skip
    assert dispatched(p) == ["canary"]


def test_a_failed_rollout_keeps_its_outcome_and_old_revisions_are_not_carried_again() -> None:
    failed = BundleRollout("web", V2, "c1", outcome=rec.FAILED, message="rollback failed on eu-1")
    records = {"web": failed}
    changed = reject_rolled_back(records, {"web": V2}, {"web": {V2: "why"}}, (), 5.0)
    assert changed == set() and failed.outcome == rec.FAILED and failed.rejected == {}
    going = BundleRollout("web", V3, "c3")
    going.rejected = {f"r{i}": "x" for i in range(rec.REJECTED_KEPT)}
    history = {"web": {"older": "y"}, "gone": {"z": "w"}}
    assert reject_rolled_back({"web": going}, {"web": V3}, history, (), 5.0) == set()
    assert "older" not in going.rejected
