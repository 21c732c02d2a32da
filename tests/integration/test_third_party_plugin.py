"""A third-party renderer installed as a real distribution, found through its entry point.

The package in tests/plugins/fleet-render-example is built and installed with pip into a
temporary `--target` directory; the CLI runs in a subprocess with that directory on
PYTHONPATH, so `importlib.metadata` finds its `.dist-info` and entry point exactly as it
would in a virtualenv. A second, hand-written distribution whose entry point raises
ImportError checks that a broken plugin is reported by its entry-point name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tests" / "plugins" / "fleet-render-example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    build_dir = tmp_path_factory.mktemp("build")
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    if importlib.util.find_spec("wheel") is not None:
        args.append("--no-build-isolation")  # offline: use this venv's setuptools + wheel
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "TMPDIR": str(build_dir)}
    source = build_dir / "fleet-render-example"  # setuptools builds in-tree: keep the repo clean
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    done = subprocess.run([*args, str(source)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert list(target.glob("fleet_render_example-0.1.0.dist-info"))
    return target


def fleet(
    site: Path, *args: str, extra_path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    paths = [
        str(site),
        *([str(extra_path)] if extra_path else []),
        os.environ.get("PYTHONPATH", ""),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    return subprocess.run(
        [sys.executable, "-m", "fleet", *args], capture_output=True, text=True, env=env, cwd=ROOT
    )


def test_installed_plugin_is_listed_with_its_distribution(site: Path) -> None:
    done = fleet(site, "plugins", "-o", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    origins = {p["name"]: p["origin"] for p in data["plugins"]}
    assert origins["example"] == "fleet-render-example 0.1.0"
    assert origins["render_yaml"] == "builtin"
    names = [p["name"] for p in data["plugins"]]
    assert names.index("example") > names.index("render_helm")  # built-ins first
    renderers = {r["name"]: r for r in data["renderers"]}
    assert renderers["example"]["plugin"] == "example"
    assert renderers["example"]["details"] == "*.txt files as one ConfigMap"
    table = fleet(site, "plugins")
    assert "fleet-render-example 0.1.0" in table.stdout


def test_bundle_is_rendered_by_the_installed_plugin(site: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "greeting"
    bundle.mkdir()
    (bundle / "data.txt").write_text("hello\n")
    (bundle / "more.txt").write_text("world\n")
    (bundle / "fleet.yaml").write_text("defaultNamespace: demo\n")
    done = fleet(site, "render", str(bundle), "--cluster-name", "c1", "-l", "env=dev")
    assert done.returncode == 0, done.stderr
    (configmap,) = list(yaml.safe_load_all(done.stdout))
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"] == {"name": "greeting", "namespace": "demo"}
    assert configmap["data"] == {"data.txt": "hello\n", "more.txt": "world\n"}
    (bundle / "fleet.yaml").write_text("renderer: example\n")
    (bundle / "data.txt").unlink()
    done = fleet(site, "render", str(bundle))
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["data"] == {"more.txt": "world\n"}


def test_broken_plugin_is_reported_by_its_entry_point_name(site: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-site"
    dist_info = broken / "fleet_broken_plugin-1.2.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fleet-broken-plugin\nVersion: 1.2\n"
    )
    (dist_info / "entry_points.txt").write_text("[fleet]\nbroken-thing = fleet_broken_plugin\n")
    (broken / "fleet_broken_plugin.py").write_text("import no_such_dependency_xyz\n")
    done = fleet(site, "plugins", extra_path=broken)
    assert done.returncode == 1
    assert "example" in done.stdout  # the good plugins are still listed
    assert (
        "error: plugin 'broken-thing' (fleet-broken-plugin 1.2) failed to load: "
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
    ) in done.stderr
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    done = fleet(site, "render", str(bundle), extra_path=broken)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: plugin 'broken-thing' (fleet-broken-plugin 1.2) failed to load: "
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
    ]
