"""Drift: objects changed or deleted outside fleet, found by a server-side dry-run apply.

For each desired object, fleet asks the API server what the object would look like if it
applied it now (`dryRun=All`, forcing ownership) and compares that with the live object.
Because the server merges the apply with every other manager's fields, the comparison only
sees differences in fields fleet manages: a label another controller added is not drift, a
value someone edited by hand is. Server-owned noise (managedFields, resourceVersion,
generation, timestamps, uid, status) is ignored, and so is everything a bundle's
`diff.comparePatches` names (Rancher's jsonPointers and `remove` operations).

The same machinery renders `fleet diff` / dry-run output: a unified YAML diff per object in
which a Secret's values never appear (`<redacted>`, marked changed or not).
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from typing import Any

import yaml

from fleet.engine.apply import Desired
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, KubeError, ObjectRef
from fleet.engine.labels import ANN_DEPLOYMENT, FIELD_MANAGER
from fleet.manifest import Manifest
from fleet.spec.bundle_options import ComparePatch

_IGNORED_METADATA = (
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
)


@dataclass(frozen=True)
class DriftItem:
    """One drifted object: `reason` is `missing`, `modified` or `error` (dry run failed)."""

    ref: ObjectRef
    reason: str
    fields: list[str] = field(default_factory=list)
    message: str = ""

    def __str__(self) -> str:
        if self.reason == "modified":
            shown = ", ".join(self.fields[:5]) + (" ..." if len(self.fields) > 5 else "")
            return f"{self.ref}: modified ({shown})"
        return f"{self.ref}: {self.message or self.reason}"


def _matches(patch: ComparePatch, ref: ObjectRef) -> bool:
    return all(
        want is None or want == got
        for want, got in (
            (patch.api_version, ref.api_version),
            (patch.kind, ref.kind),
            (patch.name, ref.name),
            (patch.namespace, ref.namespace),
        )
    )


def ignored_pointers(ref: ObjectRef, patches: list[ComparePatch]) -> list[str]:
    """JSON pointers that comparePatches exclude from the comparison of this object."""
    pointers: list[str] = []
    for patch in patches:
        if _matches(patch, ref):
            pointers.extend(patch.json_pointers)
            pointers.extend(str(op["path"]) for op in patch.operations if op.get("op") == "remove")
    return pointers


def _remove_pointer(obj: Any, pointer: str) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(obj, dict):
            if part not in obj:
                return
            if last:
                del obj[part]
                return
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            if last:
                del obj[int(part)]
                return
            obj = obj[int(part)]
        else:
            return


def comparable(obj: Manifest, ignore: list[str] | None = None) -> Manifest:
    """A copy of `obj` without status, server-owned metadata and ignored pointers."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in _IGNORED_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop(ANN_DEPLOYMENT, None)  # who last wrote it is not part of the content
    if "annotations" in meta and not annotations:
        del meta["annotations"]
    for pointer in ignore or []:
        _remove_pointer(out, pointer)
    return out


def differing_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """JSON pointers where `a` and `b` differ (a whole subtree counts once)."""
    if isinstance(a, dict) and isinstance(b, dict):
        paths: list[str] = []
        for key in sorted(set(a) | set(b)):
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            if key not in a or key not in b:
                paths.append(f"{prefix}/{escaped}")
            else:
                paths.extend(differing_paths(a[key], b[key], f"{prefix}/{escaped}"))
        return paths
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            p
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for p in differing_paths(x, y, f"{prefix}/{i}")
        ]
    return [] if a == b else [prefix or "/"]


def detect_drift(
    conn: ClusterConnection,
    desired: list[Desired],
    live: dict[ObjectRef, Manifest],
    compare_patches: list[ComparePatch] | None = None,
) -> list[DriftItem]:
    """Objects whose live state differs from what fleet would apply (read-only: dry runs).

    `live` must hold full objects (see `fleet.engine.apply.live_objects(full=True)`); a desired
    object absent from it is reported `missing`. Use `fleet.engine.inspection.inspect` (or
    `check_drift`) to call this from manifests.
    """
    patches = compare_patches or []
    found: list[DriftItem] = []
    for item in desired:
        if item.res is None:
            continue
        current = live.get(item.ref)
        if current is None:
            found.append(DriftItem(item.ref, "missing", message="missing"))
            continue
        try:
            would = conn.apply(item.body, force=True, dry_run=True, field_manager=FIELD_MANAGER)
        except ClusterUnreachable:
            raise
        except KubeError as err:
            found.append(DriftItem(item.ref, "error", message=str(err)))
            continue
        ignore = ignored_pointers(item.ref, patches)
        paths = differing_paths(comparable(current, ignore), comparable(would, ignore))
        if paths:
            found.append(DriftItem(item.ref, "modified", paths))
    return found


# ---------------------------------------------------------------- diffs for humans


def _redact_secret(obj: Manifest, other: Manifest | None, side: str) -> Manifest:
    """Secret values replaced by markers that show *whether* a key changed, never its value."""
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return obj
    out = dict(obj)
    for key in ("data", "stringData"):
        values = obj.get(key)
        if not isinstance(values, dict):
            continue
        theirs = (other or {}).get(key) or {}
        out[key] = {
            k: "<redacted>" if theirs.get(k) == v else f"<redacted, {side} value differs>"
            for k, v in values.items()
        }
    return out


def object_diff(ref: ObjectRef, live: Manifest | None, would: Manifest | None) -> str:
    """Unified diff (YAML) between the live object and what fleet would apply; '' if same."""
    before = comparable(live) if live is not None else None
    after = comparable(would) if would is not None else None
    if before == after:
        return ""
    left = _redact_secret(before, after, "live") if before is not None else None
    right = _redact_secret(after, before, "desired") if after is not None else None
    text_left = yaml.safe_dump(left, sort_keys=True).splitlines(True) if left else []
    text_right = yaml.safe_dump(right, sort_keys=True).splitlines(True) if right else []
    return "".join(
        difflib.unified_diff(text_left, text_right, f"live/{ref}", f"desired/{ref}", n=3)
    )
