"""Server-side apply of a bundle's objects to one cluster: ownership metadata, order, no-op skip.

Every object fleet applies carries (`fleet.engine.identity.Owner`)

- labels `fleet-gitops.io/bundle` and `fleet-gitops.io/fleet`: the bundle and fleet names as
  valid label values (long or odd names are shortened with a hash suffix,
  deterministically), so one LIST with a label selector finds all of a bundle's objects of
  a kind;
- annotations `fleet-gitops.io/bundle-name` and `fleet-gitops.io/fleet`: the full names;
- its field manager `fleet/<fleet>/<bundle>`: the API server itself sees two bundles
  writing one field (`fleet.engine.ownership` decides before that who may write it);
- annotation `fleet-gitops.io/applied-hash`: sha256 of the object's desired content (the
  rendered manifest, before fleet's metadata is added). An object whose live annotation
  equals the desired hash is not written again, which is what makes a no-op sync write
  nothing;
- annotation `fleet-gitops.io/deployment-id`: the deployment that last *wrote* the object.
  It is deliberately not part of the hash: a new deployment id (another object of the
  bundle changed) must not rewrite every object. The inventory holds the current id.

Order: CRDs (then wait until Established), Namespaces, other cluster-scoped objects,
namespaced objects - the order in which each can be accepted by the API server.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fleet.engine.fanout import fan_out
from fleet.engine.health import STATUSLESS_KINDS
from fleet.engine.identity import Owner, key_of, short_name
from fleet.engine.kube import (
    ClusterConnection,
    ClusterUnreachable,
    Conflict,
    KubeError,
    NotFound,
    ObjectRef,
    ResourceType,
)
from fleet.engine.labels import (
    ANN_DEPLOYMENT,
    ANN_HASH,
    LABEL_BUNDLE,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)
from fleet.engine.ownership import conflict_message
from fleet.manifest import Manifest
from fleet.states import BundleState

log = logging.getLogger(__name__)


CRD_KEY = ("apiextensions.k8s.io", "CustomResourceDefinition")
# Server-owned metadata a rendered manifest may carry (e.g. copied from `kubectl get`);
# sending resourceVersion would turn the apply into an optimistic-lock update.
_SERVER_METADATA = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation")


class Action(StrEnum):
    """What the engine did (or, in a dry run, would do) with one object."""

    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    HELD = "held"  # not applied: something it needs (its CRD) is not there
    PRUNED = "pruned"
    KEPT = "kept"  # left the bundle but kept (keepResources, prune disabled, other owner)
    CORRECTED = "corrected"  # drift put back
    RECREATED = "recreated"  # deleted and created again: an immutable field changed (force)


@dataclass
class ObjectResult:
    """The outcome for one object; `message` is one line, empty when all is well."""

    ref: ObjectRef
    action: Action
    state: BundleState = BundleState.READY
    message: str = ""
    hash: str = ""
    live: Manifest | None = field(default=None, repr=False)
    error: KubeError | None = field(default=None, repr=False, compare=False)  # a failed write's


@dataclass
class Desired:
    """One object as fleet will apply it, with its discovery info once resolved."""

    ref: ObjectRef
    body: Manifest  # manifest plus fleet's labels/annotations
    hash: str
    res: ResourceType | None = None


def bundle_label(bundle: str) -> str:
    """The value of the `fleet-gitops.io/bundle` label for a bundle name."""
    return short_name(bundle)


def bundle_selector(bundle: str) -> str:
    return f"{LABEL_BUNDLE}={bundle_label(bundle)}"


def object_hash(manifest: Manifest) -> str:
    """sha256 of the canonical JSON of a manifest (key order does not matter)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def with_ownership(manifest: Manifest, owner: Owner, deployment_id: str, digest: str) -> Manifest:
    """A copy of `manifest` carrying fleet's labels and annotations (the input is untouched)."""
    body = dict(manifest)
    meta = dict(body.get("metadata") or {})
    for key in _SERVER_METADATA:
        meta.pop(key, None)
    meta["labels"] = {**(meta.get("labels") or {}), **owner.labels()}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        **owner.annotations(),
        ANN_DEPLOYMENT: deployment_id,
        ANN_HASH: digest,
    }
    body["metadata"] = meta
    return body


def phase(desired: Desired) -> int:
    """0 CRDs, 1 Namespaces, 2 other cluster-scoped, 3 namespaced (unresolved kinds last)."""
    key = (desired.ref.group, desired.ref.kind)
    if key == CRD_KEY:
        return 0
    if key == ("", "Namespace"):
        return 1
    if desired.res is None:
        return 4
    return 3 if desired.res.namespaced else 2


def prepare(
    manifests: list[Manifest], owner: Owner, deployment_id: str, default_namespace: str
) -> list[Desired]:
    """Desired objects with ownership metadata and hashes; scope is resolved later."""
    prepared: list[Desired] = []
    for manifest in manifests:
        digest = object_hash(manifest)
        body = with_ownership(manifest, owner, deployment_id, digest)
        if not body["metadata"].get("namespace"):
            body["metadata"]["namespace"] = default_namespace  # dropped if cluster-scoped
        prepared.append(Desired(ObjectRef.of(body), body, digest))
    return prepared


def resolve(conn: ClusterConnection, desired: Desired) -> str:
    """Look up the object's resource type; fixes the namespace by scope. '' or an error."""
    try:
        desired.res = conn.resource(desired.ref.api_version, desired.ref.kind)
    except ClusterUnreachable:
        raise
    except KubeError as err:
        return str(err)
    if not desired.res.namespaced and desired.ref.namespace:
        desired.body["metadata"].pop("namespace", None)
        desired.ref = ObjectRef.of(desired.body)
    return ""


def live_objects(
    conn: ClusterConnection,
    owner: Owner,
    desired: list[Desired],
    *,
    full: bool = False,
    fresh: Collection[str] = (),
) -> dict[ObjectRef, Manifest]:
    """The live objects of the desired ones: one LIST per kind and namespace, and one more
    (metadata only) where some desired object was not among the owner's.

    The first LIST selects the owner's objects (the steady state: everything is found).
    What it misses is either new, or exists under another owner (moved from another
    bundle, created by someone else): the second, unselected metadata-only LIST tells, so
    the ownership rules (`fleet.engine.ownership`) can decide before anything is written.
    Kinds without status (ConfigMap, Secret, RBAC, ...) are read metadata-only: their
    existence and annotations are all the engine needs, and a Secret's data is never read.
    `full` reads the owner's whole objects (drift and dry-run diffs need them). The
    namespaces in `fresh` were created by this sync a moment ago: nothing is listed there
    (an object a sibling creates there meanwhile is met by the apply, see
    `fleet.engine.sync_pass`). The LISTs go out side by side (`fleet.engine.fanout`).
    """
    groups: dict[tuple[ResourceType, str | None], list[Desired]] = {}
    for item in desired:
        if item.res is not None:
            scope = item.ref.namespace if item.res.namespaced else None
            if scope is not None and scope in fresh:
                continue
            groups.setdefault((item.res, scope), []).append(item)

    def one(
        res: ResourceType, namespace: str | None, items: list[Desired]
    ) -> Callable[[ClusterConnection], dict[ObjectRef, Manifest]]:
        def read(fork: ClusterConnection) -> dict[ObjectRef, Manifest]:
            group = res.group_version.rpartition("/")[0]
            metadata_only = not full and (group, res.kind) in STATUSLESS_KINDS
            listed = fork.list_objects(
                res, namespace, label_selector=owner.selector, metadata_only=metadata_only
            )
            by_key = {key_of(ObjectRef.of(obj)): obj for obj in listed}
            if any(key_of(d.ref) not in by_key for d in items):
                for other in fork.list_objects(res, namespace, metadata_only=True):
                    by_key.setdefault(key_of(ObjectRef.of(other)), other)
            return {d.ref: by_key[key_of(d.ref)] for d in items if key_of(d.ref) in by_key}

        return read

    found: dict[ObjectRef, Manifest] = {}
    calls = [one(res, namespace, items) for (res, namespace), items in groups.items()]
    for part in fan_out(conn, calls):
        found.update(part)
    return found


def is_unchanged(desired: Desired, live: Manifest | None) -> bool:
    """True when the live object exists and fleet last applied exactly this content."""
    if live is None or live.get("metadata", {}).get("deletionTimestamp"):
        return False
    annotations = live.get("metadata", {}).get("annotations") or {}
    return bool(annotations.get(ANN_HASH) == desired.hash)


def apply_one(
    conn: ClusterConnection,
    desired: Desired,
    owner: Owner,
    *,
    exists: bool,
    force: bool,
    dry_run: bool = False,
) -> ObjectResult:
    """Server-side apply of one object by the owner's field manager; API errors become a
    failed result, not an exception. A conflict with another bundle's field manager names
    both bundles.

    `ClusterUnreachable` is re-raised: the whole unit is retried later, not this object.
    """
    manager = owner.field_manager
    try:
        live = conn.apply(desired.body, force=force, dry_run=dry_run, field_manager=manager)
    except ClusterUnreachable:
        raise
    except Conflict as err:
        message = conflict_message(desired.ref, owner, err)
        return ObjectResult(desired.ref, Action.FAILED, BundleState.ERR_APPLIED, message, error=err)
    except NotFound as err:
        message = str(err)
        if desired.ref.namespace and "namespace" in message.lower():
            message += " (its namespace is missing)"
        return ObjectResult(desired.ref, Action.FAILED, BundleState.ERR_APPLIED, message, error=err)
    except KubeError as err:
        log.warning("%s; the other objects are applied, the unit ends ErrApplied", err)
        return ObjectResult(
            desired.ref, Action.FAILED, BundleState.ERR_APPLIED, str(err), error=err
        )
    action = Action.CONFIGURED if exists else Action.CREATED
    return ObjectResult(desired.ref, action, BundleState.READY, "", desired.hash, live)


def ensure_namespaces(
    conn: ClusterConnection,
    owner: Owner,
    namespaces: set[str],
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    dry_run: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """Create the namespaces the bundle's objects need but that do not exist yet.

    Like Rancher Fleet creating a bundle's target namespace. Returns the names created
    (recorded in the inventory as created by fleet) and an error message per namespace
    that could not be created. In a dry run nothing is created; the missing ones are
    returned as if they were.
    """
    created: list[str] = []
    errors: dict[str, str] = {}
    for name in sorted(namespaces):
        ref = ObjectRef("v1", "Namespace", None, name)
        try:
            if conn.get(ref) is not None:
                continue
            if not dry_run:
                body: dict[str, Any] = {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": name,
                        "labels": {
                            **(labels or {}),
                            **owner.labels(),
                            LABEL_MANAGED_BY: MANAGED_BY,
                        },
                        "annotations": {**(annotations or {}), **owner.annotations()},
                    },
                }
                try:
                    conn.apply(body, force=False, field_manager=owner.field_manager)
                except Conflict:
                    if conn.get(ref) is not None:
                        continue  # another bundle created it a moment ago: theirs, not ours
                    raise
                log.info("%s: created namespace %s for %s", conn.name, name, owner)
            created.append(name)
        except ClusterUnreachable:
            raise
        except KubeError as err:
            errors[name] = str(err)
    return created, errors
