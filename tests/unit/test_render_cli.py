"""`fleet render` (bundle and repository modes) and `fleet plugins`, through fleet.cli.main."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from fleet.cli import main


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write(
        tmp_path / "bundles" / "config" / "fleet.yaml",
        """
        defaultNamespace: config
        targetCustomizations:
        - name: prod
          clusterSelector: {matchLabels: {env: prod}}
          yaml: {overlays: [prod]}
        """,
    )
    write(
        tmp_path / "bundles" / "config" / "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {level: debug}\n",
    )
    write(
        tmp_path / "bundles" / "config" / "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: config}\n",
    )
    write(
        tmp_path / "bundles" / "config" / "overlays" / "prod" / "cm_patch.yaml",
        "data: {level: warn}\n",
    )
    write(
        tmp_path / "fleet.yaml",
        """
        apiVersion: fleet-gitops.io/v1alpha1
        kind: Fleet
        name: test
        clusters:
          - {name: dev-1, labels: {env: dev}}
          - {name: prod-1, labels: {env: prod}}
        bundles:
          paths:
            - glob: bundles/*
        """,
    )
    return tmp_path


def test_render_bundle_dir_for_labels(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = repo / "bundles" / "config"
    assert main(["render", str(bundle), "--cluster-name", "p", "--label", "env=prod"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in docs] == ["Namespace", "ConfigMap"]  # apply order
    assert docs[1]["data"] == {"level": "warn"}
    assert docs[1]["metadata"]["namespace"] == "config"
    assert main(["render", str(bundle), "-l", "env=dev"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert docs[1]["data"] == {"level": "debug"}


def test_render_repository_for_a_cluster(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(repo), "--cluster", "prod-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# bundle: ")
    docs = list(yaml.safe_load_all(out))
    assert docs[1]["data"] == {"level": "warn"}
    assert main(["render", str(repo), "--cluster", "nope"]) == 1
    assert (
        "no cluster 'nope' in the definition (clusters: dev-1, prod-1)" in capsys.readouterr().err
    )


def test_render_errors_are_one_line(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = repo / "bundles" / "config"
    assert main(["render", str(bundle), "-l", "novalue"]) == 1
    assert capsys.readouterr().err == "error: --label 'novalue': expected KEY=VALUE\n"
    write(bundle / "broken.yaml", "apiVersion: v1\nkind: [\n")
    assert main(["render", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "broken.yaml:" in err


def test_plugins_lists_builtins_and_renderers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"render_yaml", "render_helm", "render_kustomize"} <= {
        p["name"] for p in data["plugins"]
    }
    assert {r["name"] for r in data["renderers"]} >= {"yaml", "helm", "kustomize"}
    kustomize = next(r for r in data["renderers"] if r["name"] == "kustomize")
    assert kustomize["details"].startswith(
        ("kustomize build (", "kubectl kustomize (", "unavailable")
    )
    assert main(["plugins"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["PLUGIN", "ORIGIN", "HOOKS"]
    assert "RENDERER" in table


def test_render_refuses_a_symlink_leaving_the_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Even the render cache's content hash must not read through a link to outside."""
    outside = tmp_path / "outside.txt"
    outside.write_text("token: do-not-read\n")
    repo = tmp_path / "repo"
    bundle = repo / "bundle"
    bundle.mkdir(parents=True)
    (bundle / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (bundle / "notes.txt").symlink_to(outside)
    code = main(["render", str(bundle), "--repo-root", str(repo)])
    err = capsys.readouterr().err
    assert code == 1
    assert "outside the repository" in err
    assert "do-not-read" not in err
