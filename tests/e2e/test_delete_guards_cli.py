"""Issue 8, cases 8 and 11 through `fleet sync` / `fleet status`, on real clusters.

- correctDrift: a Deployment scaled through the scale subresource (what `kubectl scale`
  does) is put back by `fleet sync` when its bundle has `correctDrift.enabled`, and stays
  (reported Modified by `fleet status`) when it has not;
- the mass-delete guard: a commit that removes most of the fleet's objects, or every
  bundle from the clusters (a selector typo), exits 1 with one line and deletes nothing;
  `--allow-mass-delete` lets it go ahead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fleet.cli import main
from tests.conftest import LocalFleet
from tests.e2e.engine_support import apps_api, core_api
from tests.e2e.sync_support import deployed, fleet_env, suffix
from tests.support.audit import AuditLog
from tests.support.servers import GitServer, GitWorkTree

__all__ = ["fleet_env"]

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
clusters:
{clusters}
bundles:
  paths: ["apps/*"]
"""
CLUSTER = "  - name: {name}\n    labels: {{env: {env}}}\n"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: '1'\n"
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: example/app:1.0}}]
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def definition(name: str, clusters: list[str]) -> str:
    entries = "".join(CLUSTER.format(name=c, env=c.split("-")[0]) for c in clusters)
    return DEFINITION.format(name=name, clusters=entries.rstrip("\n"))


def bundle(tree: GitWorkTree, name: str, ns: str, docs: dict[str, str], **extra: object) -> None:
    options = {"name": f"{name}-{ns}", "defaultNamespace": ns, **extra}  # unique: shared clusters
    tree.write(f"apps/{name}/fleet.yaml", json.dumps(options))
    for file, text in docs.items():
        tree.write(f"apps/{name}/{file}", text)


@pytest.mark.usefixtures("fleet_env")
def test_correct_drift_puts_back_replicas_set_with_kubectl_scale(
    git_server: GitServer,
    tmp_path: Path,
    local_fleet: LocalFleet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sfx = suffix()
    ns = f"scale-{sfx}"
    tree = git_server.create_repo(f"scale-{sfx}", tmp_path / "repo")
    tree.write("fleet.yaml", definition(f"scale-{sfx}", ["dev-eu"]))
    deploy = {"deploy.yaml": DEPLOYMENT.format(name="fixed")}
    bundle(tree, "fixed", ns, deploy, correctDrift={"enabled": True}, waitTimeoutSeconds=30)
    bundle(tree, "loose", ns, {"deploy.yaml": DEPLOYMENT.format(name="loose")},
           waitTimeoutSeconds=30)  # fmt: skip
    tree.commit_and_push("two deployments")
    url = tree.remote_url
    code, out, err = run(capsys, "sync", url)
    assert code == 0, out + err

    apps = apps_api(local_fleet, "dev-eu")
    for name in ("fixed", "loose"):
        apps.patch_namespaced_deployment_scale(
            name, ns, {"spec": {"replicas": 3}}, field_manager="kubectl-scale"
        )
    code, out, _ = run(capsys, "status", url, "-o", "json")
    assert code == 1
    states = {(u["bundle"], u["state"]) for u in json.loads(out)["units"]}
    assert states == {(f"fixed-{ns}", "Modified"), (f"loose-{ns}", "Modified")}

    code, out, err = run(capsys, "sync", url, "-o", "json")
    units = {u["bundle"]: u for u in json.loads(out)["units"]}
    assert units[f"fixed-{ns}"]["state"] == "Ready", out + err
    assert "corrected" in units[f"fixed-{ns}"]["message"]
    assert apps.read_namespaced_deployment("fixed", ns).spec.replicas == 1
    assert apps.read_namespaced_deployment("loose", ns).spec.replicas == 3

    code, out, _ = run(capsys, "status", url, "-o", "json")
    states = {(u["bundle"], u["state"]) for u in json.loads(out)["units"]}
    assert states == {(f"fixed-{ns}", "Ready"), (f"loose-{ns}", "Modified")}
    loose = next(u for u in json.loads(out)["units"] if u["bundle"] == f"loose-{ns}")
    assert "/spec/replicas" in loose["message"]


def configmaps(local_fleet: LocalFleet, cluster: str, ns: str) -> set[str]:
    items = core_api(local_fleet, cluster).list_namespaced_config_map(ns).items
    return {i.metadata.name for i in items if i.metadata.name != "kube-root-ca.crt"}


@pytest.mark.usefixtures("fleet_env")
def test_mass_deletes_stop_until_allowed(
    git_server: GitServer,
    tmp_path: Path,
    local_fleet: LocalFleet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sfx = suffix()
    name, ns, clusters = f"guard-{sfx}", f"guard-{sfx}", ["dev-eu", "prod-eu"]
    tree = git_server.create_repo(name, tmp_path / "repo")
    tree.write("fleet.yaml", definition(name, clusters))
    big = {f"cm{i}.yaml": CONFIGMAP.format(name=f"big-{i}") for i in range(12)}
    bundle(tree, "big", ns, big)
    bundle(tree, "small", ns, {"cm.yaml": CONFIGMAP.format(name="small")})
    tree.commit_and_push("two bundles")
    url = tree.remote_url
    code, out, err = run(capsys, "sync", url)
    assert code == 0, out + err
    everything = {f"big-{i}" for i in range(12)} | {"small"}
    assert all(configmaps(local_fleet, c, ns) == everything for c in clusters)

    # 1. most of the fleet's objects leave in one commit
    shutil.rmtree(tree.path / "apps" / "big")
    tree.commit_and_push("drop big")
    audits = [AuditLog(local_fleet.clusters[c].kubeconfig, c) for c in clusters]
    marks = [a.mark() for a in audits]
    code, out, err = run(capsys, "sync", url)
    assert code == 1
    assert err.splitlines()[-1] == (
        "error: mass delete stopped: this commit would delete 24 of the fleet's 28 objects "
        "(86%, more than FLEET_MASS_DELETE_SHARE 50%); nothing was deleted (a typo in the "
        "definition's bundle paths?). If it is intended, run fleet sync --allow-mass-delete"
    )
    assert all(configmaps(local_fleet, c, ns) == everything for c in clusters)
    assert all(f"big-{ns}" in deployed(local_fleet, c) for c in clusters)
    # a dry run deletes nothing either way, and says so
    code, out, err = run(capsys, "sync", url, "--dry-run")
    assert "warning: mass delete stopped" in err
    assert [a.deletes(m) for a, m in zip(audits, marks, strict=True)] == [[], []]

    code, out, err = run(capsys, "sync", url, "--allow-mass-delete")
    assert code == 0, out + err
    assert all(configmaps(local_fleet, c, ns) == {"small"} for c in clusters)

    # 2. a selector typo ("prdo"): doNotDeploy now matches every cluster, so every bundle
    # would leave every cluster
    not_prdo = {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prdo"]}]}
    typo = {"targetCustomizations": [{"doNotDeploy": True, "clusterSelector": not_prdo}]}
    bundle(tree, "small", ns, {}, **typo)
    tree.commit_and_push("typo")
    marks = [a.mark() for a in audits]
    code, out, err = run(capsys, "sync", url)
    assert code == 1
    assert "would remove every bundle of fleet " + name + " from cluster dev-eu" in err
    assert "from cluster prod-eu" in err and "nothing was deleted" in err
    assert all(configmaps(local_fleet, c, ns) == {"small"} for c in clusters)
    assert all(f"small-{ns}" in deployed(local_fleet, c) for c in clusters)
    assert [a.deletes(m) for a, m in zip(audits, marks, strict=True)] == [[], []]
    code, out, err = run(capsys, "sync", url, "--allow-mass-delete")
    assert code == 0, out + err
    assert all(configmaps(local_fleet, c, ns) == set() for c in clusters)
