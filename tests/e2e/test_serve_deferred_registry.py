"""`fleet serve` with a registry down: real Redis, a real `fleet serve` and `fleet worker`,
the real htpasswd registry stopped and started again. A commit changes bundle web (its
image pinned to a digest on that registry) and bundle api (no registry): api rolls out on
every cluster, web keeps what it runs (same uids, no DELETE in the audit log) and waits
with the reason; once the registry is back, web rolls out too."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.errors import FleetError
from tests.conftest import LocalFleet
from tests.e2e.dist_support import distributed, wait_until
from tests.e2e.sync_support import fleet_env  # noqa: F401  (fixture)
from tests.support.audit import AuditLog
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer
from tests.support.servers import GitServer, RedisServer
from tests.support.tls import TlsFiles

pytestmark = pytest.mark.usefixtures("fleet_env")
CLUSTERS = ("dev-eu", "prod-eu")
CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata: {{name: web, namespace: {ns}}}
spec:
  schedule: "0 0 1 1 *"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{{name: web, image: "{image}"}}]
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {ns}}}
data: {{v: "{v}"}}
"""


def test_a_registry_down_defers_only_the_bundles_that_need_it(
    git_server: GitServer,
    local_fleet: LocalFleet,
    redis_server: RedisServer,
    htpasswd_registry: RegistryServer,
    registry_tls: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, sfx = htpasswd_registry, uuid.uuid4().hex[:6]
    layout = OciLayout(tmp_path / "layout")
    layout.tag(layout.image(f"web {sfx}"), "one")
    registry.push_image(layout.root, "one", f"defer-{sfx}/web:1.0")
    user, password = next(iter(registry.users.items()))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    registry_tls.trust(monkeypatch)
    ns, name = f"defer-{sfx}", f"defer-{sfx}"
    tree = git_server.create_repo(name, tmp_path / "repo")
    listed = "".join(f"  - {{name: {c}, labels: {{region: eu}}}}\n" for c in CLUSTERS)
    tree.write(
        "fleet.yaml",
        f"apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: {name}\n"
        f"clusters:\n{listed}bundles: {{paths: [apps/*]}}\n"
        f"registries:\n  - {{name: bed, type: oci, host: '{registry.host}', credential: bed}}\n",
    )
    image = f"{registry.host}/defer-{sfx}/web:1.0"
    tree.write("apps/web/fleet.yaml", f"defaultNamespace: {ns}\nimages: {{pinDigests: true}}\n")
    tree.write("apps/web/ns.yaml", f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")
    tree.write("apps/web/cron.yaml", CRONJOB.format(ns=ns, image=image))
    tree.write("apps/web/cm.yaml", CONFIGMAP.format(name="web", ns=ns, v="1"))
    tree.write("apps/api/fleet.yaml", f"defaultNamespace: {ns}\n")
    tree.write("apps/api/cm.yaml", CONFIGMAP.format(name="api", ns=ns, v="1"))
    first = tree.commit_and_push("web and api")
    conns = {
        c: ClusterConnection.from_kubeconfig(local_fleet.clusters[c].kubeconfig, name=c)
        for c in CLUSTERS
    }
    audits = {c: AuditLog(local_fleet.clusters[c].kubeconfig, c) for c in CLUSTERS}
    cron = ObjectRef("batch/v1", "CronJob", ns, "web")
    web_cm, api_cm = (ObjectRef("v1", "ConfigMap", ns, n) for n in ("web", "api"))

    def live(cluster: str, ref: ObjectRef) -> dict[str, Any]:
        found = conns[cluster].get(ref)
        assert found is not None, (cluster, ref)
        return found

    def value(cluster: str, ref: ObjectRef) -> str:
        return str(live(cluster, ref)["data"]["v"])

    try:
        with distributed(tree.remote_url, tmp_path / "logs", redis_server.url,
                         local_fleet.dir) as dist:  # fmt: skip
            dist.start_serve("--poll-interval", "3600")
            dist.start_worker("eu", "eu")
            assert dist.push_webhook(first) in (200, 202)
            dist.wait_converged(first)
            before = {c: live(c, cron)["metadata"]["uid"] for c in CLUSTERS}
            images = {c: str(live(c, cron)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                             ["containers"][0]["image"]) for c in CLUSTERS}  # fmt: skip
            assert all("@sha256:" in i for i in images.values()), images

            tree.write("apps/web/cm.yaml", CONFIGMAP.format(name="web", ns=ns, v="2"))
            tree.write("apps/api/cm.yaml", CONFIGMAP.format(name="api", ns=ns, v="2"))
            second = tree.commit_and_push("both change; the registry is down")
            marks = {c: audits[c].mark() for c in CLUSTERS}
            registry.stop()
            try:
                assert dist.push_webhook(second) in (200, 202)
                wait_until(lambda: all(value(c, api_cm) == "2" for c in CLUSTERS), 120,
                           "api to roll out with the registry down", dist)  # fmt: skip

                def web_waits() -> bool:
                    status = dist.status()
                    rows = [u for u in status.get("units", []) if u["bundle"] == "apps-web"]
                    text = str(rows)
                    return (status.get("commit") == second and len(rows) == len(CLUSTERS)
                            and "image digests not resolved" in text)  # fmt: skip

                wait_until(web_waits, 60, "web reported as deferred", dist)
                for c in CLUSTERS:  # what web runs is untouched: not removed, not re-applied
                    assert value(c, web_cm) == "1"
                    assert live(c, cron)["metadata"]["uid"] == before[c]
                    assert audits[c].deletes(marks[c], namespace=ns) == [], c
                events = dist.get(f"/events?fleet={name}") or ""
                assert password not in events and password not in dist.describe()
            finally:
                registry.start()
            status = dist.wait_converged(second, timeout=240)  # web resolved after a backoff
            assert {u["bundle"] for u in status["units"]} == {"apps-web", "apps-api"}
            for c in CLUSTERS:
                assert value(c, web_cm) == "2" and value(c, api_cm) == "2"
                assert live(c, cron)["metadata"]["uid"] == before[c]
                assert audits[c].deletes(marks[c], namespace=ns) == [], c
    finally:
        for conn in conns.values():
            with contextlib.suppress(client.ApiException, FleetError):
                conn.delete(ObjectRef("v1", "Namespace", None, ns))
            conn.close()
