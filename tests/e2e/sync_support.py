"""Helpers for the `fleet sync` e2e tests: the demo repository with unique names, in Git."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from fleet.engine import DeployedBundle, read_deployed
from fleet.engine.kube import ClusterConnection
from tests.conftest import ROOT, LocalFleet
from tests.support.servers import GitServer, GitWorkTree


def suffix() -> str:
    return uuid.uuid4().hex[:6]


def demo_repo(git_server: GitServer, workdir: Path, sfx: str) -> GitWorkTree:
    """fleet.example.yaml + examples/ in a new repository on the git server, every bundle,
    namespace and the fleet renamed with `sfx` (the session clusters are shared)."""
    tree = git_server.create_repo(f"fleet-{sfx}", workdir)
    shutil.copytree(ROOT / "examples", tree.path / "examples")
    definition = yaml.safe_load((ROOT / "fleet.example.yaml").read_text())
    definition["name"] = f"sync-{sfx}"
    inline = definition["bundles"]["inline"][0]
    inline["name"], inline["defaultNamespace"] = f"platform-config-{sfx}", f"platform-{sfx}"
    tree.write("fleet.yaml", yaml.safe_dump(definition, sort_keys=False))
    bundles = tree.path / "examples" / "bundles"
    _edit(bundles / "web" / "fleet.yaml", {"name": f"web-{sfx}", "defaultNamespace": f"web-{sfx}"})
    _edit(
        bundles / "guestbook" / "fleet.yaml",
        {
            "name": f"guestbook-{sfx}",
            "namespace": f"guestbook-{sfx}",
            "correctDrift": {"enabled": True, "force": True},
        },
    )
    ns = bundles / "platform-config" / "namespace.yaml"
    ns.write_text(ns.read_text().replace("name: platform", f"name: platform-{sfx}"))
    return tree


def _edit(path: Path, changes: dict[str, object]) -> None:
    doc = yaml.safe_load(path.read_text())
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def deployed(local_fleet: LocalFleet, cluster: str) -> dict[str, DeployedBundle]:
    conn = ClusterConnection.from_kubeconfig(local_fleet.clusters[cluster].kubeconfig, name=cluster)
    try:
        return read_deployed(conn)
    finally:
        conn.close()


@pytest.fixture
def fleet_env(local_fleet: LocalFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials from the test fleet's directory; a private Git cache."""
    monkeypatch.setenv("FLEET_CREDENTIALS_DIR", str(local_fleet.dir))
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "cache"))
