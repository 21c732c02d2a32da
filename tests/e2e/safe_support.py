"""A small fleet on one real cluster for the "never delete what Git still wants" tests.

`SafeFleet` is a Git repository (`apps/<dir>/...`, one bundle per directory, so the bundle
of `apps/data` is `apps-data`) with its own fleet name and namespaces, synced with the
embedded `fleet sync`, and the cluster's audit log, so a test can say "this change made no
DELETE request" from what the API server saw.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.runtime.embedded import SyncReport, sync_fleet
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.support.audit import AuditLog, DeleteRequest
from tests.support.servers import GitServer, GitWorkTree

CLUSTER = "dev-eu"

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
clusters:
  - name: {cluster}
    labels: {{env: dev, region: eu}}
bundles:
  paths: [apps/*]
"""


def configmap(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


@dataclass
class SafeFleet:
    tree: GitWorkTree
    name: str
    sfx: str
    local: LocalFleet
    audit: AuditLog
    conn: ClusterConnection
    reports: list[SyncReport] = field(default_factory=list)

    def ns(self, base: str) -> str:
        return f"{base}-{self.sfx}"

    def write(self, path: str, *docs: dict[str, Any]) -> None:
        self.tree.write(path, yaml.safe_dump_all(docs, sort_keys=False))

    def remove(self, path: str) -> None:
        target = self.tree.path / path
        if target.is_dir():
            for child in sorted(target.rglob("*"), reverse=True):
                child.unlink() if child.is_file() else child.rmdir()
            target.rmdir()
        else:
            target.unlink()

    def move(self, old: str, new: str) -> None:
        (self.tree.path / new).parent.mkdir(parents=True, exist_ok=True)
        (self.tree.path / old).rename(self.tree.path / new)

    def commit(self, message: str) -> str:
        return self.tree.commit_and_push(message)

    def sync(self) -> SyncReport:
        lines: list[str] = []
        report = sync_fleet(self.tree.remote_url, progress=lines.append)
        report.progress = lines  # type: ignore[attr-defined]
        self.reports.append(report)
        return report

    def result(self, report: SyncReport, bundle: str) -> Any:
        """The unit's status row (state, message), whether or not this pass synced it."""
        return next(u for u in report.status.units if u.bundle == bundle)

    def synced(self, report: SyncReport, bundle: str) -> Any:
        """What this pass did to the unit (its `UnitResult`: objects, writes)."""
        return report.results[(bundle, CLUSTER)]

    def uid(self, ref: ObjectRef) -> str | None:
        live = self.conn.get(ref)
        if live is None:
            return None
        meta = live.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return None
        return str(meta["uid"])

    def live(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.conn.get(ref)

    def deletes(self, since: int, *namespaces: str) -> list[DeleteRequest]:
        found = self.audit.deletes(since)
        if namespaces:
            found = [d for d in found if d.namespace in namespaces or d.name in namespaces]
        return [d for d in found if d.namespace != "fleet-system"]  # inventories

    def core(self) -> client.CoreV1Api:
        api = client.ApiClient(_configuration(self.local))
        return client.CoreV1Api(api)


def _configuration(local: LocalFleet) -> client.Configuration:
    from kubernetes import config as k8s_config

    cfg = client.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(local.clusters[CLUSTER].kubeconfig), client_configuration=cfg
    )
    return cfg


def new_fleet(
    git_server: GitServer, local: LocalFleet, work: Path, prefix: str = "safe"
) -> SafeFleet:
    sfx = uuid.uuid4().hex[:6]
    name = f"{prefix}-{sfx}"
    tree = git_server.create_repo(name, work)
    tree.write("fleet.yaml", DEFINITION.format(name=name, cluster=CLUSTER))
    cluster = local.clusters[CLUSTER]
    conn = ClusterConnection.from_kubeconfig(cluster.kubeconfig, name=CLUSTER)
    return SafeFleet(tree, name, sfx, local, AuditLog(cluster.kubeconfig, CLUSTER), conn)


def ready(report: SyncReport) -> bool:
    return all(u.state is BundleState.READY for u in report.status.units)


def describe(report: SyncReport) -> str:
    lines = [f"{u.bundle}@{u.cluster}: {u.state.value}: {u.message}" for u in report.status.units]
    lines += [f"removed {r.bundle}@{r.cluster}: {r.message}" for r in report.status.removed]
    return "\n".join(lines + list(getattr(report, "progress", [])))
