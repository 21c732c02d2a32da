"""Every file a renderer reads goes through the repository path check and the size cap
before it is opened (`RenderRequest.read_text` / `read_bytes`), overlay patches included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.plugin.manager import FleetPlugins
from fleet.render.api import RenderRequest
from fleet.render.pipeline import render_bundle
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.cluster import ClusterContext
from fleet.spec.pathsafety import MAX_READ_BYTES
from tests.support.reads import recorded_reads

pytestmark = pytest.mark.unit

DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n"


def overlay_bundle(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(repo, bundle `app` with overlay `prod`, a secret file outside the repository)."""
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (repo / "app" / "overlays" / "prod").mkdir(parents=True)
    outside.mkdir()
    (repo / "app" / "deployment.yaml").write_text(DEPLOYMENT)
    secret = outside / "token.yaml"
    secret.write_text("spec: {replicas: 7}\ntoken: hunter2\n")
    return repo, repo / "app", secret


def render(repo: Path, bundle: Path, overlays: list[str]) -> object:
    """As a sync renders a unit: the deployment id is the cache key, so no content hash
    (whose directory walk would refuse the link too) runs before the renderer reads."""
    request = RenderRequest(
        bundle_dir=bundle,
        repo_root=repo,
        options=BundleOptions.model_validate({"yaml": {"overlays": overlays}}),
        cluster=ClusterContext("c1"),
        options_file=bundle / "fleet.yaml",
        cache_key="unit-id",
    )
    return render_bundle(request, FleetPlugins.load(entry_points=False))


def test_an_overlay_patch_linking_outside_is_refused_unread(tmp_path: Path) -> None:
    repo, bundle, secret = overlay_bundle(tmp_path)
    (bundle / "overlays" / "prod" / "deployment_patch.yaml").symlink_to(secret)
    with recorded_reads() as reads, pytest.raises(FleetError) as err:
        render(repo, bundle, ["prod"])
    (problem,) = err.value.problems
    assert problem.file == "app/overlays/prod/deployment_patch.yaml"
    assert problem.message == (
        "overlay patch 'overlays/prod/deployment_patch.yaml' is outside the repository"
    )
    assert "hunter2" not in str(err.value)
    assert not [p for p in reads if Path(p).resolve() == secret.resolve()]


def test_an_overlay_replacement_linking_outside_is_refused_unread(tmp_path: Path) -> None:
    repo, bundle, secret = overlay_bundle(tmp_path)
    (bundle / "overlays" / "prod" / "deployment.yaml").symlink_to(secret)
    with recorded_reads() as reads, pytest.raises(FleetError, match="outside the repository"):
        render(repo, bundle, ["prod"])
    assert not [p for p in reads if Path(p).resolve() == secret.resolve()]


def test_an_oversized_patch_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    repo, bundle, _ = overlay_bundle(tmp_path)
    big = bundle / "overlays" / "prod" / "deployment_patch.yaml"
    with big.open("wb") as handle:  # sparse: no 8 MiB written to disk
        handle.truncate(MAX_READ_BYTES + 1)
    with recorded_reads() as reads, pytest.raises(FleetError) as err:
        render(repo, bundle, ["prod"])
    assert str(err.value) == (
        "app/overlays/prod/deployment_patch.yaml: overlay patch "
        "'overlays/prod/deployment_patch.yaml' is larger than 8 MiB and is not read"
    )
    assert str(big) not in reads


def test_a_fifo_is_not_opened(tmp_path: Path) -> None:
    """A FIFO would block the render forever; it is refused after a stat, never opened."""
    repo, bundle, _ = overlay_bundle(tmp_path)
    request = RenderRequest(bundle, repo, BundleOptions(), ClusterContext("c1"))
    os.mkfifo(bundle / "pipe.yaml")
    with pytest.raises(FleetError, match=r"'pipe\.yaml' is not a regular file"):
        request.read_text("pipe.yaml", what="manifest file")


def test_read_text_for_plugins(tmp_path: Path) -> None:
    repo, bundle, _ = overlay_bundle(tmp_path)
    request = RenderRequest(bundle, repo, BundleOptions(), ClusterContext("c1"))
    assert request.read_text("deployment.yaml", what="manifest") == DEPLOYMENT
    (bundle / "latin1.txt").write_bytes(b"caf\xe9")
    with pytest.raises(FleetError, match=r"'latin1\.txt' is not valid UTF-8 text"):
        request.read_text("latin1.txt", what="properties file")
    with pytest.raises(FleetError, match="outside the repository"):
        request.read_bytes("../../outside/token.yaml", what="properties file")
