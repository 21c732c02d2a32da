"""What must survive a lost rollout store: the revisions that were rolled back.

The rollout records (`fleet.rollout.record`) live in a store that can be lost: Redis in
the distributed mode (a wipe, a failover to an empty replica), the clusters'
`fleet-system/<fleet>.rollout` ConfigMaps in the embedded one (deleted by hand). Most of
a record can be lost at no cost (a wave being verified is verified again), but not the
revisions that were rolled back: without them a runtime would roll the bad revision out
again, to the canary and then to the later waves.

Those are also in the clusters' revision history (`fleet.engine.history`): a rollback
marks the revision it leaves `rolledBack`, with its reason and JSON details naming the
rollout revision (`{"revision": <12 hex>, ...}`: both runtimes' automatic rollbacks and
`fleet rollout rollback` write them). So the runtimes read them back with one
metadata-only LIST per cluster (`fleet.engine.list_rolled_back`), `rolled_back_of`
turns each cluster's answer into bundle -> revision -> why, `merge` joins the clusters,
and the tracker rejects them again when it begins (`reject_rolled_back`).

A revision is only ever added to a record's `rejected` here, never taken out, and a
record that already rejects everything the clusters report is not touched, so a store
that lost nothing is not written to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fleet.engine.history import Revision
from fleet.rollout import record as rec
from fleet.rollout.record import BundleRollout

RolledBack = dict[str, dict[str, str]]  # bundle -> rollout revision -> why
FROM_HISTORY = "(from the clusters' revision history)"


def rolled_back_of(revisions: Iterable[Revision]) -> RolledBack:
    """bundle -> rollout revision -> why, from a cluster's `rolledBack` revisions; a
    revision whose details name no rollout revision (rolled back by an older fleet, or by
    `fleet.engine` directly) says nothing about a rollout and is left out."""
    found: RolledBack = {}
    for revision in revisions:
        details = revision.details if isinstance(revision.details, dict) else {}
        rollout = details.get("revision")
        if revision.status != "rolledBack" or not isinstance(rollout, str) or not rollout:
            continue
        wave = details.get("wave")
        why = revision.reason or "rolled back"
        if isinstance(wave, str) and wave and not why.startswith(f"wave {wave}:"):
            why = f"wave {wave}: {why}"
        found.setdefault(revision.bundle, {}).setdefault(rollout, why)
    return found


def merge(*answers: Mapping[str, Mapping[str, str]]) -> RolledBack:
    """Several clusters' answers as one (the first reason given for a revision wins)."""
    found: RolledBack = {}
    for answer in answers:
        for bundle, revisions in answer.items():
            mine = found.setdefault(bundle, {})
            for revision, why in revisions.items():
                mine.setdefault(revision, why)
    return found


def reject_rolled_back(
    records: Mapping[str, BundleRollout],
    current: Mapping[str, str],
    rolled_back: Mapping[str, Mapping[str, str]],
    started: Iterable[str],
    now: float,
) -> set[str]:
    """Reject again what the clusters say was rolled back; the bundles whose record changed.

    `current`: bundle -> the revision the commit gives it; `started`: the bundles whose
    record was just created or restarted (after a lost store, everything reported is
    carried into it). A record that goes on is only told about its own revision while
    that is still `progressing` (the store was lost before the clusters were read, or
    `fleet rollout rollback` put it back): it is rejected and the record marked
    `rolledBack`. Nothing else of a going record changes: a failed rollout keeps its
    outcome (a rollback that failed on some clusters stays `failed`, for `resume`), and
    old revisions are not carried in again each time (`REJECTED_KEPT` bounds `rejected`:
    the oldest would go out and in again)."""
    fresh = set(started)
    changed: set[str] = set()
    for bundle, revisions in sorted(rolled_back.items()):
        found = records.get(bundle)
        revision = current.get(bundle)
        if found is None or revision is None:
            continue
        going = found.revision == revision and found.outcome == rec.PROGRESSING
        for rolled, why in revisions.items():
            if rolled in found.rejected or not (bundle in fresh or (going and rolled == revision)):
                continue
            found.reject(rolled, f"{why} {FROM_HISTORY}")
            changed.add(bundle)
        if going and revision in revisions and revision in found.rejected:
            found.outcome, found.finished_at = rec.ROLLED_BACK, now
            found.message = found.rejected[revision]
            changed.add(bundle)
    return changed
