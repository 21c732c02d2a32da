"""`fleet sync` of a Helm chart from an OCI registry: the test bed's token-auth registry,
the definition's credential from the environment, a version range pinned for the commit.
Every cluster runs the same chart version under the same deployment id."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleet.cli import main
from tests.conftest import LocalFleet
from tests.e2e.engine_support import core_api
from tests.e2e.sync_support import deployed, fleet_env, suffix
from tests.support.registry import RegistryServer
from tests.support.servers import GitServer
from tests.support.tls import TlsFiles

__all__ = ["fleet_env"]


def _push(helm: str, registry: RegistryServer, tls: TlsFiles, base: Path, version: str) -> None:
    chart = base / f"app-{version}"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: app\nversion: {version}\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chart-version\n"
        "data:\n  chart: {{ .Chart.Version | quote }}\n"
    )
    subprocess.run([helm, "package", str(chart), f"--destination={base}"], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(
        [helm, "push", str(base / f"app-{version}.tgz"), f"oci://{registry.host}/e2e",
         f"--registry-config={registry.auth_file()}", f"--ca-file={tls.cert}"],
        check=True, capture_output=True,
    )  # fmt: skip


@pytest.mark.usefixtures("fleet_env")
def test_sync_an_oci_chart_with_a_range_to_every_cluster(
    git_server: GitServer,
    local_fleet: LocalFleet,
    token_registry: RegistryServer,
    registry_tls: TlsFiles,
    binary: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    helm: str = binary("helm")
    for version in ("1.0.0", "1.4.0", "2.0.0"):
        _push(helm, token_registry, registry_tls, tmp_path / "charts", version)
    user, password = next(iter(token_registry.users.items()))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    registry_tls.trust(monkeypatch)

    sfx = suffix()
    tree = git_server.create_repo(f"oci-{sfx}", tmp_path / "repo")
    clusters = "".join(f"  - name: {name}\n" for name in local_fleet.clusters)
    tree.write(
        "fleet.yaml",
        f"apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: oci-{sfx}\n"
        f"clusters:\n{clusters}bundles: {{paths: [app]}}\n"
        f"registries:\n  - {{name: bed, type: oci, host: '{token_registry.host}', "
        "credential: bed}\n",
    )
    tree.write(
        "app/fleet.yaml",
        f"name: app-{sfx}\ndefaultNamespace: oci-{sfx}\n"
        f"helm:\n  chart: oci://{token_registry.host}/e2e/app\n  version: '^1.0.0'\n",
    )
    tree.commit_and_push("an OCI chart")
    assert main(["sync", tree.remote_url, "--no-wait"]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert password not in out + err

    ids = set()
    for cluster in local_fleet.clusters:
        ids.add(deployed(local_fleet, cluster)[f"app-{sfx}"].deployment_id)
        cm = core_api(local_fleet, cluster).read_namespaced_config_map(
            "chart-version", f"oci-{sfx}"
        )
        assert cm.data == {"chart": "1.4.0"}, cluster  # the highest 1.x, on every cluster
    assert len(ids) == 1
