"""The built-in `yaml` renderer: which files are manifests, overlays, patches, bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import FleetError
from fleet.plugin.manager import FleetPlugins
from fleet.render.api import RenderRequest
from fleet.render.pipeline import render_bundle
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.cluster import ClusterContext


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def render(
    bundle: Path, options: dict[str, Any] | None = None, root: Path | None = None
) -> list[dict[str, Any]]:
    request = RenderRequest(
        bundle_dir=bundle,
        repo_root=root or bundle,
        options=BundleOptions.model_validate(options or {}),
        cluster=ClusterContext("c1"),
        options_file=bundle / "fleet.yaml",
    )
    return render_bundle(request, FleetPlugins.load(entry_points=False)).manifests


def names(manifests: list[dict[str, Any]]) -> list[str]:
    return [f"{m['kind']}/{m['metadata']['name']}" for m in manifests]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    write(
        root / "deployment.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 1
          template:
            spec:
              containers:
              - {name: web, image: "web:1", env: [{name: A, value: "1"}]}
        """,
    )
    write(
        root / "svc.yml",
        """
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec: {ports: [{port: 80}]}
        ---
        # an empty document and a values-like document are not manifests
        ---
        replicas: 3
        """,
    )
    write(
        root / "sub" / "cm.json",
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "json"}}',
    )
    write(root / "fleet.yaml", "defaultNamespace: app\n")
    write(
        root / ".github" / "workflow.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ci}\n",
    )
    write(root / "nested" / "fleet.yaml", "{}\n")
    write(
        root / "nested" / "other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nested}\n",
    )
    write(root / "chart" / "Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")
    write(
        root / "chart" / "values.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: chart}\n"
    )
    write(root / "README.md", "not yaml")
    write(
        root / "overlays" / "prod" / "deployment_patch.yaml",
        """
        spec:
          replicas: 5
          template:
            spec:
              containers:
              - {name: web, env: [{name: B, value: "2"}]}
        """,
    )
    write(
        root / "overlays" / "prod" / "svc.yml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web-prod}\nspec: {ports: [{port: 443}]}\n",
    )
    write(
        root / "overlays" / "prod" / "extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
    )
    write(
        root / "overlays" / "json" / "deployment_patch.json",
        '[{"op": "replace", "path": "/spec/replicas", "value": 9}]',
    )
    return root


def test_manifest_files_and_skips(bundle: Path) -> None:
    manifests = render(bundle)
    assert names(manifests) == ["ConfigMap/json", "Deployment/web", "Service/web"]


def test_overlays_replace_add_and_patch(bundle: Path) -> None:
    manifests = render(bundle, {"yaml": {"overlays": ["prod"]}})
    assert names(manifests) == [
        "ConfigMap/extra",
        "ConfigMap/json",
        "Deployment/web",
        "Service/web-prod",
    ]
    deployment = manifests[2]
    assert deployment["spec"]["replicas"] == 5
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]  # strategic merge


def test_overlays_apply_in_order(bundle: Path) -> None:
    deployment = render(bundle, {"yaml": {"overlays": ["prod", "json"]}})[2]
    assert deployment["spec"]["replicas"] == 9
    deployment = render(bundle, {"yaml": {"overlays": ["json", "prod"]}})[2]
    assert deployment["spec"]["replicas"] == 5


def test_unknown_overlay_is_an_error(bundle: Path) -> None:
    with pytest.raises(FleetError, match="overlay 'prdo' has no directory overlays/prdo/"):
        render(bundle, {"yaml": {"overlays": ["prdo"]}})


def test_patch_without_base_file(bundle: Path) -> None:
    write(bundle / "overlays" / "bad" / "missing_patch.yaml", "spec: {}\n")
    with pytest.raises(FleetError) as err:
        render(bundle, {"yaml": {"overlays": ["bad"]}})
    assert (
        str(err.value)
        == "overlays/bad/missing_patch.yaml: no file missing.yaml in the bundle to patch"
    )


def test_patch_of_a_multi_document_file_by_kind_and_name(tmp_path: Path) -> None:
    write(
        tmp_path / "all.yaml",
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: a}
        data: {k: a}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: b}
        data: {k: b}
        """,
    )
    write(
        tmp_path / "overlays" / "o" / "all_patch.yaml",
        "kind: ConfigMap\nmetadata: {name: b}\ndata: {k: B}\n",
    )
    manifests = render(tmp_path, {"yaml": {"overlays": ["o"]}})
    assert [m["data"]["k"] for m in manifests] == ["a", "B"]
    write(tmp_path / "overlays" / "p" / "all_patch.yaml", "data: {k: B}\n")
    with pytest.raises(FleetError, match="several documents"):
        render(tmp_path, {"yaml": {"overlays": ["p"]}})


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "ok.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n")
    write(tmp_path / "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n")
    with pytest.raises(FleetError) as err:
        render(tmp_path)
    assert str(err.value).startswith("bad.yaml:")
    assert err.value.problems[0].line is not None


def test_manifest_missing_api_version_names_its_line(tmp_path: Path) -> None:
    write(
        tmp_path / "x.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: Secret\n",
    )
    with pytest.raises(FleetError) as err:
        render(tmp_path)
    assert str(err.value) == "x.yaml:5: manifest has no apiVersion"


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    write(
        tmp_path / "x.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: !!python/object/apply:os.system ['true']\n",
    )
    with pytest.raises(FleetError, match=r"x\.yaml:3"):
        render(tmp_path)


def test_dates_stay_strings_and_lists_are_flattened(tmp_path: Path) -> None:
    write(
        tmp_path / "list.yaml",
        """
        apiVersion: v1
        kind: List
        items:
        - {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {day: 2024-01-31}}
        - {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
        """,
    )
    manifests = render(tmp_path)
    assert names(manifests) == ["ConfigMap/a", "ConfigMap/b"]
    assert manifests[0]["data"]["day"] == "2024-01-31"


def test_symlink_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.yaml"
    outside.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: stolen}\n")
    bundle = tmp_path / "repo" / "bundle"
    bundle.mkdir(parents=True)
    (bundle / "link.yaml").symlink_to(outside)
    with pytest.raises(FleetError, match="outside the repository"):
        render(bundle, root=tmp_path / "repo")
