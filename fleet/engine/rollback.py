"""Put a unit's previous good revision back, from the history kept in the cluster.

`rollback_unit` is what a failed rollout gate and `fleet rollout rollback BUNDLE [--to N]`
call. It never renders anything: the target revision's stored manifests are applied with
its stored options through the same `sync_unit` a deploy uses, so apply, prune (what the
rolled-back revision added is deleted, what it removed comes back), ownership, health and
the inventory work exactly as for a sync, and the inventory afterwards names the old
deployment id and commit. The revision rolled back from is marked `rolledBack` (with the
reason and the caller's details) before anything is applied; the target's own revision
is updated (`ready` once healthy), never duplicated.
"""

from __future__ import annotations

from typing import Any

from fleet.engine.history import Revision, list_revisions, mark_revision, previous_good
from fleet.engine.identity import ClaimsSource
from fleet.engine.inventory import read_inventory
from fleet.engine.kube import ClusterConnection
from fleet.engine.unit import LOST_LOCK, OwnerCheck, UnitResult, sync_unit
from fleet.errors import UserError


class RollbackRefused(UserError):
    """Nothing to roll back to (no previous good revision, an unknown or unrollbackable
    one, a bundle not deployed): one line naming the bundle and the cluster."""


def rollback_unit(
    conn: ClusterConnection,
    bundle: str,
    fleet: str | None,
    *,
    to: int | None = None,
    reason: str,
    details: Any = None,
    wait: bool = True,
    claims: ClaimsSource | None = None,
    still_owner: OwnerCheck | None = None,
    history_limit: int | None = None,
) -> UnitResult:
    """Roll `bundle` back on this cluster to revision `to` (a number of its history), or
    by default to `previous_good` of what runs now; returns the sync's `UnitResult`.

    `reason` (one line) and `details` (JSON, e.g. the rejected deployment ids) are stored
    on the revision rolled back from. `RollbackRefused` when there is nothing to roll
    back to; `InventoryUnreadable`, `HistoryUnreadable` and `KubeError`s propagate."""
    where = f"bundle {bundle} on cluster {conn.name}"
    current = read_inventory(conn, bundle, fleet).current
    if current is None:
        raise RollbackRefused(f"{where}: not deployed, nothing to roll back")
    revisions = list_revisions(conn, bundle, fleet)
    target = _target(revisions, current.deployment_id, to, where).load(conn)
    manifests, options = target.manifests, target.options
    if not target.rollbackable or manifests is None or options is None:
        raise RollbackRefused(
            f"{where}: revision {target.number} cannot be rolled back to: "
            f"{target.not_rollbackable_reason or 'its manifests were not kept'}"
        )
    if still_owner is not None and not still_owner():
        raise RollbackRefused(f"{where}: {LOST_LOCK.format(step='the rollback')}")
    mark_revision(conn, bundle, fleet, current.deployment_id, "rolledBack", reason, details)
    return sync_unit(
        conn,
        bundle,
        target.deployment_id,
        target.commit,
        manifests,
        options,
        wait=wait,
        fleet=fleet,
        claims=claims,
        still_owner=still_owner,
        history_limit=history_limit,
    )


def _target(revisions: list[Revision], current_id: str, to: int | None, where: str) -> Revision:
    if to is None:
        found = previous_good(revisions, current_id)
        if found is None:
            raise RollbackRefused(
                f"{where}: no previous good revision to roll back to "
                f"(history: {_summary(revisions)})"
            )
        return found
    by_number = {r.number: r for r in revisions}
    if to not in by_number:
        raise RollbackRefused(
            f"{where}: no revision {to} in its history (history: {_summary(revisions)})"
        )
    if by_number[to].deployment_id == current_id:
        raise RollbackRefused(f"{where}: revision {to} is what runs there now")
    return by_number[to]


def _summary(revisions: list[Revision]) -> str:
    if not revisions:
        return "empty"
    return ", ".join(f"{r.number} {r.status}" for r in revisions)
