"""`fleet.plugin`, the public plugin API: complete, cheap to import, and the post-render hook."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import fleet.plugin
from fleet.plugin import (
    BundleOptions,
    ClusterContext,
    FleetPlugins,
    RendererRegistry,
    RenderRequest,
    hookimpl,
    render_bundle,
)
from fleet.render.pipeline import renderer_identity

ROOT = Path(__file__).resolve().parents[2]


def fleet_imports(source: str) -> set[str]:
    """Every `fleet...` module a piece of Python source imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {name for name in found if name == "fleet" or name.startswith("fleet.")}


def test_every_public_name_exists() -> None:
    missing = [name for name in fleet.plugin.__all__ if not hasattr(fleet.plugin, name)]
    assert missing == []
    assert len(fleet.plugin.__all__) == len(set(fleet.plugin.__all__))


def test_importing_the_plugin_api_loads_no_cluster_or_git_client() -> None:
    code = (
        "import json, sys, fleet.plugin; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert loaded.isdisjoint({"kubernetes", "git", "celery", "redis", "kombu", "pyhelm3"})


def test_third_party_examples_import_only_the_public_api() -> None:
    # plugins/ is held to this by the import-linter contract; these two live outside it.
    example = ROOT / "tests" / "plugins" / "fleet-render-example" / "fleet_render_example.py"
    assert fleet_imports(example.read_text(encoding="utf-8")) == {"fleet.plugin"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    guide = [
        block for block in blocks if "fleet_register_renderers" in block or "FleetPlugins" in block
    ]
    assert len(guide) >= 2
    for block in guide:
        assert fleet_imports(block) == {"fleet.plugin"}, block


class Upper:
    name = "upper"
    version = "upper 1"

    def render(self, request: RenderRequest) -> list[dict[str, Any]]:
        out = []
        for manifest in request.input_manifests or ():
            copy = json.loads(json.dumps(manifest))
            copy["metadata"]["name"] = copy["metadata"]["name"].upper()
            out.append(copy)
        return out


class UpperPlugin:
    """Post-renders every `yaml` bundle with `upper`: the core names neither renderer."""

    @hookimpl
    def fleet_register_renderers(self, registry: RendererRegistry) -> None:
        registry.add(Upper())

    @hookimpl
    def fleet_post_renderer(
        self, renderer: str, bundle_dir: Path, options: BundleOptions
    ) -> str | None:
        return "upper" if renderer == "yaml" else None


def test_a_plugin_decides_the_post_renderer_for_render_and_identity(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    plugins = FleetPlugins.load(entry_points=False)
    plugin = UpperPlugin()
    plugins.register(plugin)
    try:
        request = RenderRequest(tmp_path, tmp_path, BundleOptions(), ClusterContext("c"))
        result = render_bundle(request, plugins)
        identity = renderer_identity(plugins, tmp_path, BundleOptions())
    finally:
        plugins.unregister(plugin)
    assert result.renderer == "yaml" and result.post_renderer == "upper"
    assert [m["metadata"]["name"] for m in result.manifests] == ["A"]
    assert identity.endswith(" + upper upper 1")
    assert renderer_identity(plugins, tmp_path, BundleOptions()).startswith("yaml fleet-yaml")
    assert " + " not in renderer_identity(plugins, tmp_path, BundleOptions())


def test_builtin_post_render_rule_is_the_kustomize_plugins(tmp_path: Path) -> None:
    plugins = FleetPlugins.load(entry_points=False)
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    kdir = BundleOptions.model_validate({"kustomize": {"dir": "k"}})
    assert plugins.post_renderer("helm", tmp_path, BundleOptions()) == "kustomize"
    assert plugins.post_renderer("yaml", tmp_path, BundleOptions()) is None
    assert plugins.post_renderer("yaml", tmp_path, kdir) == "kustomize"
    assert plugins.post_renderer("kustomize", tmp_path, kdir) is None
    (tmp_path / "kustomization.yaml").unlink()
    assert plugins.post_renderer("helm", tmp_path, BundleOptions()) is None
