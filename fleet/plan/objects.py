"""One unit's rendered manifests at base and head, compared object by object.

What a reviewer should see, and nothing else:

- objects are matched by (apiVersion, kind, namespace, name) and listed in that order;
- fleet's bookkeeping is left out: every `fleet-gitops.io/*` label and annotation and
  `app.kubernetes.io/managed-by: fleet-gitops` (they are stamped at apply time and would
  only add noise if a renderer or transform put them there);
- a Secret's `data` and `stringData` values never appear: each value is replaced by
  `<redacted>`, or `<redacted, old value>` / `<redacted, new value>` when it differs; keys
  are kept,
  so a reviewer sees which key changed and never what it holds (Argo CD masks the same way).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable

import yaml

from fleet.engine.labels import LABEL_MANAGED_BY, MANAGED_BY, PREFIX
from fleet.manifest import Manifest
from fleet.plan.model import Change, ObjectChange

ObjectKey = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def object_key(manifest: Manifest) -> ObjectKey:
    meta = manifest.get("metadata") or {}
    return (
        str(manifest.get("apiVersion", "")),
        str(manifest.get("kind", "")),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


def describe(key: ObjectKey) -> str:
    api, kind, namespace, name = key
    return f"{api} {kind} {namespace + '/' if namespace else ''}{name}"


def without_bookkeeping(manifest: Manifest) -> Manifest:
    """A copy without fleet's labels and annotations (and empty maps they leave)."""
    out = copy.deepcopy(manifest)
    meta = out.get("metadata")
    if not isinstance(meta, dict):
        return out
    for field_name in ("labels", "annotations"):
        values = meta.get(field_name)
        if not isinstance(values, dict):
            continue
        for key in [k for k in values if str(k).startswith(f"{PREFIX}/")]:
            del values[key]
        if field_name == "labels" and values.get(LABEL_MANAGED_BY) == MANAGED_BY:
            del values[LABEL_MANAGED_BY]
        if not values:
            del meta[field_name]
    return out


def _redacted(obj: Manifest, other: Manifest | None, side: str) -> Manifest:
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return obj
    out = dict(obj)
    for field_name in ("data", "stringData"):
        values = obj.get(field_name)
        if not isinstance(values, dict):
            continue
        theirs = (other or {}).get(field_name) or {}
        out[field_name] = {
            k: "<redacted>" if other is None or theirs.get(k) == v else f"<redacted, {side} value>"
            for k, v in values.items()
        }
    return out


def _yaml(obj: Manifest | None) -> list[str]:
    if obj is None:
        return []
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False).splitlines(True)


def object_diff(key: ObjectKey, base: Manifest | None, head: Manifest | None) -> str:
    """The unified diff of one object (already without bookkeeping), redacted."""
    left = _redacted(base, head, "old") if base is not None else None
    right = _redacted(head, base, "new") if head is not None else None
    where = describe(key)
    lines = difflib.unified_diff(_yaml(left), _yaml(right), f"base: {where}", f"head: {where}")
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return text


def compare_manifests(
    base: Iterable[Manifest], head: Iterable[Manifest]
) -> tuple[ObjectChange, ...]:
    """Every object added, removed or changed from `base` to `head`, in key order."""
    before = {object_key(m): without_bookkeeping(m) for m in base}
    after = {object_key(m): without_bookkeeping(m) for m in head}
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        change = Change.ADDED if old is None else Change.REMOVED if new is None else Change.CHANGED
        changes.append(ObjectChange(describe(key), change, object_diff(key, old, new)))
    return tuple(changes)
