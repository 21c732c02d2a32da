"""What the phases of one sync share, and the apply loop that decides and writes each object.

`fleet.engine.unit` runs the phases (CRDs, the rest, drift, prune, health, the record);
each applies its objects through `SyncPass.apply_all`, which holds the one rule of a write:
an object is written only when it changed and `fleet.engine.ownership` lets this bundle
write it; a create that meets an object made a moment ago by a sibling unit (a 409) reads
it again and decides again, once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from fleet.engine.apply import Action, Desired, ObjectResult, is_unchanged, live_objects
from fleet.engine.drift import object_diff
from fleet.engine.fanout import fan_out
from fleet.engine.identity import Claims, ClaimsSource, Owner
from fleet.engine.immutable import apply_or_recreate, force_wanted
from fleet.engine.kube import ClusterConnection, Conflict, ObjectRef
from fleet.engine.ownership import Claim, decide, release_previous
from fleet.engine.pull_secrets import PullSecret
from fleet.engine.wait import DEFAULT_WAIT_SECONDS
from fleet.manifest import Manifest
from fleet.spec.bundle_options import BundleOptions
from fleet.states import BundleState

log = logging.getLogger(__name__)


def force_choices(options: BundleOptions) -> tuple[bool, bool]:
    """(force for applies of the bundle's own objects, force for drift corrections), as
    the bundle asks. Taking an object from another owner is `fleet.engine.ownership`'s."""
    helm = options.helm
    apply_force = bool(helm and helm.force)
    drift = options.correct_drift
    return apply_force, apply_force or bool(drift and drift.force)


# Kinds other objects refer to by name, applied (side by side) before the rest: a Pod
# whose ServiceAccount does not exist yet is refused, a Deployment's pods wait for their
# ConfigMap or Secret. Helm's install order puts the same kinds first.
FIRST_TIER = frozenset({
    ("", "ServiceAccount"), ("", "Secret"), ("", "ConfigMap"), ("", "PersistentVolumeClaim"),
    ("", "LimitRange"), ("", "ResourceQuota"), ("", "Service"), ("", "Endpoints"),
    ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("networking.k8s.io", "NetworkPolicy"), ("policy", "PodDisruptionBudget"),
    ("scheduling.k8s.io", "PriorityClass"), ("storage.k8s.io", "StorageClass"),
    ("", "PersistentVolume"),
})  # fmt: skip


def tiers(batch: Sequence[Desired]) -> list[list[Desired]]:
    """`batch` in the tiers it is written in: the objects in FIRST_TIER, then the rest
    (each in the batch's order); empty tiers are left out."""
    first = [d for d in batch if (d.ref.group, d.ref.kind) in FIRST_TIER]
    rest = [d for d in batch if (d.ref.group, d.ref.kind) not in FIRST_TIER]
    return [tier for tier in (first, rest) if tier]


def dedupe(desired: list[Desired]) -> list[Desired]:
    """The same object twice in a bundle: the last one wins, as with `kubectl apply`."""
    by_ref: dict[ObjectRef, Desired] = {}
    for item in desired:
        if item.ref in by_ref:
            log.warning("%s appears twice in the bundle; the last one is applied", item.ref)
        by_ref[item.ref] = item
    return list(by_ref.values())


@dataclass
class SyncPass:
    """What the phases of one sync share: the connection, the bundle's choices, and what
    is known so far about each object (its outcome, its live state, a dry run's diffs)."""

    conn: ClusterConnection
    owner: Owner
    options: BundleOptions
    dry_run: bool
    claims_source: ClaimsSource | None = None
    apply_force: bool = False
    correct_force: bool = False
    drift_on: bool = False
    timeout: float = DEFAULT_WAIT_SECONDS
    outcome: dict[ObjectRef, ObjectResult] = field(default_factory=dict)
    live: dict[ObjectRef, Manifest] = field(default_factory=dict)
    diffs: list[str] = field(default_factory=list)
    pull_secrets: Sequence[PullSecret] | None = None  # None: keep the ones made before
    _claims: list[Claims | None] = field(default_factory=list, repr=False)

    @classmethod
    def of(
        cls,
        conn: ClusterConnection,
        owner: Owner,
        options: BundleOptions,
        dry_run: bool,
        claims: ClaimsSource | None = None,
    ) -> SyncPass:
        apply_force, correct_force = force_choices(options)
        drift_on = bool(options.correct_drift and options.correct_drift.enabled) and not dry_run
        timeout = options.wait_timeout_seconds or DEFAULT_WAIT_SECONDS
        return cls(conn, owner, options, dry_run, claims, apply_force, correct_force,
                   drift_on, timeout)  # fmt: skip

    @property
    def bundle(self) -> str:
        return self.owner.bundle

    def claims(self) -> Claims | None:
        """The commit's claims on this cluster, computed at the first need."""
        if not self._claims:
            source = self.claims_source
            self._claims.append(source() if source is not None else None)
        return self._claims[0]

    def read_live(self, batch: list[Desired], fresh: Collection[str] = ()) -> None:
        """The batch's live objects (whole ones when a diff or drift check needs them);
        nothing is read in the namespaces `fresh` (created by this sync just now)."""
        full = self.dry_run or self.drift_on
        self.live.update(live_objects(self.conn, self.owner, batch, full=full, fresh=fresh))

    def apply_all(self, batch: list[Desired], skip_ns: set[str]) -> None:
        """Apply what changed; an unchanged object is not written (a no-op writes nothing).
        An object of another owner is written only when `fleet.engine.ownership` says so.

        The batch goes in tiers (`tiers`): the objects others refer to (ServiceAccounts,
        ConfigMaps, Secrets, claims, RBAC, Services ...) before the workloads and the
        rest, and the writes of one tier side by side (`fleet.engine.fanout`; a dry run
        one by one, so its diffs keep the bundle's order). The outcomes are recorded in
        the batch's order whatever answer came first.

        An object that did not exist when it was read but does when it is created (a
        sibling unit, synced at the same time, created it a moment ago: typically the
        namespace it made for its own objects) is read again and decided again, once."""
        self.claims()  # computed once, before the writes of a tier run side by side
        for tier in tiers(batch):
            if self.dry_run:
                results = [self._apply_checked(item, skip_ns, self.conn) for item in tier]
            else:
                calls = [functools.partial(self._apply_checked, item, skip_ns) for item in tier]
                results = fan_out(self.conn, calls)
            for item, res in zip(tier, results, strict=True):
                if res is not None:
                    self.outcome[item.ref] = res

    def _apply_checked(
        self, item: Desired, skip_ns: set[str], conn: ClusterConnection
    ) -> ObjectResult | None:
        res = self._apply_item(item, skip_ns, conn)
        if res is not None and self._created_meanwhile(item, res):
            self.live.pop(item.ref, None)
            again = conn.get(item.ref)
            if again is not None:
                self.live[item.ref] = again
            res = self._apply_item(item, skip_ns, conn)
        return res

    def _created_meanwhile(self, item: Desired, res: ObjectResult) -> bool:
        return (
            not self.dry_run
            and item.ref not in self.live
            and res.action is Action.FAILED
            and isinstance(res.error, Conflict)
        )

    def _apply_item(
        self, item: Desired, skip_ns: set[str], conn: ClusterConnection
    ) -> ObjectResult | None:
        """One object's decision and write on `conn` (the pass's connection or a fork of
        it); None when it was recorded already (refused). Only this object's entries of
        `outcome` and `live` are touched, so the objects of one tier may run at once."""
        take = bool(self.options.helm and self.options.helm.take_ownership)
        current = self.live.get(item.ref)
        verdict = decide(item.ref, current, self.owner, self.claims, take_ownership=take)
        if not verdict.claim.may_write:
            log.warning("%s: %s", conn.name, verdict.message)
            self.outcome[item.ref] = ObjectResult(
                item.ref, Action.FAILED, BundleState.ERR_APPLIED, verdict.message
            )
            self.live.pop(item.ref, None)  # not ours: never judged, diffed or pruned
            return None
        if verdict.claim is Claim.OURS and not self.dry_run and is_unchanged(item, current):
            return ObjectResult(item.ref, Action.UNCHANGED, hash=item.hash)
        if self.dry_run and current is None and item.ref.namespace in skip_ns:
            res = ObjectResult(item.ref, Action.CREATED, hash=item.hash, live=item.body)
        else:
            force = verdict.claim.forced or (verdict.claim is Claim.OURS and self.apply_force)
            recreate = verdict.claim is Claim.OURS and force_wanted(self.options, drift=False)
            res = apply_or_recreate(conn, item, self.owner, exists=current is not None,
                                    force=force, live=current, recreate=recreate,
                                    dry_run=self.dry_run, timeout=self.timeout)  # fmt: skip
            if verdict.claim.forced and res.action is not Action.FAILED:
                log.info("%s: %s", conn.name, verdict.message)
                if not self.dry_run and verdict.previous and res.live is not None:
                    release_previous(conn, item.ref, res.live, verdict.previous)
        if self.dry_run and res.live is not None:
            self.diffs.append(object_diff(item.ref, current, res.live))
            if current is not None and not self.diffs[-1]:
                res.action = Action.UNCHANGED
        elif res.live is not None:
            self.live[item.ref] = res.live
        return res
