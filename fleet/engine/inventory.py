"""What fleet applied to a cluster, stored in that cluster: one ConfigMap per fleet and bundle
(`<fleet>.bundle-<bundle>` in `fleet-system`, labelled with both names).

The cluster is the durable record (Redis can be wiped): per bundle, the objects fleet
applied (with the hash it applied) and the last `MAX_REVISIONS` deployed revisions (commit,
deployment id, time, result state). Prune compares the next desired set with this list.

Why a ConfigMap in `fleet-system` and not a Secret: it holds object names and hashes, no
secret values; a ConfigMap can be read by anyone with `view` on `fleet-system` for
debugging, and it is what kapp and cli-utils (`kubectl apply --prune` v2) use for the same
purpose. Helm's release Secrets hold rendered values, which is why Helm needs a Secret.

Encoding: `data["inventory.json"]`; above `COMPRESS_ABOVE` bytes it is gzipped into
`binaryData["inventory.json.gz"]` (base64 by the API), keeping well under the ~1 MiB object
limit for bundles of thousands of objects. The current deployment id, commit and state are
also annotations, so a metadata-only LIST over `fleet-system` tells the scheduler what every
bundle on a cluster runs without parsing anything.

Writing: every write of an existing inventory carries the `resourceVersion` read at the
start of the sync (server-side apply honours it as a precondition), so a write by anyone
else in between is a 409, never a silent overwrite: `store_inventory` then reads the
inventory again, keeps every object either record names (a forgotten object would never
be pruned; one listed too many is found "already gone" by the next prune) and tries again,
`STORE_ATTEMPTS` times in all, before the conflict is the sync's error. The first write of
a new inventory has nothing to compare with; the (bundle, cluster) lock covers that one.

Reading: no ConfigMap -> empty inventory (first deploy). Any other failure (forbidden,
corrupt data) -> `InventoryUnreadable`, and the caller must not prune.

Ownership. Several fleets (repositories) may deploy to one cluster, so "a bundle the
cluster runs that my Git does not name" is only a removal when this fleet deployed it.
After a sync, `fleet.engine.unit` stamps the inventory with `fleet-gitops.io/fleet: NAME`
and `keep-resources` (so a bundle that left Git is removed the way its last revision
asked), only when the stamp it read with the inventory differs: a no-op sync writes
nothing. `read_deployed(conn, fleet=..., wanted=...)` is the one place that decides "a
bundle this fleet deployed, or one it wants".
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from fleet.engine.identity import Owner, dns_label, short_name
from fleet.engine.kube import (
    ClusterConnection,
    ClusterUnreachable,
    Conflict,
    KubeError,
    NotFound,
    ObjectRef,
)
from fleet.engine.labels import (
    ANN_BUNDLE,
    ANN_COMMIT,
    ANN_DELETE_CRDS,
    ANN_DEPLOYMENT,
    ANN_FLEET,
    ANN_KEEP,
    ANN_OBJECTS,
    ANN_STATE,
    FIELD_MANAGER,
    LABEL_FLEET,
    LABEL_INVENTORY,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    STAMP_MANAGER,
)
from fleet.errors import FleetError
from fleet.states import ActualUnit, BundleState

log = logging.getLogger(__name__)

INVENTORY_NAMESPACE = "fleet-system"
MAX_REVISIONS = 10
COMPRESS_ABOVE = 512 * 1024
MERGE_PATCH = "application/merge-patch+json"
STORE_ATTEMPTS = 3  # inventory writes refused with 409 (changed since read): re-read, retry
_KEY, _GZ_KEY = "inventory.json", "inventory.json.gz"
_CM = ObjectRef("v1", "ConfigMap", INVENTORY_NAMESPACE, "")


class InventoryUnreadable(FleetError):
    """The inventory exists but cannot be read or decoded: never prune on top of this."""


@dataclass(frozen=True)
class InventoryEntry:
    """One object fleet applied; `created_namespace` marks a namespace fleet created itself."""

    ref: ObjectRef
    hash: str = ""
    created_namespace: bool = False


@dataclass(frozen=True)
class OwnerStamp:
    """Which fleet deployed a bundle here, and how its last revision asked to be removed."""

    fleet: str
    keep_resources: bool
    delete_crds: bool = False  # deleteCRDResources: a removal may delete the bundle's CRDs

    @classmethod
    def of(cls, annotations: dict[str, str]) -> OwnerStamp | None:
        fleet = annotations.get(ANN_FLEET)
        if not fleet:
            return None
        keep, crds = annotations.get(ANN_KEEP), annotations.get(ANN_DELETE_CRDS)
        return cls(fleet, keep == "true", crds == "true")

    def annotations(self) -> dict[str, str]:
        return {
            ANN_FLEET: self.fleet,
            ANN_KEEP: "true" if self.keep_resources else "false",
            ANN_DELETE_CRDS: "true" if self.delete_crds else "false",
        }


@dataclass(frozen=True)
class DeployedRevision:
    """One deployment of the bundle as the inventory records it (the last is current)."""

    commit: str
    deployment_id: str
    time: str
    state: str
    message: str = ""
    history: int = 0  # its revision number in `fleet.engine.history` (0: none kept yet)


@dataclass
class Inventory:
    bundle: str
    objects: list[InventoryEntry] = field(default_factory=list)
    revisions: list[DeployedRevision] = field(default_factory=list)
    exists: bool = False
    owner: OwnerStamp | None = None  # read from the ConfigMap; not part of the JSON
    fleet: str | None = None  # whose inventory: part of its name, not of the JSON
    legacy: bool = False  # read from its name before fleets named inventories: move it
    resource_version: str = ""  # as read: the precondition of the next write

    @property
    def current(self) -> DeployedRevision | None:
        return self.revisions[-1] if self.revisions else None

    def refs(self) -> set[ObjectRef]:
        return {e.ref for e in self.objects}

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "bundle": self.bundle,
                "objects": [
                    {
                        **e.ref.to_dict(),
                        "hash": e.hash,
                        **({"createdNamespace": True} if e.created_namespace else {}),
                    }
                    for e in self.objects
                ],
                "revisions": [
                    {
                        "commit": r.commit,
                        "deploymentId": r.deployment_id,
                        "time": r.time,
                        "state": r.state,
                        "message": r.message,
                        **({"history": r.history} if r.history else {}),
                    }
                    for r in self.revisions
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, bundle: str, text: str | bytes) -> Inventory:
        raw = json.loads(text)
        objects = [
            InventoryEntry(
                ObjectRef(o["apiVersion"], o["kind"], o.get("namespace"), o["name"]),
                str(o.get("hash", "")),
                bool(o.get("createdNamespace", False)),
            )
            for o in raw["objects"]
        ]
        revisions = [
            DeployedRevision(
                r["commit"],
                r["deploymentId"],
                r["time"],
                r["state"],
                r.get("message", ""),
                int(r.get("history", 0)),
            )
            for r in raw["revisions"]
        ]
        return cls(bundle, objects, revisions, exists=True)


def inventory_name(bundle: str, fleet: str | None = None) -> str:
    """ConfigMap name for a fleet's bundle: `<fleet>.bundle-<bundle>`, each part a DNS
    label (hashed when long or odd), so two fleets' same-named bundles never share one.
    Without a fleet (the engine alone): `bundle-<bundle>`."""
    name = f"bundle-{dns_label(bundle, 56)}"
    return f"{dns_label(fleet)}.{name}" if fleet else name


def read_inventory(conn: ClusterConnection, bundle: str, fleet: str | None = None) -> Inventory:
    """The bundle's inventory; empty when there is none yet (first deploy).

    A fleet's bundle deployed before inventories were named by fleet has its inventory
    under the old name (`bundle-<bundle>`), stamped with the fleet: it is read from there
    (`legacy`), the next write moves it to the new name (`drop_legacy` then deletes it).
    """
    inv = _read_inventory(conn, bundle, fleet, inventory_name(bundle, fleet))
    if inv.exists or fleet is None:
        return inv
    old = _read_inventory(conn, bundle, fleet, inventory_name(bundle))
    if old.exists and old.owner is not None and old.owner.fleet == fleet:
        old.legacy = True
        return old
    return inv


def drop_legacy(conn: ClusterConnection, inv: Inventory) -> None:
    """After the inventory was written under its fleet's name: delete the old one."""
    if inv.legacy and inv.fleet is not None:
        conn.delete(replace(_CM, name=inventory_name(inv.bundle)))
        log.info("%s: inventory of bundle %s moved to its fleet's name", conn.name, inv.bundle)


def _read_inventory(
    conn: ClusterConnection, bundle: str, fleet: str | None, name: str
) -> Inventory:
    ref = replace(_CM, name=name)
    try:
        cm = conn.get(ref)
    except ClusterUnreachable:
        raise
    except KubeError as err:
        raise InventoryUnreadable(
            f"{conn.name}: inventory of bundle {bundle} unreadable ({err}); nothing is pruned"
        ) from None
    if cm is None:
        return Inventory(bundle, fleet=fleet)
    try:
        binary = (cm.get("binaryData") or {}).get(_GZ_KEY)
        text = gzip.decompress(base64.b64decode(binary)) if binary else cm["data"][_KEY]
        inv = Inventory.from_json(bundle, text)
        inv.fleet = fleet
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise InventoryUnreadable(
            f"{conn.name}: inventory ConfigMap {INVENTORY_NAMESPACE}/{ref.name} of bundle "
            f"{bundle} is corrupt ({type(err).__name__}); nothing is pruned. Delete it to "
            "start over: the next sync re-adopts the bundle's objects"
        ) from None
    meta = cm.get("metadata") or {}
    inv.owner = OwnerStamp.of(meta.get("annotations") or {})
    inv.resource_version = str(meta.get("resourceVersion") or "")
    return inv


def record(
    old: Inventory,
    objects: list[InventoryEntry],
    *,
    commit: str,
    deployment_id: str,
    state: str,
    message: str,
    history: int = 0,
) -> Inventory | None:
    """The inventory to write after a sync, or None when nothing worth writing changed.

    A sync of the same deployment with the same result writes nothing; a new result for
    the same deployment updates the last revision in place (keeping its history number
    unless `history` gives one); a new deployment appends one.
    """
    objects = sorted(objects, key=lambda e: (e.ref.kind, e.ref.namespace or "", e.ref.name))
    current = old.current
    same_deploy = current is not None and (current.deployment_id, current.commit) == (
        deployment_id,
        commit,
    )
    unchanged = current is not None and current.state == state and objects == old.objects
    unchanged = unchanged and (not history or current is None or current.history == history)
    if same_deploy and unchanged and not old.legacy:
        return None
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    number = history or (current.history if same_deploy and current is not None else 0)
    revision = DeployedRevision(commit, deployment_id, now, state, message[:300], number)
    earlier = old.revisions[:-1] if same_deploy else list(old.revisions)
    return Inventory(
        old.bundle,
        objects,
        [*earlier, revision][-MAX_REVISIONS:],
        exists=True,
        owner=old.owner,
        fleet=old.fleet,
        resource_version="" if old.legacy else old.resource_version,  # legacy: a new name
    )


def _body(inv: Inventory) -> dict[str, Any]:
    text = inv.to_json()
    current = inv.current
    annotations = {ANN_BUNDLE: inv.bundle, ANN_OBJECTS: str(len(inv.objects))}
    if current is not None:
        annotations |= {
            ANN_DEPLOYMENT: current.deployment_id,
            ANN_COMMIT: current.commit,
            ANN_STATE: current.state,
        }
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": inventory_name(inv.bundle, inv.fleet),
            "namespace": INVENTORY_NAMESPACE,
            "labels": {
                LABEL_INVENTORY: "true",
                **Owner(inv.bundle, inv.fleet).labels(),
                LABEL_MANAGED_BY: MANAGED_BY,
            },
            "annotations": annotations,
        },
    }
    if inv.resource_version and not inv.legacy:  # a precondition: changed since read -> 409
        body["metadata"]["resourceVersion"] = inv.resource_version
    if len(text) > COMPRESS_ABOVE:
        packed = base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()
        body["binaryData"], body["data"] = {_GZ_KEY: packed}, {}
    else:
        body["data"], body["binaryData"] = {_KEY: text}, {}
    return body


def write_inventory(conn: ClusterConnection, inv: Inventory) -> None:
    """Store the inventory (one apply); creates `fleet-system` the first time it is needed.

    With `inv.resource_version` (the inventory as read) a concurrent write is a `Conflict`."""
    body = _body(inv)
    try:
        conn.apply(body, force=True, field_manager=FIELD_MANAGER)
    except NotFound:
        ensure_system_namespace(conn)
        conn.apply(body, force=True, field_manager=FIELD_MANAGER)


def store_inventory(conn: ClusterConnection, new: Inventory) -> None:
    """`write_inventory`, and on 409 (written by someone else since it was read) read it
    again, merge (`merge_into`) and retry; the last Conflict propagates."""
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            write_inventory(conn, new)
            return
        except Conflict:
            if attempt == STORE_ATTEMPTS:
                raise
            log.warning(
                "%s: inventory of bundle %s changed since it was read; merging, attempt %d of %d",
                conn.name,
                new.bundle,
                attempt + 1,
                STORE_ATTEMPTS,
            )
            merged = merge_into(read_inventory(conn, new.bundle, new.fleet), new)
            if merged is None:
                return
            new = merged


def merge_into(fresh: Inventory, ours: Inventory) -> Inventory | None:
    """Our record on top of the inventory as it is now: every object either names, our
    revision last; None when that is what `fresh` already says."""
    mine = {e.ref for e in ours.objects}
    objects = [*ours.objects, *(e for e in fresh.objects if e.ref not in mine)]
    current = ours.current
    if current is None:
        return None
    return record(
        fresh,
        objects,
        commit=current.commit,
        deployment_id=current.deployment_id,
        state=current.state,
        message=current.message,
        history=current.history,
    )


def ensure_system_namespace(conn: ClusterConnection) -> None:
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": INVENTORY_NAMESPACE, "labels": {LABEL_MANAGED_BY: MANAGED_BY}},
    }
    conn.apply(ns, force=True, field_manager=FIELD_MANAGER)
    log.info("%s: created namespace %s to hold inventories", conn.name, INVENTORY_NAMESPACE)


def delete_inventory(
    conn: ClusterConnection, bundle: str, fleet: str | None = None, resource_version: str = ""
) -> bool:
    """Drop the bundle's inventory record; False if there was none. With the
    `resource_version` it was read at, a concurrent write is a `Conflict`, not lost."""
    ref = replace(_CM, name=inventory_name(bundle, fleet))
    return conn.delete(ref, resource_version=resource_version or None)


@dataclass(frozen=True)
class DeployedBundle:
    """One inventory as the metadata LIST shows it: what the cluster runs, and whose it is."""

    bundle: str
    deployment_id: str
    commit: str
    state: BundleState
    fleet: str | None
    keep_resources: bool
    objects: int | None = None  # how many objects it lists (None: written before the count)

    def to_actual(self, keep_resources: bool | None = None) -> ActualUnit:
        """The planner's record; `keep_resources` overrides the stamp (the bundle's option
        when the caller still has the bundle in Git)."""
        keep = self.keep_resources if keep_resources is None else keep_resources
        return ActualUnit(
            self.deployment_id, self.state, self.commit, keep_resources=keep, objects=self.objects
        )


def read_deployed(
    conn: ClusterConnection, *, fleet: str | None = None, wanted: Collection[str] = ()
) -> dict[str, DeployedBundle]:
    """bundle -> what the cluster runs, from one metadata-only LIST of the inventories.

    Ownership is decided here, once, for both runtimes. Several fleets may deploy to one
    cluster (and the engine's tests deploy bundles without any fleet), so with `fleet` the
    answer keeps only that fleet's inventories (their name and `fleet` label are the
    fleet's) that it deployed (its owner stamp) or that it wants on this cluster (`wanted`:
    bundle names); a bundle of another fleet is never its to remove, even with the same
    name. Without `fleet` (a tool's view), every inventory.
    """
    res = conn.resource("v1", "ConfigMap")
    found: dict[str, DeployedBundle] = {}
    for cm in conn.list_objects(
        res, INVENTORY_NAMESPACE, label_selector=f"{LABEL_INVENTORY}=true", metadata_only=True
    ):
        ann = cm.get("metadata", {}).get("annotations") or {}
        bundle = ann.get(ANN_BUNDLE)
        if not bundle:
            continue
        owner = OwnerStamp.of(ann)
        labels = cm.get("metadata", {}).get("labels") or {}
        if fleet is not None:
            if labels.get(LABEL_FLEET) != short_name(fleet):
                continue  # another fleet's inventory, or one of no fleet
            if owner is not None and owner.fleet != fleet:
                continue  # a fleet whose name shortens to the same label
            if bundle not in wanted and owner is None:
                continue
        found[bundle] = DeployedBundle(
            bundle,
            ann.get(ANN_DEPLOYMENT, ""),
            ann.get(ANN_COMMIT, ""),
            BundleState.parse(ann.get(ANN_STATE, "")),
            owner.fleet if owner else None,
            owner.keep_resources if owner else False,
            _count(ann.get(ANN_OBJECTS)),
        )
    return found


def _count(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def stamp_owner(conn: ClusterConnection, bundle: str, stamp: OwnerStamp) -> bool:
    """Mark the bundle's inventory as deployed by `stamp.fleet`; False when it has none.

    A JSON merge patch by its own field manager, so the inventory's server-side applies
    (field manager `fleet`) leave it alone. A refused patch is logged, not raised: the
    bundle is deployed, it just will not be removed automatically if it leaves Git.
    """
    res = conn.resource("v1", "ConfigMap")
    try:
        conn.request(
            "PATCH",
            res.object_path(INVENTORY_NAMESPACE, inventory_name(bundle, stamp.fleet)),
            query=[("fieldManager", STAMP_MANAGER)],
            body={"metadata": {"annotations": stamp.annotations()}},
            content_type=MERGE_PATCH,
            what=f"stamp inventory of bundle {bundle}",
        )
    except NotFound:
        return False
    except ClusterUnreachable:
        raise
    except KubeError as err:
        log.warning("%s; the bundle will not be removed automatically if it leaves Git", err)
        return False
    return True
