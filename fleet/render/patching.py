"""JSON patch, JSON merge patch and strategic merge patch, for `yaml.overlays` patch files.

Rancher Fleet picks the strategy from the content (wrangler's `patch.Apply`), and so do we:

- the patch is a list                         -> JSON patch (RFC 6902), via `jsonpatch`;
- the target is a built-in Kubernetes kind     -> strategic merge patch (below);
  (its apiVersion group is one client-go knows,
  and it is not a CustomResourceDefinition)
- anything else (custom resources, CRDs,        -> JSON merge patch (RFC 7386).
  documents without apiVersion/kind)

Strategic merge patch is implemented for the subset real overlays use (Kubernetes' Go code
knows the merge key of every field from struct tags; we keep a table of the common ones):

- maps merge recursively; `null` deletes a key;
- lists of objects with a merge key merge item by item on that key: containers,
  initContainers, ephemeralContainers, env, volumes, imagePullSecrets by `name`;
  volumeMounts by `mountPath`; volumeDevices by `devicePath`; container ports by
  `containerPort`, Service ports by `port`; hostAliases by `ip`; conditions by `type`;
  topologySpreadConstraints by `topologyKey`; ownerReferences by `uid`; a patch item
  without its key is appended;
- other lists (args, command, tolerations, rules, ...) are replaced, as in Kubernetes;
- directives: `$patch: delete` in a list item removes the item with that key, in a map
  removes the map; `$patch: replace` in a map replaces it instead of merging; a list item
  `{"$patch": "replace"}` makes the list replace; `$retainKeys`, `$setElementOrder/...` and
  `$deleteFromPrimitiveList/...` are accepted and ignored.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import jsonpatch

from fleet.render.manifests import api_group

PatchStrategy = Literal["json", "merge", "strategic"]

# API groups whose kinds client-go's scheme knows (so Rancher uses strategic merge for them).
BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "node.k8s.io",
        "discovery.k8s.io",
        "admissionregistration.k8s.io",
        "certificates.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "resource.k8s.io",
        "storagemigration.k8s.io",
        "internal.apiserver.k8s.io",
    }
)

# field name -> merge key, for lists of objects (the patchMergeKey struct tags in k8s.io/api).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "hostAliases": "ip",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "ownerReferences": "uid",
    "resourceClaims": "name",
}

_IGNORED_DIRECTIVE_PREFIXES = ("$setElementOrder/", "$deleteFromPrimitiveList/", "$retainKeys")


class PatchError(ValueError):
    """A patch that cannot be applied; the caller adds the file name."""


def choose_strategy(target: Any, patch: Any) -> PatchStrategy:
    """Which kind of patch `patch` is for `target` (Rancher Fleet's rule, see module doc)."""
    if isinstance(patch, list):
        return "json"
    if (
        isinstance(target, dict)
        and target.get("apiVersion")
        and target.get("kind")
        and target.get("kind") != "CustomResourceDefinition"
        and api_group(target) in BUILTIN_GROUPS
    ):
        return "strategic"
    return "merge"


def apply_patch(target: Any, patch: Any) -> Any:
    """`target` patched by `patch` with the strategy `choose_strategy` picks (new object)."""
    strategy = choose_strategy(target, patch)
    if strategy == "json":
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise PatchError("a patch must be a list (JSON patch) or a mapping (merge patch)")
    if strategy == "strategic":
        return strategic_merge_patch(target, patch)
    return merge_patch(target, patch)


def json_patch(target: Any, operations: list[Any]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    try:
        return jsonpatch.apply_patch(target, operations, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
        raise PatchError(f"JSON patch failed: {err}") from None
    except (TypeError, KeyError, AttributeError) as err:
        raise PatchError(f"invalid JSON patch operation: {err}") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, `null` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: dict[str, Any]) -> Any:
    """Kubernetes strategic merge patch, common subset (see module doc)."""
    return _merge_map(target if isinstance(target, dict) else {}, patch)


def _merge_map(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive is not None:
        raise PatchError(f"unknown $patch directive {directive!r}")
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if key.startswith(_IGNORED_DIRECTIVE_PREFIXES):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            merged = _merge_map(current if isinstance(current, dict) else {}, value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = value
    return result


def _merge_list(field: str, target: Any, patch: list[Any]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            copy.deepcopy(item)
            for item in patch
            if not (isinstance(item, dict) and item.get("$patch") == "replace")
        ]
    key = _merge_key(field, target, patch)
    if key is None or not isinstance(target, list):
        return [
            copy.deepcopy(item)
            for item in patch
            if not (isinstance(item, dict) and item.get("$patch") == "delete")
        ]
    result = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            result.append(copy.deepcopy(item))
            continue
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            merged = _merge_map(result[index], item)
            if merged is not None:
                result[index] = merged
    return result


def _merge_key(field: str, target: Any, patch: list[Any]) -> str | None:
    if field == "ports":
        # Container ports merge on containerPort, Service ports on port.
        items = [i for i in [*(target or []), *patch] if isinstance(i, dict)]
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(field)
