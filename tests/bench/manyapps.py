"""Many small bundles on one cluster: the repository the one-cluster benchmarks push.

Used by bench_flux.py (fleet vs. Flux) and noop_cpu.py, so both tools get the workload
the other one-cluster benchmarks measure (benchlib's web bundle): N bundles of plain
manifests, each a Namespace, a Deployment (one replica), a headless Service and a
ConfigMap, under apps/b<i>/app.yaml, with a fleet.yaml naming the one cluster.
"""

from __future__ import annotations

from pathlib import Path

import benchlib
import yaml

CLUSTER = "one"
CLUSTER_LABELS = {"env": "dev", "region": "eu"}


def bundle(ns: str) -> str:
    """One bundle's manifests: benchlib's web bundle (a Deployment, a headless Service and
    a ConfigMap) and its Namespace object, since Flux creates no namespace by itself."""
    namespace_doc = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    return f"{namespace_doc}---\n{benchlib.web_bundle(ns)}"


def namespace(name: str, index: int) -> str:
    """The namespace of bundle `index` in the repository (fleet) `name`."""
    return f"{name}-{index}"


def bundle_path(index: int) -> str:
    return f"apps/b{index}"


def write_repo(work: Path, name: str, bundles: int) -> None:
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
        target.write_text(bundle(namespace(name, index)))
