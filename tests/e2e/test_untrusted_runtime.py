"""Limits on what a repository decides, against the test bed's real clusters.

- `kubeconfig: {path: dev-eu.kubeconfig}` is found in the operator's FLEET_KUBECONFIG_DIR
  (here the test fleet's directory) and works: the confinement refuses paths outside it
  (tests/unit/test_kubeconfig_path.py), not this;
- a bundle asking `waitTimeoutSeconds: 86400` for a claim that is never Bound waits
  FLEET_MAX_WAIT_SECONDS (3 s here), not a day: `fleet sync` runs in a subprocess with a
  generous timeout, so without the cap this test fails instead of hanging.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from fleet.cli import main
from tests.conftest import LocalFleet
from tests.e2e.engine_support import core_api
from tests.e2e.sync_support import suffix

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
clusters:
  - name: dev-eu
    labels: {{env: dev}}
{how}
bundles:
  paths: [apps/*]
"""


def repo(root: Path, name: str, how: str, ns: str, manifest: str, options: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "fleet.yaml").write_text(DEFINITION.format(name=name, how=how))
    app = root / "apps" / "one"
    app.mkdir(parents=True)
    (app / "fleet.yaml").write_text(f"defaultNamespace: {ns}\n{options}")
    (app / "object.yaml").write_text(manifest)
    return root


@pytest.fixture
def namespace(local_fleet: LocalFleet) -> Iterator[str]:
    ns = f"untrusted-{suffix()}"
    yield ns
    with contextlib.suppress(client.ApiException):
        core_api(local_fleet, "dev-eu").delete_namespace(ns)


def test_a_kubeconfig_path_inside_the_operator_directory_works(
    local_fleet: LocalFleet,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("FLEET_CREDENTIALS_DIR", raising=False)
    monkeypatch.setenv("FLEET_KUBECONFIG_DIR", str(local_fleet.dir))
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "cache"))
    configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: here\ndata:\n  a: b\n"
    how = "    kubeconfig: {path: dev-eu.kubeconfig}"
    root = repo(tmp_path / "repo", f"kc-{suffix()}", how, namespace, configmap)
    code = main(["sync", str(root), "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert json.loads(out)["state"] == "Ready"
    found = core_api(local_fleet, "dev-eu").read_namespaced_config_map("here", namespace)
    assert found.data == {"a": "b"}


def test_a_wait_from_git_is_capped_by_the_operator(
    local_fleet: LocalFleet, namespace: str, tmp_path: Path
) -> None:
    claim = (
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: never-bound\n"
        "spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n"
        "      storage: 1Mi\n"
    )  # no storage class and no provisioner in the test bed: it stays Pending
    root = repo(tmp_path / "repo", f"wait-{suffix()}", "", namespace, claim,
                "waitTimeoutSeconds: 86400\n")  # fmt: skip
    env = {
        **os.environ,
        "FLEET_CREDENTIALS_DIR": str(local_fleet.dir),
        "FLEET_CACHE_DIR": str(tmp_path / "cache"),
        "FLEET_MAX_WAIT_SECONDS": "3",
    }
    done = subprocess.run(
        [sys.executable, "-m", "fleet", "sync", str(root), "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (unit,) = json.loads(done.stdout)["units"]
    assert unit["state"] == "NotReady"
    assert "not Bound" in unit["message"]
    assert (
        "waitTimeoutSeconds 86400 is over the operator's limit: waited at most 3s"
        in (unit["message"])
    )
