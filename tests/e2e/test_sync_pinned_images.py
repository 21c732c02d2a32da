"""`fleet sync` with digest pinning: an image pushed with skopeo to the test bed's registry,
a Deployment naming it by tag; every cluster runs it as `name:tag@sha256:...`, the same
digest everywhere, and the same tag pushed again with other bytes rolls out as a new
deployment id."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.cli import main
from tests.conftest import LocalFleet
from tests.e2e.engine_support import apps_api
from tests.e2e.sync_support import deployed, fleet_env, suffix
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer
from tests.support.servers import GitServer
from tests.support.tls import TlsFiles

__all__ = ["fleet_env"]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "IMAGE"}]
"""


@pytest.mark.usefixtures("fleet_env")
def test_sync_pins_the_same_digest_on_every_cluster(
    git_server: GitServer,
    local_fleet: LocalFleet,
    htpasswd_registry: RegistryServer,
    registry_tls: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = htpasswd_registry
    sfx = suffix()
    layout = OciLayout(tmp_path / "layout")
    first, second = layout.image(f"one {sfx}"), layout.image(f"two {sfx}")
    layout.tag(first, "first")
    layout.tag(second, "second")
    registry.push_image(layout.root, "first", f"e2e-{sfx}/web:1.0")
    user, password = next(iter(registry.users.items()))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    registry_tls.trust(monkeypatch)

    image = f"{registry.host}/e2e-{sfx}/web:1.0"
    tree = git_server.create_repo(f"pins-{sfx}", tmp_path / "repo")
    clusters = "".join(f"  - name: {name}\n" for name in local_fleet.clusters)
    tree.write(
        "fleet.yaml",
        f"apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: pins-{sfx}\n"
        f"clusters:\n{clusters}bundles: {{paths: [web]}}\n"
        f"registries:\n  - {{name: bed, type: oci, host: '{registry.host}', credential: bed}}\n",
    )
    tree.write(
        "web/fleet.yaml",
        f"name: web-{sfx}\ndefaultNamespace: pins-{sfx}\nimages: {{pinDigests: true}}\n",
    )
    tree.write("web/deploy.yaml", DEPLOYMENT.replace("IMAGE", image))
    tree.commit_and_push("a pinned image")

    def live() -> tuple[set[str], set[str]]:
        images, ids = set(), set()
        for cluster in local_fleet.clusters:
            ids.add(deployed(local_fleet, cluster)[f"web-{sfx}"].deployment_id)
            apps = apps_api(local_fleet, cluster)
            found = apps.read_namespaced_deployment("web", f"pins-{sfx}")
            images.add(found.spec.template.spec.containers[0].image)
        return images, ids

    def sync() -> str:
        # the test bed runs no Deployment controller: applied, not Ready (exit 1 says so)
        main(["sync", tree.remote_url, "--no-wait"])
        out, err = capsys.readouterr()
        assert "ErrApplied" not in out + err and password not in out + err, err
        assert (out + err).count(": syncing ") == len(local_fleet.clusters), err
        return out + err

    sync()
    images, ids = live()
    assert images == {f"{image}@{first.digest}"}  # the same digest on every cluster
    assert len(ids) == 1

    # the same tag, other bytes: the next sync is a new deployment id, rolled out everywhere
    registry.push_image(layout.root, "second", f"e2e-{sfx}/web:1.0")
    sync()
    later_images, later_ids = live()
    assert later_images == {f"{image}@{second.digest}"}
    assert len(later_ids) == 1 and later_ids != ids
