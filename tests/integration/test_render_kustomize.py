"""The built-in kustomize renderer with the real kustomize (or kubectl kustomize) binary."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import FleetError
from fleet.plugin.manager import FleetPlugins
from fleet.render.api import RenderRequest
from fleet.render.cache import RenderCache
from fleet.render.pipeline import render_bundle
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.cluster import ClusterContext


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def render(bundle: Path, root: Path, options: dict[str, Any] | None = None) -> Any:
    request = RenderRequest(
        bundle_dir=bundle,
        repo_root=root,
        options=BundleOptions.model_validate(options or {}),
        cluster=ClusterContext("c1"),
        options_file=bundle / "fleet.yaml",
    )
    return render_bundle(request, FleetPlugins.load(entry_points=False), RenderCache())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    bundle = tmp_path / "guestbook"
    write(
        bundle / "base" / "kustomization.yaml",
        "resources: [deployment.yaml]\nlabels: [{pairs: {app: guestbook}}]\n",
    )
    write(
        bundle / "base" / "deployment.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: guestbook}
        spec:
          replicas: 1
          template:
            spec:
              containers: [{name: web, image: "guestbook:v1"}]
        """,
    )
    write(
        bundle / "overlays" / "prod" / "kustomization.yaml",
        """
        resources: [../../base]
        namePrefix: prod-
        patches:
        - patch: |
            - {op: replace, path: /spec/replicas, value: 3}
          target: {kind: Deployment}
        """,
    )
    return tmp_path


def test_kustomize_dir_is_built(repo: Path) -> None:
    result = render(
        repo / "guestbook", repo, {"kustomize": {"dir": "overlays/prod"}, "defaultNamespace": "gb"}
    )
    assert result.renderer == "kustomize"
    (deployment,) = result.manifests
    assert deployment["metadata"] == {
        "name": "prod-guestbook",
        "namespace": "gb",
        "labels": {"app": "guestbook"},
    }
    assert deployment["spec"]["replicas"] == 3
    assert result.renderer_version.startswith(("kustomize v", "kubectl-kustomize v"))


def test_kustomization_at_the_root_is_detected(repo: Path) -> None:
    base = repo / "guestbook" / "base"
    result = render(base, repo)
    assert result.renderer == "kustomize"
    assert [m["metadata"]["name"] for m in result.manifests] == ["guestbook"]


def test_load_restrictor_keeps_files_inside_the_kustomization_root(repo: Path) -> None:
    write(repo / "secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: stolen}\n")
    write(repo / "guestbook" / "sneaky" / "kustomization.yaml", "resources: [../../secret.yaml]\n")
    with pytest.raises(FleetError) as err:
        render(repo / "guestbook", repo, {"kustomize": {"dir": "sneaky"}})
    (problem,) = err.value.problems
    assert problem.file == "guestbook/sneaky/kustomization.yaml"
    message = problem.message
    assert message.startswith("kustomize build guestbook/sneaky (bundle 'guestbook') failed:")
    assert "\n" not in message
    assert "security" in message or "outside" in message or "not in or below" in message


def test_kustomize_dir_outside_the_repository_is_refused(repo: Path) -> None:
    with pytest.raises(FleetError, match="outside the repository"):
        render(repo / "guestbook", repo / "guestbook", {"kustomize": {"dir": "../.."}})


def test_kustomize_dir_without_kustomization(repo: Path) -> None:
    (repo / "guestbook" / "empty").mkdir()
    with pytest.raises(FleetError, match=r"kustomize\.dir 'empty' has no kustomization\.yaml"):
        render(repo / "guestbook", repo, {"kustomize": {"dir": "empty"}})


def test_kubectl_kustomize_when_that_is_what_is_installed(
    repo: Path, monkeypatch: pytest.MonkeyPatch, binary: Callable[[str], str]
) -> None:
    kubectl = binary("kubectl")  # the real kubectl built by tests/testbin/build.sh kubectl
    monkeypatch.setenv("FLEET_KUSTOMIZE", kubectl)
    result = render(repo / "guestbook", repo, {"kustomize": {"dir": "overlays/prod"}})
    assert result.renderer_version.startswith("kubectl-kustomize v")
    assert result.manifests[0]["metadata"]["name"] == "prod-guestbook"
    renderer = FleetPlugins.load(entry_points=False).renderer("kustomize")
    assert renderer.describe().startswith("kubectl kustomize (")  # type: ignore[attr-defined]


def test_missing_binary_is_one_clear_line(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_KUSTOMIZE", "/nonexistent/kustomize")
    with pytest.raises(
        FleetError, match="kustomize not found: FLEET_KUSTOMIZE=/nonexistent/kustomize"
    ):
        render(repo / "guestbook", repo, {"kustomize": {"dir": "overlays/prod"}})
