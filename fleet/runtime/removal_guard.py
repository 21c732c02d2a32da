"""The mass-delete guard's counting in `fleet sync` (the verdict: `fleet.rollout.mass_delete`).

- `embedded_verdict` (`fleet sync`): before anything is written. Each removal's inventory
  is read (one GET per removed bundle, only when there are removals) and the objects that
  a unit of the commit still wants on the same cluster are subtracted (a bundle renamed
  or an object moved is a handover, not a delete); the fleet's total comes from the
  inventories' object counts (read for inventories written before fleet counted).
- `fleet.rollout.mass_delete.cached_verdict` (`fleet serve`): from the Redis state cache
  alone (the scheduler holds no credentials), with the counts workers reported. It
  cannot see handovers, so it is the more careful of the two: a large rename may need
  an explicit allow there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fleet.engine.inventory import InventoryUnreadable, read_inventory
from fleet.engine.kube import ClusterUnreachable, ObjectRef
from fleet.rollout.mass_delete import MassDelete, MassDeleteRule, RemovalCount, judge_mass_delete
from fleet.rollout.planner import Removal
from fleet.targeting.units import UnitKey

if TYPE_CHECKING:
    from fleet.runtime.embedded import SyncRun

Identity = tuple[str, str, str | None, str]  # group, kind, namespace, name


def embedded_verdict(run: SyncRun, removals: Sequence[Removal], rule: MassDeleteRule) -> MassDelete:
    """The verdict from the clusters' inventories (`fleet sync`); reads, never writes."""
    wanted: dict[str, set[Identity]] = {}
    counts = []
    for removal in removals:
        objects: int | None = 0
        if not removal.keep_resources and run.links[removal.cluster].down is None:
            if removal.cluster not in wanted:
                wanted[removal.cluster] = _wanted_on(run, removal.cluster)
            objects = _deleted(run, removal, wanted[removal.cluster])
        counts.append(RemovalCount(removal.bundle, removal.cluster, objects))
    deployed: dict[UnitKey, int | None] = {}
    for key, rec in run.actual.items():
        deployed[key] = rec.objects if rec.objects is not None else _listed(run, *key)
    return judge_mass_delete(run.desired.fleet_name, counts, deployed, set(run.units), rule)


def _wanted_on(run: SyncRun, cluster: str) -> set[Identity]:
    """What the commit's units on `cluster` apply (namespace as defaulted)."""
    found: set[Identity] = set()
    for unit in run.desired.units:
        if unit.cluster != cluster:
            continue
        for manifest in run.desired.manifests(unit):
            ref = ObjectRef.of(manifest)
            found.add((ref.group, ref.kind, ref.namespace or unit.options.target_namespace,
                       ref.name))  # fmt: skip
            found.add((ref.group, ref.kind, None, ref.name))  # cluster-scoped, or any
    return found


def _deleted(run: SyncRun, removal: Removal, wanted: set[Identity]) -> int | None:
    """Objects removing the bundle would delete: its inventory minus handovers."""
    try:
        inv = run.links[removal.cluster].call(
            f"read inventory of {removal.bundle}",
            lambda conn: read_inventory(conn, removal.bundle, run.desired.fleet_name),
        )
    except (ClusterUnreachable, InventoryUnreadable):
        return None
    deleted = 0
    for entry in inv.objects:
        ref = entry.ref
        if entry.created_namespace or (ref.group, ref.kind, ref.namespace, ref.name) in wanted:
            continue
        deleted += 1
    return deleted


def _listed(run: SyncRun, bundle: str, cluster: str) -> int | None:
    """How many objects an inventory lists, read when its annotation has no count."""
    link = run.links.get(cluster)
    if link is None or link.down is not None:
        return None
    try:
        fleet = run.desired.fleet_name
        inv = link.call(
            f"read inventory of {bundle}", lambda conn: read_inventory(conn, bundle, fleet)
        )
    except (ClusterUnreachable, InventoryUnreadable):
        return None
    return len(inv.objects)
