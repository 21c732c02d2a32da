"""Many small bundles on one cluster: the repository the one-cluster benchmarks push.

Shared by bench_cluster_concurrency.py (fleet one at a time vs. concurrently) and
bench_flux.py (fleet vs. Flux), so both measure the same workload: N bundles of plain
manifests, each a Deployment (one replica), a Service and a ConfigMap in a namespace of
its own, under apps/b<i>/app.yaml, with a fleet.yaml naming the one cluster.
"""

from __future__ import annotations

from pathlib import Path

import yaml

CLUSTER = "one"
CLUSTER_LABELS = {"env": "dev", "region": "eu"}


def bundle(ns: str, *, self_contained: bool = False) -> str:
    """One bundle's manifests. `self_contained` (the peer benchmark, for both tools): the
    Namespace object too, since Flux creates no namespace by itself, and a headless Service,
    since the test bed's /24 service range has 254 cluster IPs and every round deploys into
    fresh namespaces."""
    labels = {"app": "web"}
    service: dict[str, object] = {"selector": labels, "ports": [{"port": 80}]}
    docs: list[dict[str, object]] = []
    if self_contained:
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        service["clusterIP"] = "None"
    docs += [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": ns},
            "spec": service,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web", "namespace": ns},
            "data": {"greeting": "hello"},
        },
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def namespace(name: str, index: int) -> str:
    """The namespace of bundle `index` in the repository (fleet) `name`."""
    return f"{name}-{index}"


def bundle_path(index: int) -> str:
    return f"apps/b{index}"


def write_repo(work: Path, name: str, bundles: int, *, self_contained: bool = False) -> None:
    """fleet.yaml (fleet `name`, the one cluster) and `bundles` bundles under apps/."""
    labels = ", ".join(f"{key}: {value}" for key, value in CLUSTER_LABELS.items())
    (work / "fleet.yaml").write_text(
        f"apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: {name}\n"
        f"clusters:\n  - name: {CLUSTER}\n    labels: {{{labels}}}\n"
        "bundles:\n  paths: ['apps/*']\n"
    )
    for index in range(bundles):
        target = work / bundle_path(index) / "app.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(bundle(namespace(name, index), self_contained=self_contained))
