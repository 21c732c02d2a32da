"""`fleet validate`, `fleet targets`, `fleet schema` from the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fleet.cli import main

ROOT = Path(__file__).resolve().parents[2]
HEADER = "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: test\n"


def example_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "fleet.example.yaml", repo / "fleet.yaml")
    shutil.copytree(ROOT / "examples", repo / "examples")
    return repo


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_validate_example_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(example_repo(tmp_path))]) == 0
    assert capsys.readouterr().out == "ok: 3 clusters, 3 bundles, 9 deployment units\n"


def progressive_block(text: str) -> str:
    """The commented progressive-delivery example of fleet.example.yaml, uncommented."""
    begin = text.index("# --- progressive delivery: begin\n")
    end = text.index("# --- progressive delivery: end\n")
    lines = text[begin:end].splitlines()[1:]
    assert lines and all(line.startswith("#") for line in lines), lines
    return "\n".join(line[2:] for line in lines) + "\n"


def test_validate_example_with_its_progressive_delivery_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commented example is what `fleet validate` accepts once uncommented: its
    `rollout` replaces the plain one, its gates are built by their plugins."""
    import yaml

    repo = example_repo(tmp_path)
    text = (repo / "fleet.yaml").read_text()
    definition = yaml.safe_load(text)
    block = yaml.safe_load(progressive_block(text))
    assert set(block) == {"metricProviders", "rollout"}
    assert [g["type"] for w in block["rollout"]["waves"] for g in w.get("gates", [])] == [
        "prometheus",
        "http",
        "approval",
    ]
    (repo / "fleet.yaml").write_text(yaml.safe_dump({**definition, **block}, sort_keys=False))
    assert main(["validate", "--no-render", str(repo)]) == 0
    assert capsys.readouterr().out == "ok: 3 clusters, 3 bundles, 9 deployment units\n"
    # and a typo in it is caught, so the test can fail
    block["rollout"]["waves"][0]["gates"][0]["cont"] = 5
    (repo / "fleet.yaml").write_text(yaml.safe_dump({**definition, **block}, sort_keys=False))
    assert main(["validate", "--no-render", str(repo)]) == 1
    assert "unknown parameter 'cont'" in capsys.readouterr().err


# Each bad input: (files to write, expected stderr line with a {repo} placeholder)
BAD_INPUTS = {
    "malformed-yaml": (
        {"fleet.yaml": HEADER + "clusters: [\n"},
        "fleet.yaml:5: invalid YAML:",
    ),
    "unknown-key": (
        {"fleet.yaml": HEADER + "clusters:\n  - name: a\n    lables: {}\n"},
        "fleet.yaml:6: unknown key 'lables' in clusters[0]; did you mean 'labels'?",
    ),
    "path-outside": (
        {"fleet.yaml": HEADER + "bundles:\n  inline:\n    - {name: x, path: ../..}\n"},
        "fleet.yaml:6: bundle path '../..' is outside the repository",
    ),
    "missing-dir": (
        {"fleet.yaml": HEADER + "bundles:\n  paths: [apps/web]\n"},
        "fleet.yaml:5: bundle path 'apps/web' matches no directory",
    ),
    "values-not-mapping": (
        {
            "fleet.yaml": HEADER + "bundles:\n  paths: [web]\n",
            "web/fleet.yaml": "helm:\n  valuesFiles: [v.yaml]\n",
            "web/v.yaml": "just a string\n",
        },
        "web/v.yaml:1: a values file must be a mapping",
    ),
    "duplicate-cluster": (
        {"fleet.yaml": HEADER + "clusters:\n  - name: a\n  - name: a\n"},
        "fleet.yaml:6: duplicate cluster name 'a'",
    ),
    "bad-operator": (
        {
            "fleet.yaml": HEADER
            + "groups:\n  - name: g\n    selector:\n      matchExpressions:\n"
            + "        - {key: a, operator: Equals, values: [b]}\n"
        },
        "fleet.yaml:8: groups[0].selector.matchExpressions[0].operator: Input should be",
    ),
    "undefined-group": (
        {
            "fleet.yaml": HEADER
            + "bundles:\n  inline:\n    - name: x\n      path: x\n      targets:\n"
            + "        - clusterGroup: prod\n",
            "x/cm.yaml": "kind: ConfigMap\n",
        },
        "fleet.yaml:9: undefined group 'prod'",
    ),
    "template-missing-label": (
        {
            "fleet.yaml": HEADER + "clusters: [{name: a}]\nbundles:\n  paths: [web]\n",
            "web/fleet.yaml": "helm:\n  chart: c\n  values:\n    r: ${ .ClusterLabels.region }\n",
            "web/c/Chart.yaml": "name: c\n",
        },
        "web/fleet.yaml:4: bundle 'web': helm values template: map has no entry for key 'region'",
    ),
    "helm-release-mode": (
        {
            "fleet.yaml": HEADER + "clusters: [{name: a}]\nbundles:\n  paths: [web]\n",
            "web/fleet.yaml": "helm:\n  chart: c\n  mode: release\n",
            "web/c/Chart.yaml": "name: c\n",
        },
        "web/fleet.yaml:3: helm.mode: 'release' is not supported",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_validate_bad_input(
    case: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files, expected = BAD_INPUTS[case]
    repo = tmp_path / "repo"
    for name, text in files.items():
        write(repo / name, text)
    (repo / "repo-marker").touch()
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "repo"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert any(line.startswith(f"repo/{expected}") for line in lines), lines


def test_validate_prints_absolute_paths_outside_cwd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "repo/fleet.yaml", HEADER + "clusterz: []\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["validate", str(tmp_path / "repo")]) == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'repo/fleet.yaml'}:4: unknown key")


def test_targets_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = example_repo(tmp_path)
    assert main(["targets", str(repo)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["BUNDLE", "CLUSTER", "CUSTOMIZATION", "DEPLOYMENT", "ID"]
    assert len(lines) == 10
    assert lines[1].split()[:3] == ["platform-config", "dev-eu", "-"]
    assert main(["targets", str(repo), "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["bundle"], r["cluster"]) for r in rows} >= {("web", "prod-us")}
    assert all(len(r["deploymentId"]) == 64 for r in rows)
    assert main(["targets", str(repo), "-o", "yaml"]) == 1


def test_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert set(schema["properties"]) >= {"apiVersion", "kind", "clusters", "groups", "bundles"}
    assert schema["additionalProperties"] is False
    assert main(["schema", "--bundle"]) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert {"helm", "kustomize", "targetCustomizations"} <= set(bundle["properties"])


def test_validate_subprocess_no_traceback(tmp_path: Path) -> None:
    write(tmp_path / "fleet.yaml", HEADER + "clusters:\n  - name: a\n    lables: {}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "fleet", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "fleet.yaml:6: unknown key 'lables' in clusters[0]; did you mean 'labels'?\n"
    )
    assert "Traceback" not in result.stderr
