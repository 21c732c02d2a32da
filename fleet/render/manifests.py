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

from fleet.errors import FleetError
from fleet.manifest import Manifest


class ManifestLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, like Kubernetes' own YAML decoder.

    PyYAML would turn `2024-01-01` into a `datetime.date`, which is not JSON and would make
    the render cache key and server-side apply differ from what the file says.
    """


ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml_documents(text: str, *, file: str | Path) -> list[Any]:
    """All documents of a YAML stream (None for empty ones); malformed YAML -> FleetError."""
    try:
        return list(yaml.load_all(text, Loader=ManifestLoader))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or str(err)
        raise FleetError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as err:
        raise FleetError(f"invalid YAML: {err}", file=file) from None


def load_manifests(text: str, *, file: str | Path, strict: bool = True) -> list[Manifest]:
    """Manifests from a multi-document YAML (or JSON) text, `kind: List` flattened.

    A document that is empty, not a mapping, or has neither `apiVersion` nor `kind` is data
    rather than a manifest (a values file, a kustomize config) and is skipped - Rancher Fleet
    does the same. With `strict`, a mapping with only one of the two is an error naming the
    file and the line where the document starts.
    """
    starts = _document_start_lines(text)
    manifests: list[Manifest] = []
    for index, doc in enumerate(parse_yaml_documents(text, file=file)):
        if not isinstance(doc, dict):
            continue
        has_api, has_kind = bool(doc.get("apiVersion")), bool(doc.get("kind"))
        if not has_api and not has_kind:
            continue
        if not (has_api and has_kind):
            if strict:
                missing = "apiVersion" if not has_api else "kind"
                line = starts[index] if index < len(starts) else None
                raise FleetError(f"manifest has no {missing}", file=file, line=line)
            continue
        if str(doc["kind"]).endswith("List") and isinstance(doc.get("items"), list):
            manifests.extend(item for item in doc["items"] if isinstance(item, dict))
        else:
            manifests.append(doc)
    return manifests


def _document_start_lines(text: str) -> list[int]:
    """1-based first line of each document, for error messages (best effort)."""
    try:
        return [
            node.start_mark.line + 1
            for node in yaml.compose_all(text, Loader=ManifestLoader)
            if node is not None
        ]
    except yaml.YAMLError:
        return []


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
        spec = manifest.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        if spec.get("group") and kind:
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
