"""`fleet status --tree` and `fleet explain` through the command line, on real clusters.

One small fleet on dev-eu and prod-us: `all-cfg` (a ConfigMap, everywhere: Ready),
`dev-web` on dev-eu (a Deployment whose pods never schedule: NotReady after a 3 s wait)
and `dev-api` on dev-eu, which depends on `dev-web` (held). Groups `prod` and `us` both
hold prod-us (drawn under each); dev-eu is in none.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from fleet.cli import main
from tests.conftest import LocalFleet
from tests.e2e.engine_support import core_api
from tests.e2e.sync_support import fleet_env, suffix
from tests.support.servers import GitServer, GitWorkTree

__all__ = ["fleet_env"]

CLUSTERS = ["dev-eu", "prod-us"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write(tree: GitWorkTree, path: str, *docs: dict[str, Any]) -> None:
    tree.write(path, yaml.safe_dump_all(docs, sort_keys=False))


def configmap(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}}  # fmt: skip


def unschedulable(ns: str) -> dict[str, Any]:
    labels = {"app": "web"}
    pod = {"containers": [{"name": "web", "image": "registry.invalid/web:1"}],
           "nodeSelector": {"fleet-test/no-such-node": "true"}}  # fmt: skip
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod}}}  # fmt: skip


@pytest.fixture
def repo(
    git_server: GitServer, local_fleet: LocalFleet, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """(the repository's URL, the suffix of its namespaces); namespaces deleted after."""
    sfx = suffix()
    tree = git_server.create_repo(f"explain-{sfx}", tmp_path / "repo")
    write(tree, "fleet.yaml", {
        "apiVersion": "fleet-gitops.io/v1alpha1", "kind": "Fleet", "name": f"explain-{sfx}",
        "clusters": [{"name": "dev-eu", "labels": {"env": "dev", "region": "eu"}},
                     {"name": "prod-us", "labels": {"env": "prod", "region": "us"}}],
        "groups": [{"name": "prod", "selector": {"matchLabels": {"env": "prod"}}},
                   {"name": "us", "selector": {"matchLabels": {"region": "us"}}}],
        "bundles": {"paths": ["all/*", {"glob": "dev/*", "targets": [{"clusterName": "dev-eu"}]}]},
    })  # fmt: skip
    write(tree, "all/cfg/fleet.yaml", {"defaultNamespace": f"cfg-{sfx}"})
    write(tree, "all/cfg/cm.yaml", configmap("cfg", f"cfg-{sfx}"))
    write(tree, "dev/web/fleet.yaml", {"defaultNamespace": f"web-{sfx}"})
    write(tree, "dev/web/app.yaml", unschedulable(f"web-{sfx}"))
    write(tree, "dev/api/fleet.yaml", {"defaultNamespace": f"api-{sfx}",
                                       "dependsOn": [{"name": "dev-web"}]})  # fmt: skip
    write(tree, "dev/api/cm.yaml", configmap("api", f"api-{sfx}"))
    tree.commit_and_push("cfg everywhere, web never ready, api waits for web")
    yield tree.remote_url, sfx
    for cluster in CLUSTERS:
        core = core_api(local_fleet, cluster)
        for base in ("cfg", "web", "api"):
            with contextlib.suppress(client.ApiException):
                core.delete_namespace(f"{base}-{sfx}")


@pytest.mark.usefixtures("fleet_env")
def test_tree_and_explain_say_which_object_and_what_holds(
    repo: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, sfx = repo
    monkeypatch.setenv("FLEET_MAX_WAIT_SECONDS", "3")
    code, out, err = run(capsys, "sync", url)
    assert code == 1, out + err  # dev-web never gets Ready
    assert "NotReady" in next(line for line in out.splitlines() if "dev-web" in line), out

    code, out, err = run(capsys, "status", "--tree", url)
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0].startswith(f"fleet explain-{sfx} at ") and lines[0].endswith("Pending")
    assert [line for line in lines if "group " in line or "(no group)" in line] == [
        "├── group prod: Ready",
        "├── group us: Ready",
        "└── (no group): Pending",
    ]
    assert sum(1 for line in lines if line.endswith("cluster prod-us: Ready")) == 2
    assert any(f"Deployment web-{sfx}/web: NotReady: " in line for line in lines), out
    assert any(line.endswith(f"ConfigMap cfg-{sfx}/cfg: Ready") for line in lines), out
    held = next(line for line in lines if "bundle dev-api" in line)
    assert "Pending" in held and "depends on dev-web" in held

    code, out, _ = run(capsys, "status", "--tree", url, "-o", "json")
    data = json.loads(out)
    assert data["groups"] == {"prod": ["prod-us"], "us": ["prod-us"]}
    web = next(u for u in data["units"] if u["bundle"] == "dev-web")
    assert [o["object"] for o in web["objects"] if not o["ready"]] == [f"Deployment web-{sfx}/web"]

    code, out, _ = run(capsys, "explain", "dev-web", "--cluster", "dev-eu", url)
    assert code == 1
    assert out.startswith("bundle dev-web on cluster dev-eu: NotReady\n"), out
    unready = [line for line in out.splitlines() if ": NotReady: " in line]
    assert len(unready) == 1 and f"Deployment web-{sfx}/web" in unready[0], out
    assert "rollout: 0/1 replicas available" in unready[0], out
    assert "waits for:  nothing" in out
    assert "unit.applied  NotReady: Deployment" in out  # its last event

    code, out, _ = run(capsys, "explain", "dev-api", "--cluster", "dev-eu", url)
    assert code == 1
    assert "waits for:  depends on dev-web (NotReady" in out, out
    assert "running:    (nothing)" in out and "objects: not looked at" in out

    code, out, _ = run(capsys, "explain", "all-cfg", "--cluster", "prod-us", url, "-o", "json")
    assert code == 0, out
    found = json.loads(out)
    assert found["state"] == "Ready" and found["waiting"] is None
    assert found["runningId"] == found["deploymentId"]
    assert found["objects"] == [{"object": f"ConfigMap cfg-{sfx}/cfg", "ready": True,
                                 "message": ""}]  # fmt: skip


@pytest.mark.usefixtures("fleet_env")
def test_explain_unknown_bundle_or_cluster_is_one_line(
    repo: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = repo
    for args, says in [
        (
            ["nope", "--cluster", "dev-eu"],
            "unknown bundle 'nope' (bundles: all-cfg, dev-api, dev-web)",
        ),
        (["all-cfg", "--cluster", "nope"], "unknown cluster 'nope' (clusters: dev-eu, prod-us)"),
        (["dev-web", "--cluster", "prod-us"], "bundle 'dev-web' does not target cluster"),
    ]:
        code, out, err = run(capsys, "explain", *args, url)
        assert code == 1 and out == ""
        assert err.splitlines() == [f"error: {err.removeprefix('error: ').strip()}"]
        assert says in err, err
