"""One (bundle, cluster) sync: rendered manifests -> apply -> prune -> wait healthy -> inventory.

`sync_unit` is `fleet.engine.deploy`, the verb both runtimes call (the embedded `fleet sync`
and the workers); it knows nothing about Git, targeting or Celery. Its phases run in
order on one `SyncPass` (what is known so far about each object), each a function:
`apply_crds` -> `apply_rest` -> `correct_drift` (when the bundle asks) -> `prune_leftovers`
-> `judge_health` -> the revision history (`fleet.engine.history_store`) -> the inventory
record and the owner stamp. Its promises:

- a no-op sync (same content, objects still there) makes no write request at all, and
  asks nothing of the revision history;
- nothing destructive happens after a render failure (`render_error`), an apply error, or
  when the inventory cannot be read;
- `dry_run` writes nothing: server-side dry-run applies and a YAML diff per object;
- `ClusterUnreachable` propagates (the caller retries the whole unit with backoff); every
  other API error is reported on its object and in the unit's state (ErrApplied);
- with `still_owner` (the runtime's lock: a Redis key or a Lease), the sync stops right
  before prune and right before the inventory write when the lock was lost: another
  writer has the unit now, so this one deletes nothing and records nothing (ErrApplied,
  `LOST_LOCK`); the engine knows only the callable, not the lock.

What the phases share, and the apply loop with its ownership rule, is
`fleet.engine.sync_pass`; `fleet.engine.inspection` looks at a deployed unit with the same
preparation as a sync and writes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fleet import config
from fleet.engine.apply import (
    CRD_KEY,
    Action,
    Desired,
    ObjectResult,
    ensure_namespaces,
    phase,
    prepare,
    resolve,
)
from fleet.engine.drift import DriftItem, detect_drift
from fleet.engine.health import Health
from fleet.engine.history_store import (
    Applied,
    history_due,
    is_redeploy,
    keep_revision,
    with_history,
)
from fleet.engine.identity import ClaimsSource, Owner
from fleet.engine.immutable import apply_or_recreate, force_wanted
from fleet.engine.inventory import (
    Inventory,
    InventoryEntry,
    InventoryUnreadable,
    OwnerStamp,
    drop_legacy,
    read_inventory,
    record,
    stamp_owner,
    store_inventory,
)
from fleet.engine.kube import (
    ClusterConnection,
    ClusterUnreachable,
    KubeError,
    ObjectRef,
)
from fleet.engine.prune import PrunePolicy, prune, prune_candidates
from fleet.engine.pull_secrets import PULL_HASH_PREFIX, PullSecret, apply_pull_secrets
from fleet.engine.sync_pass import SyncPass, dedupe
from fleet.engine.wait import wait_healthy
from fleet.manifest import Manifest
from fleet.spec.bundle_options import BundleOptions
from fleet.states import BundleState, worst_state

log = logging.getLogger(__name__)

CRD_WAIT_SECONDS = 60

OwnerCheck = Callable[[], bool]  # True while this run still holds the unit's lock
LOST_LOCK = "lost the lock of the unit before {step}: stopped, nothing pruned or recorded"


@dataclass
class UnitResult:
    """What one sync did to one cluster, and the state it left the bundle in."""

    bundle: str
    cluster: str
    deployment_id: str
    commit: str
    state: BundleState
    message: str
    objects: list[ObjectResult] = field(default_factory=list)
    writes: int = 0
    requests: int = 0
    created_namespaces: list[str] = field(default_factory=list)
    drift: list[DriftItem] = field(default_factory=list)
    diff: str = ""
    inventory_written: bool = False
    inventory_objects: int | None = None  # how many objects the inventory lists afterwards
    revision: int | None = None  # its number in the unit's history (`fleet.engine.history`)
    owner_stamped: bool = False
    lost_lock: bool = False  # stopped before prune or the inventory write (`still_owner`)
    dry_run: bool = False
    seconds: float = 0.0

    def count(self, action: Action) -> int:
        return sum(1 for o in self.objects if o.action is action)

    @property
    def pruned(self) -> list[ObjectRef]:
        return [o.ref for o in self.objects if o.action is Action.PRUNED]


def sync_unit(
    conn: ClusterConnection,
    bundle: str,
    deployment_id: str,
    commit: str,
    manifests: list[Manifest],
    options: BundleOptions,
    *,
    dry_run: bool = False,
    wait: bool = True,
    render_error: str | None = None,
    fleet: str | None = None,
    claims: ClaimsSource | None = None,
    still_owner: OwnerCheck | None = None,
    history_limit: int | None = None,
    pull_secrets: Sequence[PullSecret] | None = None,
) -> UnitResult:
    """Make one cluster run `manifests` for `bundle`; see the module docstring.

    With `fleet` (the runtimes always pass it; the engine's own tests deploy without one)
    the objects and the inventory are that fleet's, and the inventory is stamped as that
    fleet's afterwards, once, and only when the stamp read with the inventory differs
    (`fleet.engine.inventory` on ownership). `claims` tells what every bundle of the fleet
    renders on this cluster at this commit (`fleet.engine.identity`; called only when an
    object of another bundle is met): it decides handovers and conflicts. After a clean
    apply the unit's revision history (`fleet.engine.history`) records `manifests` and
    `options`, keeping the last `history_limit` revisions (default: FLEET_HISTORY_LIMIT).
    `pull_secrets` (the runtime's, from its credentials: `fleet.engine.pull_secrets`) are
    made in every namespace the objects use, and are in no manifest, history or diff; None
    (a rollback) keeps the ones made before, an empty list prunes them.
    """
    result = UnitResult(bundle, conn.name, deployment_id, commit, BundleState.READY, "")
    result.dry_run = dry_run
    read: list[Inventory] = []  # the inventory as read, once it was
    owner = Owner(bundle, fleet)
    mine = still_owner or (lambda: True)
    _sync(conn, result, owner, claims, manifests, options, wait=wait,
          render_error=render_error, read=read, still_owner=mine,
          history_limit=history_limit, pull_secrets=pull_secrets)  # fmt: skip
    if fleet is not None and not dry_run and read and not result.lost_lock:
        result.owner_stamped = _stamp(conn, result, read[0], fleet, options)
    return result


def _stamp(
    conn: ClusterConnection, result: UnitResult, old: Inventory, fleet: str, options: BundleOptions
) -> bool:
    """Write the owner stamp when the inventory exists and its stamp differs."""
    wanted = OwnerStamp(fleet, options.keep_resources, options.delete_crd_resources)
    if not (old.exists or result.inventory_written) or (old.owner == wanted and not old.legacy):
        return False
    return stamp_owner(conn, result.bundle, wanted)


def _sync(
    conn: ClusterConnection,
    result: UnitResult,
    owner: Owner,
    claims: ClaimsSource | None,
    manifests: list[Manifest],
    options: BundleOptions,
    *,
    wait: bool,
    render_error: str | None,
    read: list[Inventory],
    still_owner: OwnerCheck,
    history_limit: int | None = None,
    pull_secrets: Sequence[PullSecret] | None = None,
) -> UnitResult:
    """The phases of one sync, in order; each hands data to the next."""
    started, writes0, requests0 = time.monotonic(), conn.writes, conn.requests
    bundle, deployment_id, commit = result.bundle, result.deployment_id, result.commit

    def done(state: BundleState, message: str) -> UnitResult:
        result.state, result.message = state, message
        result.writes, result.requests = conn.writes - writes0, conn.requests - requests0
        result.seconds = time.monotonic() - started
        return result

    try:
        if render_error is not None:
            return done(
                BundleState.ERR_APPLIED,
                f"render failed: {render_error}; nothing applied or pruned, last revision kept",
            )
        try:
            old = read_inventory(conn, bundle, owner.fleet)
        except InventoryUnreadable as err:
            log.error("%s", err)
            return done(BundleState.ERR_APPLIED, str(err))
        read.append(old)

        run = SyncPass.of(conn, owner, options, result.dry_run, claims)
        run.pull_secrets = pull_secrets
        desired = dedupe(prepare(manifests, owner, deployment_id, options.target_namespace))
        crds = apply_crds(run, desired)
        result.created_namespaces = apply_rest(run, desired, crds)
        if run.drift_on:
            result.drift = correct_drift(run, desired)
        if not run.dry_run and not still_owner():
            return _lost(result, done, "prune")
        entries, pruned = prune_leftovers(run, old, result.created_namespaces)
        made = [run.outcome[d.ref] for d in desired if d.ref in run.outcome]
        made += [o for o in run.outcome.values() if o.hash.startswith(PULL_HASH_PREFIX)]
        result.objects = made + pruned
        if run.dry_run:
            result.diff = "".join(d for d in run.diffs if d)
            return done(*_dry_run_verdict(result.objects, bool(result.diff)))
        state, message = judge_health(run, desired, result.objects, wait=wait)
        new = record(old, entries, commit=commit, deployment_id=deployment_id,
                     state=state.value, message=message)  # fmt: skip
        keep = _applied_cleanly(result.objects) and history_due(old, new)
        if (keep or new is not None) and not still_owner():  # the record: history, inventory
            return _lost(result, done, "the inventory write")
        if keep:
            ready = state is BundleState.READY
            applied = Applied(owner, deployment_id, commit, manifests, options, ready)
            new = _keep_history(conn, applied, old, new, history_limit)
        kept = (new or old).current
        result.revision = (kept.history or None) if kept is not None else None
        if new is not None:  # at most one write, none when nothing changed
            store_inventory(conn, new)
            drop_legacy(conn, old)
            result.inventory_written = True
        result.inventory_objects = len(new.objects if new is not None else old.objects)
        return done(state, message)

    except ClusterUnreachable:
        raise
    except KubeError as err:  # forbidden LIST, inventory write refused, ...
        log.error("%s; the unit is ErrApplied and retried at the next sync", err)
        return done(BundleState.ERR_APPLIED, str(err))


def _keep_history(
    conn: ClusterConnection,
    applied: Applied,
    old: Inventory,
    new: Inventory | None,
    limit: int | None,
) -> Inventory | None:
    """Keep the revision in the unit's history; the inventory to write then (its current
    revision carrying the revision's number, so the next no-op sync asks nothing)."""
    limit = limit or config.current().history_limit
    redeploy = is_redeploy(old, applied.deployment_id)
    number = keep_revision(conn, applied, redeploy=redeploy, limit=limit)
    return with_history(old, new, number)


def _applied_cleanly(objects: list[ObjectResult]) -> bool:
    """Every object applied (none failed, none held for its CRD): a revision to keep."""
    return not any(o.action in (Action.FAILED, Action.HELD) for o in objects)


def _lost(
    result: UnitResult, done: Callable[[BundleState, str], UnitResult], step: str
) -> UnitResult:
    result.lost_lock = True
    log.warning("%s/%s: lost the lock before %s; stopping", result.cluster, result.bundle, step)
    return done(BundleState.ERR_APPLIED, LOST_LOCK.format(step=step))


def apply_crds(run: SyncPass, desired: list[Desired]) -> list[Desired]:
    """Phase 1: CRDs first, then wait until Established so their kinds can be resolved."""
    crds = [d for d in desired if (d.ref.group, d.ref.kind) == CRD_KEY]
    for item in crds:
        resolve(run.conn, item)
    run.read_live(crds)
    run.apply_all(crds, set())
    written = [d for d in crds if run.outcome[d.ref].action in (Action.CREATED, Action.CONFIGURED)]
    if written and not run.dry_run:
        timeout = min(run.timeout, CRD_WAIT_SECONDS)
        crd_health = wait_healthy(run.conn, run.bundle, crds, run.live, timeout=timeout)
        run.conn.invalidate()
        for ref, verdict in crd_health.items():
            if not verdict.ready and run.outcome[ref].action is not Action.FAILED:
                run.outcome[ref].message = verdict.message
    return crds


def apply_rest(run: SyncPass, desired: list[Desired], crds: list[Desired]) -> list[str]:
    """Phase 2: resolve kinds, make the namespaces needed, apply in order. Returns the
    namespaces fleet created (or, in a dry run, would create)."""
    outcome = run.outcome
    rest = [d for d in desired if (d.ref.group, d.ref.kind) != CRD_KEY]
    for item in rest:
        error = resolve(run.conn, item)
        if error:
            held = any(_crd_serves(c, item.ref) for c in crds)
            outcome[item.ref] = ObjectResult(
                item.ref,
                Action.HELD if held else Action.FAILED,
                BundleState.WAIT_APPLIED if held else BundleState.ERR_APPLIED,
                f"{item.ref}: waiting for its CustomResourceDefinition" if held else error,
            )
    rest = sorted((d for d in rest if d.ref not in outcome), key=phase)
    in_bundle = {d.ref.name for d in rest if (d.ref.group, d.ref.kind) == ("", "Namespace")}
    needed = {d.ref.namespace for d in rest if d.res and d.res.namespaced and d.ref.namespace}
    created, ns_errors = ensure_namespaces(
        run.conn,
        run.owner,
        needed - in_bundle,
        labels=run.options.namespace_labels,
        annotations=run.options.namespace_annotations,
        dry_run=run.dry_run,
    )
    for item in rest:
        if item.ref.namespace in ns_errors:
            outcome[item.ref] = ObjectResult(
                item.ref, Action.FAILED, BundleState.ERR_APPLIED, ns_errors[item.ref.namespace]
            )
    rest = [d for d in rest if d.ref not in outcome]
    run.read_live(rest, fresh=created)
    # a dry run cannot ask the server about objects in namespaces that do not exist yet
    missing_ns = {d.ref.name for d in rest if d.ref.kind == "Namespace" and d.ref not in run.live}
    skip = set(created) | missing_ns if run.dry_run else set()
    cluster_scoped = [d for d in rest if phase(d) < 3]  # the bundle's Namespaces among them
    run.apply_all(cluster_scoped, skip)
    if run.pull_secrets:  # before the Pods that pull with them
        failed_ns = {o.ref.name for o in outcome.values() if o.ref.kind == "Namespace"
                     and o.action is Action.FAILED}  # fmt: skip
        using = {d.ref.namespace for d in rest if phase(d) >= 3 and d.ref.namespace}
        made = apply_pull_secrets(run.conn, run.owner, run.pull_secrets, using - failed_ns,
                                  dry_run=run.dry_run)  # fmt: skip
        outcome.update({o.ref: o for o in made})
        if run.dry_run:
            run.diffs += [f"~~~ {o.ref}: {o.action.value} (pull secret, values not shown)\n"
                          for o in made if o.action is not Action.UNCHANGED]  # fmt: skip
    run.apply_all([d for d in rest if phase(d) >= 3], skip)
    return created


def correct_drift(run: SyncPass, desired: list[Desired]) -> list[DriftItem]:
    """Phase 3: objects fleet did not need to write may still have been edited by hand;
    re-apply those (correctDrift). Returns what drifted.

    The correction is a server-side apply with force: the user asked for Git's values
    back, so fields another manager took (`kubectl scale` through the scale subresource,
    `kubectl edit`) are taken over, as Argo CD's self-heal and Flux do. Only objects of
    this bundle get here (read by its bundle label). `correctDrift.force` keeps Rancher's
    meaning: recreate an object whose immutable fields differ (`fleet.engine.immutable`)."""
    outcome, live = run.outcome, run.live
    unchanged = [d for d in desired if outcome.get(d.ref) is not None]
    unchanged = [d for d in unchanged if outcome[d.ref].action is Action.UNCHANGED]
    patches = run.options.diff.compare_patches if run.options.diff else []
    drift = detect_drift(run.conn, unchanged, live, patches)
    by_ref = {d.ref: d for d in unchanged}
    for item in drift:
        if item.reason == "error":
            continue
        fixed = apply_or_recreate(run.conn, by_ref[item.ref], run.owner, exists=True,
                                  force=True, recreate=force_wanted(run.options, drift=True),
                                  live=live.get(item.ref), timeout=run.timeout)  # fmt: skip
        if fixed.action is Action.CONFIGURED:
            fixed.action, fixed.message = Action.CORRECTED, str(item)
            log.info("%s: corrected drift of %s", run.conn.name, item)
        if fixed.live is not None:
            live[item.ref] = fixed.live
        outcome[item.ref] = fixed
    return drift


def prune_leftovers(
    run: SyncPass, old: Inventory, created: list[str]
) -> tuple[list[InventoryEntry], list[ObjectResult]]:
    """Phase 4: prune what left the bundle (never after an apply error: kept for the next
    successful sync). Returns the next inventory's entries and the prune results."""
    outcome = run.outcome
    failed = any(o.action is Action.FAILED for o in outcome.values())
    entries = [
        InventoryEntry(r.ref, r.hash)
        for r in outcome.values()
        if r.action is not Action.FAILED and r.action is not Action.HELD
    ]
    entries += _carried_over(old, outcome, created)
    if run.pull_secrets is None:  # a rollback: the pull secrets made before stay
        entries += [e for e in old.objects
                    if e.hash.startswith(PULL_HASH_PREFIX) and e.ref not in outcome]  # fmt: skip
    pruned: list[ObjectResult] = []
    leaving = prune_candidates(old, [*outcome, *(e.ref for e in entries)])
    if failed:
        entries += leaving  # prune them after the next successful sync
    elif run.options.keep_resources:
        pruned = [ObjectResult(e.ref, Action.KEPT, message="keepResources") for e in leaving]
    elif leaving:
        policy = PrunePolicy(
            run.owner,
            run.claims_source and run.claims,
            applied_uids={str(obj.get("metadata", {}).get("uid")) for obj in run.live.values()},
            namespaces_in_use={ref.namespace for ref in outcome if ref.namespace},
            delete_crds=run.options.delete_crd_resources,
        )
        pruned, still = prune(run.conn, policy, leaving, dry_run=run.dry_run)
        entries += still
    if run.dry_run:
        run.diffs += [
            f"--- live/{p.ref}\n+++ (deleted)\n" for p in pruned if p.action is Action.PRUNED
        ]
        run.diffs += [f"+++ Namespace {ns} (created)\n" for ns in created]
    return entries, pruned


def judge_health(
    run: SyncPass, desired: list[Desired], objects: list[ObjectResult], *, wait: bool
) -> tuple[BundleState, str]:
    """Phase 5: wait (up to the bundle's timeout) for what was applied to be healthy;
    the unit's state is the worst of its objects'."""
    applied = [
        d
        for d in desired
        if d.res is not None and run.outcome[d.ref].action not in (Action.FAILED, Action.HELD)
    ]
    timeout = run.timeout if wait else 0
    health = wait_healthy(run.conn, run.bundle, applied, run.live, timeout=timeout)
    _merge_health(objects, health)
    state = worst_state(o.state for o in objects)
    return state, _message(objects, state, timeout)


def _dry_run_verdict(objects: list[ObjectResult], changed: bool) -> tuple[BundleState, str]:
    errors = [o for o in objects if o.state is BundleState.ERR_APPLIED]
    if errors:
        return BundleState.ERR_APPLIED, errors[0].message
    if changed:
        return BundleState.OUT_OF_SYNC, "would change: see diff"
    return BundleState.READY, "in sync"


def _crd_serves(crd: Desired, ref: ObjectRef) -> bool:
    spec = crd.body.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v.get("name") for v in spec.get("versions") or []]
    return bool(ref.group == spec.get("group") and ref.kind == names.get("kind")) and (
        ref.api_version.rpartition("/")[2] in versions
    )


def _carried_over(
    old: Inventory, outcome: dict[ObjectRef, ObjectResult], created: list[str]
) -> list[InventoryEntry]:
    """Entries that stay recorded although not applied now: failed/held objects fleet
    applied before, and namespaces fleet created (old ones still needed, and new ones)."""
    keep: list[InventoryEntry] = []
    for entry in old.objects:
        res = outcome.get(entry.ref)
        if res is not None and res.action in (Action.FAILED, Action.HELD):
            keep.append(entry)
    needed = {ref.namespace for ref in outcome if ref.namespace}
    old_created = {e.ref.name for e in old.objects if e.created_namespace}
    for name in sorted((old_created & needed) | set(created)):
        keep.append(InventoryEntry(ObjectRef("v1", "Namespace", None, name), "", True))
    return keep


def _merge_health(objects: list[ObjectResult], health: dict[ObjectRef, Health]) -> None:
    for obj in objects:
        verdict = health.get(obj.ref)
        if obj.state is BundleState.READY and verdict is not None and not verdict.ready:
            obj.state, obj.message = BundleState.NOT_READY, f"{obj.ref}: {verdict.message}"


def _message(objects: list[ObjectResult], state: BundleState, waited: float) -> str:
    for obj in objects:
        if obj.state is state and state is not BundleState.READY:
            extra = f" (after waiting {waited:.0f}s)" if state is BundleState.NOT_READY else ""
            return obj.message + extra
    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj.action.value] = counts.get(obj.action.value, 0) + 1
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    ready = sum(1 for o in objects if o.action is not Action.PRUNED and o.action is not Action.KEPT)
    return f"{ready} objects ready" + (f" ({summary})" if summary else "")
