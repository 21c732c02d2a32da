"""Kubernetes manifests as plain dicts: safe parsing, scope, namespaces, stable order, dumping.

Every renderer hands back manifests as `dict`s; this module is the one place that knows how to
read them from YAML safely (SafeLoader only, with file:line errors), which kinds are
cluster-scoped, how `namespace`/`defaultNamespace` apply, and the order they are printed and
applied in. Keeping it free of rendering and plugins lets the apply engine reuse it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import FleetError, Problem
from fleet.manifest import Manifest
from fleet.spec.yamlload import BoundedLoader, Loc, YamlDocument, load_yaml_stream


class ManifestLoader(BoundedLoader):
    """The bounded safe loader, keeping timestamps as strings like Kubernetes' own decoder.

    PyYAML would turn `2024-01-01` into a `datetime.date`, which is not JSON and would make
    the render cache key and server-side apply differ from what the file says.
    """


ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml_documents(text: str, *, file: str | Path) -> list[Any]:
    """All documents of a YAML stream (None for empty ones); malformed YAML -> FleetError.

    Bounded like every YAML fleet reads (`fleet.spec.yamlload` limits): a bomb is an error
    with the file and line, not gigabytes of data.
    """
    return [doc.data for doc in load_yaml_stream(text, file, ManifestLoader)]


def load_manifests(text: str, *, file: str | Path, strict: bool = True) -> list[Manifest]:
    """Manifests from a multi-document YAML (or JSON) text, `kind: List` flattened.

    A document that is empty, not a mapping, or has neither `apiVersion` nor `kind` is data
    rather than a manifest (a values file, a kustomize config) and is skipped - Rancher Fleet
    does the same. With `strict`, a mapping with only one of the two is an error naming the
    file and the line where the document starts, and so is a manifest whose shape Kubernetes
    would refuse (`check_manifest`): found at render time, before any cluster is touched.
    """
    manifests: list[Manifest] = []
    problems: list[Problem] = []
    for doc in load_yaml_stream(text, file, ManifestLoader):
        data = doc.data
        if not isinstance(data, dict):
            continue
        has_api, has_kind = bool(data.get("apiVersion")), bool(data.get("kind"))
        if not has_api and not has_kind:
            continue
        if not (has_api and has_kind):
            if strict:
                missing = "apiVersion" if not has_api else "kind"
                raise FleetError(f"manifest has no {missing}", file=file, line=doc.line_of(()))
            continue
        items = data.get("items")
        if str(data["kind"]).endswith("List") and isinstance(items, list):
            for index, item in enumerate(items):
                if strict:
                    problems.extend(check_manifest(item, doc, ("items", index)))
                if isinstance(item, dict):
                    manifests.append(item)
        else:
            if strict:
                problems.extend(check_manifest(data, doc, ()))
            manifests.append(data)
    if problems:
        raise FleetError(problems=problems)
    return manifests


_META_STRINGS = ("name", "namespace", "generateName", "uid", "resourceVersion")
_META_MAPS = ("labels", "annotations")


def check_manifest(manifest: Any, doc: YamlDocument, loc: Loc = ()) -> list[Problem]:
    """Problems (with lines) in the fields fleet and Kubernetes read from every object.

    Kubernetes rejects these at apply time, one cluster at a time; fleet reads them earlier
    (namespaces, ordering, ownership labels), where a wrong type would be a crash halfway
    through a sync. Only the envelope is checked: `spec` and the rest are the API server's.
    """
    file = str(doc.file)

    def problem(message: str, *where: str | int) -> Problem:
        return Problem(message, file, doc.line_of((*loc, *where)))

    if not isinstance(manifest, dict):
        return [problem(f"{_describe(loc)} is {_type_name(manifest)}, not an object")]
    found: list[Problem] = []
    for key in ("apiVersion", "kind"):
        value = manifest.get(key)
        if not isinstance(value, str) or not value:
            found.append(problem(f"{key} must be a non-empty string, not {_type_name(value)}", key))
    metadata = manifest.get("metadata")
    if metadata is None:
        return found
    if not isinstance(metadata, dict):
        return [
            *found,
            problem(f"metadata must be a mapping, not {_type_name(metadata)}", "metadata"),
        ]
    for key in _META_STRINGS:
        value = metadata.get(key)
        if value is not None and not isinstance(value, str):
            found.append(
                problem(
                    f"metadata.{key} must be a string, not {_type_name(value)}", "metadata", key
                )
            )
    for key in _META_MAPS:
        value = metadata.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            found.append(
                problem(
                    f"metadata.{key} must be a mapping, not {_type_name(value)}", "metadata", key
                )
            )
            continue
        for name, item in value.items():
            if not isinstance(name, str) or not isinstance(item, str):
                bad = name if not isinstance(name, str) else item
                found.append(
                    problem(
                        f"metadata.{key}: keys and values must be strings, "
                        f"{name!r} has {_type_name(bad)} (quote it)",
                        "metadata",
                        key,
                        name if isinstance(name, str) else key,
                    )
                )
    return found


def _describe(loc: Loc) -> str:
    return (
        "document"
        if not loc
        else "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(
            "."
        )
    )


def _type_name(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def dump_manifests(manifests: Iterable[Manifest]) -> str:
    """Multi-document YAML, keys in the order the renderer produced them (stable output)."""
    return yaml.safe_dump_all(
        list(manifests), sort_keys=False, default_flow_style=False, explicit_start=True
    )


def canonical_json(value: Any) -> str:
    """Sorted-keys compact JSON: equal data always gives equal text (for hashing)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Built-in kinds that are cluster-scoped, by (API group, kind). Anything not listed and not
# defined as a CRD in the same bundle is treated as namespaced, which is the safe guess for
# custom resources (Rancher Fleet asks the cluster's REST mapper; we render without one).
CLUSTER_SCOPED: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("", "ComponentStatus"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("policy", "PodSecurityPolicy"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        ("networking.k8s.io", "IngressClass"),
        ("networking.k8s.io", "IPAddress"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("resource.k8s.io", "DeviceClass"),
        ("authentication.k8s.io", "TokenReview"),
        ("authorization.k8s.io", "SelfSubjectAccessReview"),
        ("authorization.k8s.io", "SelfSubjectRulesReview"),
        ("authorization.k8s.io", "SubjectAccessReview"),
    }
)


def api_group(manifest: Manifest) -> str:
    """`apps` for `apps/v1`, `` for `v1`."""
    api_version = str(manifest.get("apiVersion", ""))
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def is_crd(manifest: Manifest) -> bool:
    return manifest.get("kind") == "CustomResourceDefinition" and api_group(manifest) == (
        "apiextensions.k8s.io"
    )


def crd_scopes(manifests: Iterable[Manifest]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced? for every CRD defined in these manifests."""
    scopes: dict[tuple[str, str], bool] = {}
    for manifest in manifests:
        if not is_crd(manifest):
            continue
        spec = manifest.get("spec")
        names = spec.get("names") if isinstance(spec, dict) else None
        kind = names.get("kind") if isinstance(names, dict) else None
        if isinstance(spec, dict) and spec.get("group") and kind:
            scopes[(str(spec["group"]), str(kind))] = spec.get("scope", "Namespaced") != "Cluster"
    return scopes


def is_namespaced(manifest: Manifest, scopes: dict[tuple[str, str], bool]) -> bool:
    key = (api_group(manifest), str(manifest.get("kind", "")))
    if key in scopes:
        return scopes[key]
    return key not in CLUSTER_SCOPED


def apply_namespaces(
    manifests: list[Manifest], *, namespace: str | None, default_namespace: str | None
) -> None:
    """Rancher Fleet's `namespace` (forced) and `defaultNamespace` (only where missing).

    Cluster-scoped objects (built-in kinds, and kinds whose CRD in this bundle says
    `scope: Cluster`) are left without a namespace. Rancher Fleet refuses a bundle that sets
    `namespace` and contains cluster-scoped objects; fleet leaves those objects alone instead,
    so a bundle may ship its own Namespace or ClusterRole next to namespaced objects.
    """
    if not namespace and not default_namespace:
        return
    scopes = crd_scopes(manifests)
    for manifest in manifests:
        if not is_namespaced(manifest, scopes):
            continue
        metadata = manifest.setdefault("metadata", {})
        if namespace:
            metadata["namespace"] = namespace
        elif not metadata.get("namespace"):
            metadata["namespace"] = default_namespace


def order_key(manifest: Manifest, scopes: dict[tuple[str, str], bool]) -> tuple[Any, ...]:
    """CRDs, then Namespaces, then other cluster-scoped, then namespaced; then by identity."""
    metadata = manifest.get("metadata") or {}
    if is_crd(manifest):
        rank = 0
    elif manifest.get("kind") == "Namespace" and api_group(manifest) == "":
        rank = 1
    elif not is_namespaced(manifest, scopes):
        rank = 2
    else:
        rank = 3
    return (
        rank,
        str(manifest.get("kind", "")),
        api_group(manifest),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or ""),
        canonical_json(manifest),  # total order even for duplicates
    )


def sort_manifests(manifests: Iterable[Manifest]) -> list[Manifest]:
    """Manifests in apply order, deterministic for equal input whatever the renderer did."""
    items = list(manifests)
    scopes = crd_scopes(items)
    return sorted(items, key=lambda manifest: order_key(manifest, scopes))
