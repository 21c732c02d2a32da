"""Two rules prune applies before a delete: a kind that is gone, and a CRD that is kept.

- **A kind the cluster no longer serves** (its CustomResourceDefinition was deleted, or the
  apiVersion the inventory recorded was removed in an upgrade) cannot be read or deleted
  through that version. `served_ref` looks for the kind in another version of the same
  group (the object may still exist: HPA `autoscaling/v2beta2` -> `autoscaling/v2`); when
  no version of the group serves the kind, there is nothing left to delete and the entry
  counts as pruned, instead of failing at every sync forever.
- **A CustomResourceDefinition** is the schema of every object of its kind in the
  cluster, including ones fleet never created: deleting it deletes them all. Prune (and
  the removal of a bundle) keeps a CRD unless the bundle opted in with Rancher Fleet's
  `deleteCRDResources: true`. A kept CRD is reported (KEPT, with how many objects of its
  kind exist) and leaves the inventory, like an object kept by `keepResources`: it stays
  exactly as it is, bundle label included, and nothing will delete it later.
"""

from __future__ import annotations

from dataclasses import replace

from fleet.engine.apply import CRD_KEY, Action, ObjectResult
from fleet.engine.kube import (
    ClusterConnection,
    ClusterUnreachable,
    KubeError,
    NotFound,
    ObjectRef,
    ResourceType,
    UnknownKind,
)
from fleet.manifest import Manifest


def served_ref(conn: ClusterConnection, ref: ObjectRef) -> ObjectRef | None:
    """`ref` at an apiVersion the cluster serves its kind at, or None when it serves none."""
    try:
        conn.resource(ref.api_version, ref.kind)
        return ref
    except UnknownKind:
        pass
    if not ref.group:
        return None
    try:
        group = conn.request("GET", f"/apis/{ref.group}", what=f"discovery of {ref.group}")
    except NotFound:
        return None
    preferred = str((group.get("preferredVersion") or {}).get("groupVersion") or "")
    versions = [str(v.get("groupVersion", "")) for v in group.get("versions") or []]
    for version in [preferred, *(v for v in versions if v != preferred)]:
        if not version or version == ref.api_version:
            continue
        try:
            conn.resource(version, ref.kind)
        except UnknownKind:
            continue
        return replace(ref, api_version=version)
    return None


def gone_result(ref: ObjectRef) -> ObjectResult:
    return ObjectResult(
        ref,
        Action.PRUNED,
        message=f"already gone: the cluster serves no {ref.kind} ({ref.group or 'core'}) any more",
    )


def is_crd(ref: ObjectRef) -> bool:
    return (ref.group, ref.kind) == CRD_KEY


def kept_crd(conn: ClusterConnection, ref: ObjectRef, live: Manifest) -> ObjectResult:
    """The KEPT result of a CRD that may not be deleted, saying what deleting it would do."""
    spec = live.get("spec") or {}
    names = spec.get("names") or {}
    kind = str(names.get("kind") or ref.name)
    count = _count_objects(conn, spec)
    exist = "count unknown" if count is None else f"{count} exist{'s' if count == 1 else ''} now"
    return ObjectResult(
        ref,
        Action.KEPT,
        message=(
            f"{ref} kept: deleting it would delete every {kind} in the cluster ({exist}); "
            "set deleteCRDResources: true in the bundle's fleet.yaml to let fleet delete it"
        ),
    )


def _count_objects(conn: ClusterConnection, spec: Manifest) -> int | None:
    """How many objects of the CRD's kind exist (one metadata LIST), None if unknown."""
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    storage = next((v for v in versions if v.get("storage")), versions[0] if versions else None)
    if not storage or not spec.get("group") or not names.get("plural"):
        return None
    res = ResourceType(
        f"{spec['group']}/{storage.get('name')}",
        str(names.get("kind", "")),
        str(names["plural"]),
        spec.get("scope") == "Namespaced",
    )
    try:
        return len(conn.list_objects(res, None, metadata_only=True))
    except ClusterUnreachable:
        raise
    except KubeError:
        return None
