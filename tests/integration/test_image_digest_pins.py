"""Digest pinning against the test bed's real registry (distribution 2.8, htpasswd auth):
images pushed with skopeo, resolved once per commit through the definition's `registries`,
every container image rewritten to `name:tag@sha256:...`; a new image pushed behind the
same tag is a new deployment id; a registry that is down holds back only the bundles that
pin images."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from fleet.desired import DesiredState
from fleet.errors import TransientError
from fleet.plugin.manager import FleetPlugins
from fleet.registry.image_pins import ImagePin
from fleet.render.images import container_images
from fleet.spec.loader import load_repository
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer
from tests.support.servers import free_port
from tests.support.tls import TlsFiles

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers: [{name: init, image: "IMAGE"}]
      containers:
        - {name: web, image: "IMAGE"}
        - {name: pinned, image: "PINNED"}
        - {name: elsewhere, image: "quay.io/other/app:1"}
"""


def fleet_repo(root: Path, host: str, image: str, pinned: str) -> Path:
    for bundle in ("web", "plain"):
        (root / bundle).mkdir(parents=True)
    (root / "fleet.yaml").write_text(
        textwrap.dedent(
            f"""\
            apiVersion: fleet-gitops.io/v1alpha1
            kind: Fleet
            name: images
            clusters: [{{name: c1}}, {{name: c2, labels: {{env: prod}}}}]
            bundles: {{paths: [web, plain]}}
            registries: [{{name: bed, type: oci, host: "{host}", credential: bed}}]
            """
        )
    )
    (root / "web" / "fleet.yaml").write_text("images: {pinDigests: true}\n")
    (root / "web" / "deploy.yaml").write_text(
        DEPLOYMENT.replace("PINNED", pinned).replace("IMAGE", image)
    )
    (root / "plain" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {a: b}\n"
    )
    return root


def target(repo: Path, **kw: Any) -> DesiredState:
    return DesiredState.target(
        load_repository(repo), "c0ffee", FleetPlugins.load(entry_points=False), **kw
    )


@pytest.fixture
def bed_env(
    htpasswd_registry: RegistryServer, registry_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> RegistryServer:
    user, password = next(iter(htpasswd_registry.users.items()))
    monkeypatch.setenv("SSL_CERT_FILE", str(registry_tls.cert))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    return htpasswd_registry


def test_images_are_pinned_once_per_commit_and_a_new_push_is_a_new_id(
    bed_env: RegistryServer, tmp_path: Path
) -> None:
    registry = bed_env
    layout = OciLayout(tmp_path / "layout")
    first, second, multi = layout.image("v1"), layout.image("v2"), layout.multi_arch("m")
    for descriptor, name in ((first, "first"), (second, "second"), (multi, "multi")):
        layout.tag(descriptor, name)
    registry.push_image(layout.root, "first", "pins/web:1.0")
    registry.push_image(layout.root, "multi", "pins/multi:1.0", flags=("--all",))
    image = f"{registry.host}/pins/web:1.0"
    already = f"{registry.host}/pins/multi:1.0@{multi.digest}"
    repo = fleet_repo(tmp_path / "repo", registry.host, image, already)

    state = target(repo)
    state.render_all()
    assert state.images is not None
    assert state.images.all() == {"web": [ImagePin(image, first.digest)]}
    assert any("quay.io/other/app:1" in w for w in state.images.warnings)  # not contacted
    web = [u for u in state.units if u.bundle == "web"]
    assert len({u.deployment_id for u in web}) == 1  # every cluster: one id, one digest
    assert f"{image}={first.digest}" in web[0].renderer
    for unit in web:
        images = container_images(state.manifests(unit))
        assert images == [f"{image}@{first.digest}", already, "quay.io/other/app:1"]

    # a worker loading the commit with the scheduler's pins gets the same ids, no registry
    worker = target(repo, images=state.images.all())
    assert {u.key: u.deployment_id for u in worker.units} == {
        u.key: u.deployment_id for u in state.units
    }

    # the same tag pushed again with other bytes: the next load is a new deployment id
    registry.push_image(layout.root, "second", "pins/web:1.0")
    later = target(repo)
    later_web = [u for u in later.units if u.bundle == "web"]
    assert later_web[0].deployment_id != web[0].deployment_id
    assert container_images(later.manifests(later_web[0]))[0] == f"{image}@{second.digest}"
    plain = {u.key: u.deployment_id for u in state.units if u.bundle == "plain"}
    assert plain == {u.key: u.deployment_id for u in later.units if u.bundle == "plain"}


def test_a_registry_that_is_down_holds_back_only_the_bundles_that_pin(
    registry_tls: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(registry_tls.cert))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", "someone")
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", "secret")
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    repo = fleet_repo(tmp_path / "repo", host, f"{host}/pins/web:1.0", "busybox@sha256:" + "0" * 64)

    state = target(repo)
    state.render_all()  # not a broken commit: the plain bundle renders and can roll out
    assert set(state.deferred) == {"web"}
    assert isinstance(state.deferred["web"], TransientError)
    plain = [u for u in state.units if u.bundle == "plain"]
    assert [m["kind"] for m in state.manifests(plain[0])] == ["ConfigMap"]
    web = next(u for u in state.units if u.bundle == "web")
    with pytest.raises(TransientError, match="cannot reach"):
        state.manifests(web)
    assert state.claims("c1")  # what the deferred bundle owns is still known (no prune)
