"""Delete what left a bundle, and remove a bundle that left Git.

Prune only ever works from the inventory (what fleet itself applied), never from a label
search: an object someone else created is never deleted. An object is identified by its
key (group, kind, namespace, name; `fleet.engine.identity`), never by the apiVersion it
was applied as, so moving a manifest to a newer version is not a removal. On top of that,
an object is kept when

- it carries `fleet-gitops.io/prune: disabled` (the Flux `kustomize.toolkit.fluxcd.io/prune:
  disabled` and Argo CD `argocd.argoproj.io/sync-options: Prune=false` annotations are
  honoured too, so migrated repositories behave the same);
- its live owner is another bundle or another fleet (it moved; the new owner keeps it);
- another bundle of the fleet renders it at the commit being rolled out (`Claims`): it is
  being handed over, whichever of the two bundles runs first;
- its live uid is one this sync just applied (the same object under another apiVersion);
- it is a Namespace that a desired object (of any bundle of the fleet) lives in: it stays
  in the inventory and is pruned only once nothing desired lives in it;
- it is a namespace fleet created only because the bundle's objects needed it (as with
  Rancher Fleet, whose `deleteNamespace` defaults to false: deleting a namespace deletes
  everything in it, including what fleet never managed);
- it is a CustomResourceDefinition and the bundle did not set `deleteCRDResources: true`
  (deleting a CRD deletes every object of its kind; `fleet.engine.prune_guards`).

An entry whose kind the cluster no longer serves (CRD deleted, apiVersion removed) counts
as pruned: there is nothing left to delete.

Deletes use propagationPolicy Background and a uid precondition, in reverse apply order
(namespaced objects first, CRDs last). The caller decides *whether* to prune: never after a
render failure, an apply error, or an unreadable inventory (see `fleet.engine.unit`).
Removing a bundle deletes its inventory and then its revision history (`fleet.engine.history`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fleet.engine.apply import CRD_KEY, Action, ObjectResult
from fleet.engine.history import delete_history
from fleet.engine.identity import Claims, ClaimsSource, Owner, key_of
from fleet.engine.inventory import (
    Inventory,
    InventoryEntry,
    InventoryUnreadable,
    delete_inventory,
    drop_legacy,
    read_inventory,
    write_inventory,
)
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, KubeError, ObjectRef
from fleet.engine.labels import ANN_PRUNE
from fleet.engine.prune_guards import gone_result, is_crd, kept_crd, served_ref
from fleet.errors import FleetError
from fleet.manifest import Manifest
from fleet.states import BundleState

log = logging.getLogger(__name__)

LOST_LOCK_REMOVAL = "lost the lock of the unit; stopped, the inventory is kept for a retry"

KEEP_ANNOTATIONS = {
    ANN_PRUNE: "disabled",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}


def prune_disabled(live: Manifest) -> bool:
    """True when the live object asks to be kept when it leaves its bundle."""
    annotations = live.get("metadata", {}).get("annotations") or {}
    if any(annotations.get(k, "").lower() == v for k, v in KEEP_ANNOTATIONS.items()):
        return True
    argo = annotations.get("argocd.argoproj.io/sync-options", "")
    return "Prune=false" in [opt.strip() for opt in argo.split(",")]


def prune_candidates(old: Inventory, desired: Iterable[ObjectRef]) -> list[InventoryEntry]:
    """Entries of the old inventory whose object (by key) is not desired any more, in
    delete order."""
    keep = {key_of(ref) for ref in desired}
    gone = [e for e in old.objects if key_of(e.ref) not in keep]
    return sorted(gone, key=_delete_order)


@dataclass
class PrunePolicy:
    """What prune must know beyond the inventory: whose objects these are, what the
    commit still wants on the cluster, and what this sync just applied."""

    owner: Owner
    claims: ClaimsSource | None = None  # None: no other bundle is known (engine alone)
    applied_uids: set[str] = field(default_factory=set)
    namespaces_in_use: set[str] = field(default_factory=set)  # of this bundle's objects
    removing: bool = False  # the whole bundle goes: a namespace in use leaves the inventory
    delete_crds: bool = False  # deleteCRDResources: a CRD may be deleted (prune_guards)
    _claims: list[Claims | None] = field(default_factory=list, repr=False)

    def current_claims(self) -> Claims | None:
        """The commit's claims, computed at the first need (a prune of nothing needs none)."""
        if not self._claims:
            self._claims.append(self.claims() if self.claims is not None else None)
        return self._claims[0]

    def in_use(self, namespace: str) -> bool:
        if namespace in self.namespaces_in_use:
            return True
        claims = self.current_claims()
        return claims is not None and namespace in claims.namespaces

    def handed_to(self, ref: ObjectRef) -> list[str]:
        claims = self.current_claims()
        return claims.others(ref, self.owner.bundle) if claims is not None else []


def _delete_order(entry: InventoryEntry) -> tuple[int, str, str, str]:
    ref = entry.ref
    if (ref.group, ref.kind) == CRD_KEY:
        rank = 3
    elif (ref.group, ref.kind) == ("", "Namespace"):
        rank = 2
    else:
        rank = 0 if ref.namespace else 1
    return (rank, ref.kind, ref.namespace or "", ref.name)


def prune(
    conn: ClusterConnection,
    policy: PrunePolicy | str,
    entries: list[InventoryEntry],
    *,
    dry_run: bool = False,
) -> tuple[list[ObjectResult], list[InventoryEntry]]:
    """Delete `entries` from the cluster. Returns results and the entries still managed.

    An entry that could not be deleted (API error) stays in the inventory so the next sync
    tries again, and so does a namespace still in use; kept ones (prune disabled, other
    owner, handed over, created namespace) leave it. One GET per candidate checks the live
    object: prune sets are small, applies are not. `policy` may be a bare bundle name (no
    fleet, no claims: the engine's own tools).
    A kind the cluster no longer serves counts as pruned; a CRD is kept unless
    `policy.delete_crds` (the bundle's `deleteCRDResources`): `fleet.engine.prune_guards`.
    """
    if isinstance(policy, str):
        policy = PrunePolicy(Owner(policy))
    bundle = policy.owner.bundle
    results: list[ObjectResult] = []
    still_managed: list[InventoryEntry] = []
    for entry in entries:
        ref = entry.ref
        if entry.created_namespace:
            results.append(_kept(ref, "namespace created by fleet is kept"))
            continue
        if (ref.group, ref.kind) == ("", "Namespace") and policy.in_use(ref.name):
            results.append(_kept(ref, "desired objects still live in it"))
            if not policy.removing:
                still_managed.append(entry)  # pruned once nothing desired lives in it
            continue
        try:
            served = served_ref(conn, ref)
            if served is None:
                results.append(gone_result(ref))
                continue
            live = conn.get(served)
            if live is None:
                results.append(ObjectResult(ref, Action.PRUNED, message="already gone"))
                continue
            why = _keep_reason(policy, ref, live)
            if why:
                results.append(_kept(ref, why))
                continue
            if is_crd(ref) and not policy.delete_crds:
                results.append(kept_crd(conn, ref, live))
                continue
            if not dry_run:
                conn.delete(served, uid=live.get("metadata", {}).get("uid"))
                log.info("%s: pruned %s (left bundle %s)", conn.name, ref, bundle)
            results.append(ObjectResult(ref, Action.PRUNED))
        except ClusterUnreachable:
            raise
        except KubeError as err:
            log.warning("%s; it stays in the inventory and is retried next sync", err)
            results.append(ObjectResult(ref, Action.FAILED, BundleState.ERR_APPLIED, str(err)))
            still_managed.append(entry)
    return results, still_managed


def _keep_reason(policy: PrunePolicy, ref: ObjectRef, live: Manifest) -> str:
    """Why the live object must not be deleted, or ''."""
    if not policy.owner.owns(live):
        now = Owner.of_live(live)
        return f"now belongs to {now}" if now else "not created by fleet"
    if live.get("metadata", {}).get("uid") in policy.applied_uids:
        return "the same object was just applied (under another apiVersion)"
    handed = policy.handed_to(ref)
    if handed:
        return f"handed over to bundle {handed[0]}"
    if prune_disabled(live):
        return "prune disabled by annotation"
    return ""


def _kept(ref: ObjectRef, why: str) -> ObjectResult:
    return ObjectResult(ref, Action.KEPT, message=why)


@dataclass
class RemovalResult:
    """What removing one bundle from one cluster did, judged once for both runtimes.

    `state`: Ready (removed), OutOfSync (a dry run: it would be), ErrApplied (a delete
    failed, or nothing was removed: `error`). `message` is the one line a status row and
    a log show. `commit` is what the cluster ran (from the inventory), for the status row.
    """

    bundle: str
    objects: list[ObjectResult] = field(default_factory=list)
    dry_run: bool = False
    error: str | None = None
    commit: str = ""

    @classmethod
    def not_removed(cls, bundle: str, error: Exception, *, commit: str = "") -> RemovalResult:
        """The removal could not start (inventory unreadable, cluster unreachable)."""
        reason = error.reason if isinstance(error, FleetError) else str(error)
        return cls(bundle, error=f"not removed: {reason}", commit=commit)

    def count(self, action: Action) -> int:
        return sum(1 for o in self.objects if o.action is action)

    @property
    def failed(self) -> list[ObjectResult]:
        return [o for o in self.objects if o.action is Action.FAILED]

    @property
    def state(self) -> BundleState:
        if self.error is not None or self.failed:
            return BundleState.ERR_APPLIED
        return BundleState.OUT_OF_SYNC if self.dry_run else BundleState.READY

    @property
    def message(self) -> str:
        if self.error is not None:
            return self.error
        if self.failed:
            return self.failed[0].message
        verb = "would delete" if self.dry_run else "deleted"
        kept = self.count(Action.KEPT)
        return f"left Git: {verb} {self.count(Action.PRUNED)} objects" + (
            f", kept {kept}" if kept else ""
        )


def remove(
    conn: ClusterConnection,
    bundle: str,
    *,
    fleet: str | None = None,
    claims: ClaimsSource | None = None,
    keep_resources: bool = False,
    dry_run: bool = False,
    still_owner: Callable[[], bool] | None = None,
) -> RemovalResult:
    """`remove_bundle` as a result: an unreadable inventory is a failed removal, not an
    exception (nothing was deleted). `ClusterUnreachable` propagates (retry later).

    `claims`: what the commit being rolled out wants on this cluster; an object another
    bundle renders is handed over to it, not deleted, and so is a namespace its objects
    live in (the runtimes always pass it).

    `still_owner` (the runtime's lock) is asked before anything is deleted and again
    before the inventory is rewritten or deleted: a lost lock stops the removal there."""
    try:
        inv = read_inventory(conn, bundle, fleet=fleet)
    except InventoryUnreadable as err:
        return RemovalResult.not_removed(bundle, err)
    current = inv.current
    commit = current.commit if current else ""
    owner = still_owner or (lambda: True)
    if not dry_run and inv.exists and not owner():
        return RemovalResult(bundle, error=f"not removed: {LOST_LOCK_REMOVAL}", commit=commit)
    policy = PrunePolicy(Owner(bundle, fleet), claims, removing=True)
    objects = _remove(
        conn, inv, policy, keep_resources=keep_resources, dry_run=dry_run, owner=owner
    )
    if objects is None:
        return RemovalResult(bundle, error=f"partly removed: {LOST_LOCK_REMOVAL}", commit=commit)
    return RemovalResult(bundle, objects, dry_run, commit=commit)


def remove_bundle(
    conn: ClusterConnection,
    bundle: str,
    *,
    fleet: str | None = None,
    claims: ClaimsSource | None = None,
    keep_resources: bool = False,
    dry_run: bool = False,
) -> list[ObjectResult]:
    """A bundle left Git (or stopped targeting this cluster): remove it from the cluster.

    Deletes everything in its inventory (with the same safety rules as prune), then the
    inventory itself. With `keep_resources` (Rancher's keepResources) only the inventory
    record is dropped: the objects stay exactly as they are, bundle label included, so a
    human can still see where they came from; nothing will prune them any more. An
    unreadable inventory raises `InventoryUnreadable` and nothing is deleted. If some
    delete fails, the inventory is rewritten with what is left so a retry finishes the job.
    """
    inv = read_inventory(conn, bundle, fleet=fleet)
    policy = PrunePolicy(Owner(bundle, fleet), claims, removing=True)
    return _remove(conn, inv, policy, keep_resources=keep_resources, dry_run=dry_run) or []


def _remove(
    conn: ClusterConnection,
    inv: Inventory,
    policy: PrunePolicy,
    *,
    keep_resources: bool,
    dry_run: bool,
    owner: Callable[[], bool] = lambda: True,
) -> list[ObjectResult] | None:
    """The removal's results; None when the lock was lost before the inventory step."""
    bundle = inv.bundle
    if not inv.exists:
        return []
    results: list[ObjectResult] = []
    if keep_resources:
        results = [_kept(e.ref, "keepResources") for e in inv.objects]
        left: list[InventoryEntry] = []
    else:
        policy.delete_crds = inv.owner is not None and inv.owner.delete_crds
        results, left = prune(conn, policy, prune_candidates(inv, []), dry_run=dry_run)
    if dry_run:
        return results
    if not owner():
        log.warning("%s: lost the lock while removing %s; inventory kept", conn.name, bundle)
        return None
    if left:
        inv.objects = left
        write_inventory(conn, inv)
        drop_legacy(conn, inv)
        log.warning("%s: bundle %s partly removed; will retry the rest", conn.name, bundle)
    else:
        version = "" if inv.legacy else inv.resource_version
        delete_inventory(conn, bundle, fleet=inv.fleet, resource_version=version)
        drop_legacy(conn, inv)
        delete_history(conn, bundle, inv.fleet)
        log.info("%s: bundle %s removed (%d objects)", conn.name, bundle, len(results))
    return results
