"""The plugin author's guide documents every hook, and its worked example really works."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest

from fleet.plugin import (
    BundleOptions,
    ClusterContext,
    FleetError,
    FleetPlugins,
    RenderCache,
    RenderRequest,
    hookspecs,
    render_bundle,
)

GUIDE = Path(__file__).resolve().parents[2] / "README.md"


def guide_text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def example_module() -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", guide_text(), re.DOTALL)
    example = next(block for block in blocks if "fleet_register_renderers" in block)
    module = types.ModuleType("fleet_configmap_from_guide")
    exec(compile(example, str(GUIDE), "exec"), module.__dict__)
    return module


def test_every_hook_is_documented() -> None:
    text = guide_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("fleet_")]
    assert hooks
    for hook in hooks:
        assert f"`{hook}(" in text, f"{hook} is missing from the plugin guide in README.md"


def test_worked_example_renders_detects_and_transforms(tmp_path: Path) -> None:
    plugin = example_module()
    bundle = tmp_path / "settings"
    bundle.mkdir()
    (bundle / "app.properties").write_text("# comment\nlevel = debug\ncolor=blue\n")
    (bundle / "fleet.yaml").write_text("defaultNamespace: apps\n")
    plugins = FleetPlugins.load(entry_points=False)
    plugins.register(plugin)
    try:
        request = RenderRequest(
            bundle_dir=bundle,
            repo_root=tmp_path,
            options=BundleOptions(default_namespace="apps"),
            cluster=ClusterContext("c1"),
        )
        result = render_bundle(request, plugins, RenderCache())
        names = [r.renderer.name for r in plugins.renderers()]
    finally:
        plugins.unregister(plugin)
    assert "configmap" in names
    assert result.renderer == "configmap"
    (configmap,) = result.manifests
    expected: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "settings",
            "namespace": "apps",
            "labels": {"example.com/bundle": "settings"},
        },
        "data": {"level": "debug", "color": "blue"},
    }
    assert configmap == expected


def test_worked_example_reports_bad_input_with_file_and_line(tmp_path: Path) -> None:
    plugin = example_module()
    (tmp_path / "bad.properties").write_text("ok=1\nnot a pair\n")
    plugins = FleetPlugins.load(entry_points=False)
    plugins.register(plugin)
    try:
        request = RenderRequest(tmp_path, tmp_path, BundleOptions(), ClusterContext("c1"))
        with pytest.raises(FleetError) as err:
            render_bundle(request, plugins)
    finally:
        plugins.unregister(plugin)
    assert str(err.value) == f"{tmp_path / 'bad.properties'}:2: expected KEY=VALUE"
