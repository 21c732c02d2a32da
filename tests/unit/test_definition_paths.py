"""Path safety: nothing outside the repository is read, whatever a bundle says."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.spec.loader import load_repository, resolve_inside

HEADER = "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: test\n"

_OPENED: list[str] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _OPENED is not None and event in ("open", "os.scandir", "os.listdir") and args:
        _OPENED.append(os.fsdecode(args[0]) if isinstance(args[0], str | bytes) else "")


sys.addaudithook(_audit)


@pytest.fixture()
def opened() -> Iterator[list[str]]:
    """Every path opened or listed while the test runs (through a Python audit hook)."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture()
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(repo, outside): a repository and a secret file next to it."""
    repo = tmp_path / "repo"
    outside = tmp_path / "outside"
    write(outside / "secret.yaml", "token: hunter2\n")
    write(outside / "chart/Chart.yaml", "name: evil\nversion: 1.0.0\n")
    repo.mkdir()
    return repo, outside


def load_problems(repo: Path) -> list[str]:
    with pytest.raises(FleetError) as info:
        load_repository(repo)
    return [str(p) for p in info.value.problems]


def assert_not_read(opened: list[str], outside: Path) -> None:
    leaked = [p for p in opened if p and Path(p).resolve().is_relative_to(outside.resolve())]
    assert leaked == []


def test_inline_bundle_path_outside(layout: tuple[Path, Path], opened: list[str]) -> None:
    repo, outside = layout
    write(
        repo / "fleet.yaml", HEADER + "bundles:\n  inline:\n    - name: x\n      path: ../outside\n"
    )
    (message,) = load_problems(repo)
    assert message == f"{repo / 'fleet.yaml'}:7: bundle path '../outside' is outside the repository"
    assert_not_read(opened, outside)


def test_glob_with_dotdot_rejected(layout: tuple[Path, Path], opened: list[str]) -> None:
    repo, outside = layout
    write(repo / "fleet.yaml", HEADER + "bundles:\n  paths: ['../*']\n")
    (message,) = load_problems(repo)
    assert ":5: bundle path '../*' must be relative, inside the repository" in message
    assert_not_read(opened, outside)


def test_bundle_dir_symlinked_outside(layout: tuple[Path, Path], opened: list[str]) -> None:
    repo, outside = layout
    write(repo / "fleet.yaml", HEADER + "bundles:\n  paths: ['apps/*']\n")
    (repo / "apps").mkdir()
    (repo / "apps/evil").symlink_to(outside)
    (message,) = load_problems(repo)
    assert message == f"{repo / 'fleet.yaml'}:5: bundle path 'apps/evil' is outside the repository"
    assert_not_read(opened, outside)


def test_values_file_outside(layout: tuple[Path, Path], opened: list[str]) -> None:
    repo, outside = layout
    write(repo / "fleet.yaml", HEADER + "bundles:\n  paths: ['apps/*']\n")
    write(
        repo / "apps/web/fleet.yaml",
        """\
        helm:
          chart: ./chart
          valuesFiles:
            - ../../../outside/secret.yaml
        """,
    )
    write(repo / "apps/web/chart/Chart.yaml", "name: web\nversion: 0.1.0\n")
    (message,) = load_problems(repo)
    assert message == (
        f"{repo / 'apps/web/fleet.yaml'}:4: values file '../../../outside/secret.yaml' "
        "is outside the repository"
    )
    assert_not_read(opened, outside)


def test_symlinked_values_file_outside(layout: tuple[Path, Path], opened: list[str]) -> None:
    repo, outside = layout
    write(repo / "fleet.yaml", HEADER + "bundles:\n  paths: ['apps/*']\n")
    write(repo / "apps/web/fleet.yaml", "helm:\n  valuesFiles: [values.yaml]\n")
    (repo / "apps/web/values.yaml").symlink_to(outside / "secret.yaml")
    found = load_problems(repo)
    assert (
        f"{repo / 'apps/web/fleet.yaml'}:2: values file 'values.yaml' is outside the repository"
        in found
    )
    assert_not_read(opened, outside)


def test_symlink_inside_bundle_pointing_outside(
    layout: tuple[Path, Path], opened: list[str]
) -> None:
    repo, outside = layout
    write(repo / "fleet.yaml", HEADER + "bundles:\n  paths: ['apps/*']\n")
    write(repo / "apps/web/cm.yaml", "kind: ConfigMap\n")
    (repo / "apps/web/link.yaml").symlink_to(outside / "secret.yaml")
    (repo / "apps/web/linkdir").symlink_to(outside)
    found = load_problems(repo)
    assert f"{repo / 'apps/web/link.yaml'}: symlink points outside the repository" in found
    assert f"{repo / 'apps/web/linkdir'}: symlink points outside the repository" in found
    assert_not_read(opened, outside)


def test_chart_and_kustomize_dir_outside(layout: tuple[Path, Path], opened: list[str]) -> None:
    repo, outside = layout
    write(repo / "fleet.yaml", HEADER + "bundles:\n  paths: ['apps/*']\n")
    write(
        repo / "apps/web/fleet.yaml",
        """\
        helm:
          chart: ../../../outside/chart
        kustomize:
          dir: /etc
        targetCustomizations:
          - clusterName: a
            yaml:
              overlays: [../../../../outside]
        """,
    )
    found = load_problems(repo)
    file = repo / "apps/web/fleet.yaml"
    assert f"{file}:2: chart '../../../outside/chart' is outside the repository" in found
    assert f"{file}:4: kustomize dir '/etc' must be a path relative to its bundle" in found
    assert any(p.startswith(f"{file}:8: overlay") and "outside the repository" in p for p in found)
    assert_not_read(opened, outside)


def test_values_file_not_a_mapping(tmp_path: Path) -> None:
    write(tmp_path / "fleet.yaml", HEADER + "bundles:\n  paths: ['apps/*']\n")
    write(tmp_path / "apps/web/fleet.yaml", "helm:\n  valuesFiles: [values.yaml]\n")
    write(tmp_path / "apps/web/values.yaml", "# comment\n- a\n- b\n")
    (message,) = load_problems(tmp_path)
    assert message == f"{tmp_path / 'apps/web/values.yaml'}:2: a values file must be a mapping"


def test_missing_values_file_and_kustomize_dir(tmp_path: Path) -> None:
    write(tmp_path / "fleet.yaml", HEADER + "bundles:\n  paths: ['apps/*']\n")
    write(
        tmp_path / "apps/web/fleet.yaml",
        "helm:\n  valuesFiles: [nope.yaml]\nkustomize:\n  dir: overlays/x\n",
    )
    found = load_problems(tmp_path)
    file = tmp_path / "apps/web/fleet.yaml"
    assert found == [
        f"{file}:2: values file 'nope.yaml' not found",
        f"{file}:4: kustomize dir 'overlays/x' not found",
    ]


def test_resolve_inside_contract(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    assert resolve_inside(tmp_path, tmp_path / "b", "x/y.yaml", what="f") == tmp_path / "b/x/y.yaml"
    with pytest.raises(FleetError) as info:
        resolve_inside(tmp_path, tmp_path / "b", "../../z", what="chart", file="f.yaml", line=3)
    assert str(info.value) == "f.yaml:3: chart '../../z' is outside the repository"


def test_a_bundle_fleet_yaml_linking_outside_is_refused_unread(
    tmp_path: Path, opened: list[str]
) -> None:
    secret = write(tmp_path / "outside" / "secret.yaml", "helm: {values: {token: hunter2}}\n")
    repo = tmp_path / "repo"
    write(repo / "fleet.yaml", HEADER + "bundles: {paths: [app]}\n")
    (repo / "app").mkdir()
    (repo / "app" / "fleet.yaml").symlink_to(secret)
    opened.clear()  # the set-up wrote the secret
    with pytest.raises(FleetError) as err:
        load_repository(repo)
    assert str(err.value) == (
        f"{repo}/app/fleet.yaml: bundle file 'fleet.yaml' is outside the repository"
    )
    assert not [p for p in opened if p and Path(p).resolve() == secret.resolve()]


def test_a_root_definition_linking_outside_is_refused_unread(
    tmp_path: Path, opened: list[str]
) -> None:
    secret = write(tmp_path / "outside" / "fleet.yaml", HEADER)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "fleet.yaml").symlink_to(secret)
    opened.clear()  # the set-up wrote the secret
    with pytest.raises(FleetError, match=r"fleet definition 'fleet\.yaml' is outside the repo"):
        load_repository(repo)
    assert not [p for p in opened if p and Path(p).resolve() == secret.resolve()]
