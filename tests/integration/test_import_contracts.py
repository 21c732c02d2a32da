"""The import contracts (.importlinter) hold on this tree, and a violation fails them.

`lint-imports` is the real tool `make lint` runs. The second test copies the packages and
the contract file to a temporary directory, makes `fleet.spec` import `fleet.runtime`
(a stage importing one far above it), and runs `lint-imports` there: it must fail and name
the layers contract. That is the proof that the contract is not vacuous.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("fleet", "plugins", "workers")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first, so the packages of `cwd` are analysed, not the editable install.
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True
    )


def contract_names() -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    return {
        section.split(":")[-1]: config[section]["name"]
        for section in config.sections()
        if section.startswith("importlinter:contract:")
    }


def test_the_tree_keeps_every_contract() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
    assert set(contract_names()) >= {"layers", "no-plugins-or-workers", "plugins-public-api"}


def test_every_top_level_module_has_a_layer() -> None:
    # A module missing from `layers` would be bound by no layer rule at all.
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    listed = set(config["importlinter:contract:layers"]["layers"].replace("|", " ").split())
    listed = {name.strip("()") for name in listed}
    package = ROOT / "fleet"
    present = {f"fleet.{p.stem}" for p in package.glob("*.py")} | {
        f"fleet.{p.parent.name}" for p in package.glob("*/__init__.py")
    }
    assert present - {"fleet.__init__", "fleet.__main__"} <= listed


def test_spec_importing_runtime_breaks_the_layers_contract(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    cluster = tmp_path / "fleet" / "spec" / "cluster.py"
    cluster.write_text(cluster.read_text(encoding="utf-8") + "\nimport fleet.runtime  # noqa\n")
    done = lint_imports(tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert contract_names()["layers"] in " ".join(output.split())
    assert "fleet.spec.cluster -> fleet.runtime" in output


def test_a_plugin_importing_fleet_internals_breaks_the_public_api_contract(
    tmp_path: Path,
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    plugin = tmp_path / "plugins" / "render_yaml.py"
    plugin.write_text(
        plugin.read_text(encoding="utf-8")
        + "\nfrom fleet.render.pipeline import render_bundle  # noqa\n"
    )
    done = lint_imports(tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert contract_names()["plugins-public-api"] in " ".join(output.split())
    assert "plugins.render_yaml -> fleet.render.pipeline" in output


def test_only_the_cli_may_import_the_plan(tmp_path: Path) -> None:
    # fleet.plan sits beside fleet.runtime (`fleet.runtime | fleet.plan`): the CLI uses it,
    # nothing below does, and it does not reach into the runtime either.
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    embedded = tmp_path / "fleet" / "runtime" / "embedded.py"
    embedded.write_text(
        embedded.read_text(encoding="utf-8") + "\nimport fleet.plan.compute  # noqa\n"
    )
    done = lint_imports(tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "fleet.runtime.embedded -> fleet.plan.compute" in output
