"""Helpers for the apply-engine e2e tests: connections, unique names, small manifests."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client, config

from fleet.engine.kube import ClusterConnection
from fleet.spec.bundle_options import BundleOptions
from tests.conftest import LocalFleet


def connect(local_fleet: LocalFleet, name: str = "dev-eu") -> ClusterConnection:
    cluster = local_fleet.clusters[name]
    return ClusterConnection.from_kubeconfig(cluster.kubeconfig, name=name)


def core_api(local_fleet: LocalFleet, name: str = "dev-eu") -> client.CoreV1Api:
    api = config.new_client_from_config(config_file=str(local_fleet.clusters[name].kubeconfig))
    return client.CoreV1Api(api)


def apps_api(local_fleet: LocalFleet, name: str = "dev-eu") -> client.AppsV1Api:
    api = config.new_client_from_config(config_file=str(local_fleet.clusters[name].kubeconfig))
    return client.AppsV1Api(api)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def options(**fields: Any) -> BundleOptions:
    return BundleOptions.model_validate(fields)


def configmap(name: str, namespace: str | None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def deployment(
    name: str, ns: str, *, replicas: int = 1, node_selector: dict[str, str] | None = None
) -> dict[str, Any]:
    labels = {"app": name}
    pod_spec: dict[str, Any] = {"containers": [{"name": "app", "image": "example/app:1.0"}]}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def crd_manifest(group: str, kind: str = "Widget", plural: str = "widgets") -> dict[str, Any]:
    """A namespaced CRD serving v1 that takes any spec."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def custom_object(group: str, name: str, ns: str, kind: str = "Widget") -> dict[str, Any]:
    return {
        "apiVersion": f"{group}/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {"size": 1},
    }
