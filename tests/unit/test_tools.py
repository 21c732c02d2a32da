"""Where fleet finds helm and kustomize: FLEET_* variable, then PATH, then the interpreter's dir.

Fake executables (never run) in temporary directories, with a PATH and an interpreter
location under the test's control.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fleet.config import Settings
from fleet.errors import FleetError
from fleet.render.tools import (
    FROM_INTERPRETER,
    FROM_PATH,
    Tool,
    ToolNotConfigured,
    find_tool,
)
from plugins.render_helm import helm_tool
from plugins.render_kustomize import kustomize_tool


def fake(directory: Path, name: str, *, executable: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755 if executable else 0o644)
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(a PATH directory, the interpreter's directory, an unrelated directory)."""
    return tmp_path / "path", tmp_path / "venv" / "bin", tmp_path / "elsewhere"


def test_the_variable_wins_over_path_and_interpreter(dirs: tuple[Path, Path, Path]) -> None:
    on_path, beside, elsewhere = dirs
    fake(on_path, "helm"), fake(beside, "helm")
    chosen = fake(elsewhere, "helm")
    env = {"PATH": str(on_path), "FLEET_HELM": str(chosen)}
    found = find_tool(
        "helm",
        variable="FLEET_HELM",
        settings=Settings.from_env(env),
        interpreter=str(beside / "py"),
    )
    assert found == Tool(str(chosen), "from FLEET_HELM")


def test_a_variable_holding_a_name_is_looked_up_on_path(dirs: tuple[Path, Path, Path]) -> None:
    on_path, beside, _ = dirs
    helm3 = fake(on_path, "helm3")
    env = {"PATH": str(on_path), "FLEET_HELM": "helm3"}
    found = find_tool(
        "helm",
        variable="FLEET_HELM",
        settings=Settings.from_env(env),
        interpreter=str(beside / "py"),
    )
    assert found is not None and found.path == str(helm3)


def test_a_wrong_variable_is_an_error_not_a_fallback(dirs: tuple[Path, Path, Path]) -> None:
    on_path, beside, elsewhere = dirs
    fake(on_path, "helm"), fake(beside, "helm")
    env = {"PATH": str(on_path), "FLEET_HELM": str(elsewhere / "helm")}
    with pytest.raises(ToolNotConfigured, match=r"FLEET_HELM=.*/elsewhere/helm is not an exec"):
        find_tool(
            "helm",
            variable="FLEET_HELM",
            settings=Settings.from_env(env),
            interpreter=str(beside / "py"),
        )


def test_path_wins_over_the_interpreter_directory(dirs: tuple[Path, Path, Path]) -> None:
    on_path, beside, _ = dirs
    first = fake(on_path, "helm")
    fake(beside, "helm")
    env = {"PATH": str(on_path)}
    found = find_tool(
        "helm",
        variable="FLEET_HELM",
        settings=Settings.from_env(env),
        interpreter=str(beside / "py"),
    )
    assert found == Tool(str(first), FROM_PATH)


def test_the_interpreter_directory_when_path_has_none(dirs: tuple[Path, Path, Path]) -> None:
    on_path, beside, _ = dirs
    fake(on_path, "helm", executable=False)  # not executable: not a candidate
    linked = fake(beside, "helm")
    env = {"PATH": str(on_path)}
    found = find_tool(
        "helm",
        variable="FLEET_HELM",
        settings=Settings.from_env(env),
        interpreter=str(beside / "py"),
    )
    assert found == Tool(str(linked), FROM_INTERPRETER)
    assert found.name == "helm"


def test_nothing_found_is_none(dirs: tuple[Path, Path, Path]) -> None:
    on_path, beside, _ = dirs
    env = {"PATH": str(on_path)}
    assert (
        find_tool(
            "helm",
            variable="FLEET_HELM",
            settings=Settings.from_env(env),
            interpreter=str(beside / "py"),
        )
        is None
    )


def test_a_preferred_name_anywhere_beats_a_fallback_on_path(
    dirs: tuple[Path, Path, Path],
) -> None:
    on_path, beside, _ = dirs
    fake(on_path, "kubectl")
    kustomize = fake(beside, "kustomize")
    env = {"PATH": str(on_path)}
    names = ("kustomize", "kubectl")
    found = find_tool(
        names,
        variable="FLEET_KUSTOMIZE",
        settings=Settings.from_env(env),
        interpreter=str(beside / "py"),
    )
    assert found == Tool(str(kustomize), FROM_INTERPRETER)
    kustomize.unlink()
    found = find_tool(
        names,
        variable="FLEET_KUSTOMIZE",
        settings=Settings.from_env(env),
        interpreter=str(beside / "py"),
    )
    assert found is not None and found.name == "kubectl" and found.source == FROM_PATH


def test_the_renderers_use_this_order(
    dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path, beside, _ = dirs
    on_path.mkdir(parents=True)
    helm, kustomize = fake(beside, "helm"), fake(beside, "kustomize")
    monkeypatch.delenv("FLEET_HELM", raising=False)
    monkeypatch.delenv("FLEET_KUSTOMIZE", raising=False)
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.setattr(sys, "executable", str(beside / "python"))
    assert helm_tool() == Tool(str(helm), FROM_INTERPRETER)
    assert kustomize_tool() == Tool(str(kustomize), FROM_INTERPRETER)
    helm.unlink()
    with pytest.raises(FleetError, match=r"^helm not found on PATH \(set FLEET_HELM\)$"):
        helm_tool()
    monkeypatch.setenv("FLEET_KUSTOMIZE", str(on_path / "nope"))
    with pytest.raises(FleetError, match=r"kustomize not found: FLEET_KUSTOMIZE=.*/nope"):
        kustomize_tool()
