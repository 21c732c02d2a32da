"""A tiny third-party renderer: every `*.txt` file of a bundle becomes a ConfigMap key.

Installed as a separate distribution with the entry point `example` in group `fleet`, the
way any third-party fleet plugin is shipped. A bundle is rendered by it when its fleet.yaml
says `renderer: example`, or when it holds a `data.txt` (detection hook).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet.plugin import BundleOptions, RendererRegistry, RenderRequest, hookimpl


class ExampleRenderer:
    name = "example"
    version = "example 0.1.0"

    def describe(self) -> str:
        return "*.txt files as one ConfigMap"

    def render(self, request: RenderRequest) -> list[dict[str, Any]]:
        data = {
            path.name: request.read_text(path.name, what="text file")
            for path in sorted(request.bundle_dir.glob("*.txt"))
        }
        return [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": request.name},
                "data": data,
            }
        ]


@hookimpl
def fleet_register_renderers(registry: RendererRegistry) -> None:
    registry.add(ExampleRenderer())


@hookimpl
def fleet_detect_renderer(bundle_dir: Path, options: BundleOptions) -> str | None:
    return "example" if (bundle_dir / "data.txt").is_file() else None
