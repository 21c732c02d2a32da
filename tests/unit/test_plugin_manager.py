"""The plugin manager: built-ins first, replacement by name, failures reported by name."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pluggy
import pytest

from fleet.errors import FleetError
from fleet.events.model import Delivery, Notification, NotifierTarget, Severity
from fleet.plugin import hookspecs
from fleet.plugin.hookspecs import FleetEvent, HealthVerdict, hookimpl
from fleet.plugin.manager import BUILTIN, FleetPlugins
from fleet.render.api import RendererRegistry, RenderRequest
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.definition import RegistrySpec


class StubRenderer:
    def __init__(self, name: str, marker: str = "stub") -> None:
        self.name = name
        self.version = "stub 1"
        self.marker = marker

    def render(self, request: RenderRequest) -> list[dict[str, Any]]:
        return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": self.marker}}]


def test_builtins_are_loaded_with_origin_builtin() -> None:
    plugins = FleetPlugins.load(entry_points=False)
    assert plugins.failed == []
    infos = {info.name: info for info in plugins.plugins()}
    assert {"render_yaml", "render_helm", "render_kustomize"} <= set(infos)
    assert {info.origin for info in infos.values()} == {BUILTIN}
    assert "fleet_register_renderers" in infos["render_yaml"].hooks
    assert plugins.renderers().names() == ["helm", "kustomize", "yaml"]
    assert plugins.renderers().get("helm").plugin == "render_helm"  # type: ignore[union-attr]


def test_a_plugin_registered_later_replaces_a_builtin_renderer() -> None:
    plugins = FleetPlugins.load(entry_points=False)
    builtin = plugins.renderer("yaml")

    class ReplaceYaml:
        @hookimpl
        def fleet_register_renderers(self, registry: RendererRegistry) -> None:
            registry.add(StubRenderer("yaml", "replaced"))

    plugin = ReplaceYaml()
    plugins.register(plugin, name="my-yaml")
    try:
        entry = plugins.renderers().get("yaml")
        assert entry is not None
        assert entry.plugin == "my-yaml" and entry.replaced == "render_yaml"
        assert plugins.renderer("yaml") is entry.renderer
    finally:
        plugins.unregister(plugin)
    assert plugins.renderer("yaml").__class__ is builtin.__class__


def test_duplicate_name_between_plugins_is_an_error_unless_override() -> None:
    plugins = FleetPlugins.load(builtins=(), entry_points=False)

    class First:
        @hookimpl
        def fleet_register_renderers(self, registry: RendererRegistry) -> None:
            registry.add(StubRenderer("thing", "first"))

    class Second:
        @hookimpl
        def fleet_register_renderers(self, registry: RendererRegistry) -> None:
            registry.add(StubRenderer("thing", "second"))

    class SecondOverride:
        @hookimpl
        def fleet_register_renderers(self, registry: RendererRegistry) -> None:
            registry.add(StubRenderer("thing", "override"), override=True)

    plugins.register(First(), name="first")
    second = Second()
    plugins.register(second, name="second")
    with pytest.raises(FleetError, match="registered by both first and second"):
        plugins.renderers()
    plugins.unregister(second)
    plugins.register(SecondOverride(), name="override")
    assert plugins.renderer("thing").marker == "override"  # type: ignore[attr-defined]


def test_detection_third_party_first_then_builtins(tmp_path: Path) -> None:
    plugins = FleetPlugins.load(entry_points=False)
    (tmp_path / "Chart.yaml").write_text("name: x\n")
    assert plugins.detect_renderer(tmp_path, BundleOptions()) == "helm"
    other = tmp_path / "k"
    other.mkdir()
    (other / "kustomization.yml").write_text("resources: []\n")
    assert plugins.detect_renderer(other, BundleOptions()) == "kustomize"
    (other / "kustomization.yml").unlink()
    (other / "Kustomization").write_text("resources: []\n")
    assert plugins.detect_renderer(other, BundleOptions()) == "kustomize"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert plugins.detect_renderer(plain, BundleOptions()) == "yaml"
    options = BundleOptions.model_validate({"helm": {"chart": "./somewhere"}})
    assert plugins.detect_renderer(plain, options) == "helm"
    options = BundleOptions.model_validate({"kustomize": {"dir": "overlays/prod"}})
    assert plugins.detect_renderer(plain, options) == "kustomize"

    class Claims:
        @hookimpl
        def fleet_detect_renderer(self, bundle_dir: Path, options: BundleOptions) -> str | None:
            return "mine" if (bundle_dir / "data.txt").exists() else None

    plugins.register(Claims())
    (plain / "data.txt").write_text("x")
    (plain / "Chart.yaml").write_text("name: x\n")
    assert plugins.detect_renderer(plain, BundleOptions()) == "mine"


def test_unknown_renderer_names_the_installed_ones() -> None:
    plugins = FleetPlugins.load(entry_points=False)
    with pytest.raises(
        FleetError, match=r"unknown renderer 'nope' \(installed: helm, kustomize, yaml\)"
    ):
        plugins.renderer("nope", file="b/fleet.yaml")


def test_builtin_that_fails_to_import_is_reported_by_name() -> None:
    plugins = FleetPlugins.load(
        builtins=("plugins.render_yaml", "plugins.no_such_module"), entry_points=False
    )
    assert [f.name for f in plugins.failed] == ["no_such_module"]
    assert "ModuleNotFoundError" in plugins.failed[0].error
    with pytest.raises(FleetError, match="plugin 'no_such_module' \\(builtin\\) failed to load"):
        plugins.renderer("yaml")


def test_entry_point_plugins_load_after_builtins_and_failures_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real importlib.metadata entry points from a fake distribution on sys.path."""

    class FakeDist:
        metadata = {"Name": "fleet-fake"}
        version = "9.9"

        def __init__(self) -> None:
            self.entry_points = [
                importlib.metadata.EntryPoint(
                    "good", "tests.unit.test_plugin_manager:GoodPlugin", "fleet"
                ),
                importlib.metadata.EntryPoint("broken", "fleet_no_such_plugin_module", "fleet"),
                importlib.metadata.EntryPoint(
                    "typo", "tests.unit.test_plugin_manager:TypoPlugin", "fleet"
                ),
                importlib.metadata.EntryPoint("other", "os", "console_scripts"),
            ]

    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [FakeDist()])
    plugins = FleetPlugins.load()
    origins = {info.name: info.origin for info in plugins.plugins()}
    assert origins["good"] == "fleet-fake 9.9"
    assert origins["render_yaml"] == BUILTIN
    names = [name for name, _ in plugins.pm.list_name_plugin()]
    assert names.index("good") > names.index("render_helm")
    failed = {f.name: f for f in plugins.failed}
    assert set(failed) == {"broken", "typo"}
    assert failed["broken"].origin == "fleet-fake 9.9"
    assert "No module named 'fleet_no_such_plugin_module'" in failed["broken"].error
    assert "fleet_regster_renderers" in failed["typo"].error
    with pytest.raises(FleetError) as err:
        plugins.renderer("yaml")
    assert "plugin 'broken' (fleet-fake 9.9) failed to load" in str(err.value)


class GoodPlugin:
    @staticmethod
    @hookimpl
    def fleet_notify(notifier: NotifierTarget, notification: Notification) -> Delivery | None:
        return None


class TypoPlugin:
    @staticmethod
    @hookimpl
    def fleet_regster_renderers(registry: RendererRegistry) -> None:
        pass


def test_declared_hooks_go_through_the_facade() -> None:
    plugins = FleetPlugins.load(builtins=(), entry_points=False)
    seen: list[Notification] = []

    class Everything:
        @hookimpl
        def fleet_notify(
            self, notifier: NotifierTarget, notification: Notification
        ) -> Delivery | None:
            if notifier.type != "chat":
                return None
            seen.append(notification)
            return Delivery(True, "sent")

        @hookimpl
        def fleet_health_check(self, obj: dict[str, Any]) -> HealthVerdict | None:
            return HealthVerdict(ready=obj.get("kind") == "Widget", message="widget rules")

        @hookimpl
        def fleet_resolve_image(self, image: str, spec: RegistrySpec | None) -> str | None:
            return "sha256:" + "0" * 64 if image.startswith("quay.io/") else None

        @hookimpl
        def fleet_cluster_credentials(self, cluster: str, credential: str) -> dict[str, Any] | None:
            return {"clusters": [{"name": cluster}]} if credential == "env" else None

    plugin = Everything()
    plugins.register(plugin)
    event = FleetEvent("unit.failed", "boom", cluster="c1")  # type: ignore[arg-type]
    note = Notification(event.type, "boom", Severity.ERROR, (event,))
    assert plugins.notify(NotifierTarget("ops", "chat"), note) == Delivery(True, "sent")
    assert plugins.notify(NotifierTarget("ops", "pager"), note) is None
    assert seen[0].clusters == ["c1"]
    assert plugins.health_check({"kind": "Widget"}) == HealthVerdict(True, "widget rules")
    assert plugins.resolve_image("quay.io/org/app:1", None) == "sha256:" + "0" * 64
    assert plugins.resolve_image("docker.io/library/nginx", None) is None
    assert plugins.cluster_credentials("c1", "env") == {"clusters": [{"name": "c1"}]}
    assert plugins.cluster_credentials("c1", "vault") is None
    plugins.unregister(plugin)
    assert plugins.health_check({"kind": "Widget"}) is None


def test_a_runtime_plugin_with_an_unknown_hook_is_refused() -> None:
    plugins = FleetPlugins.load(builtins=(), entry_points=False)

    class Typo:
        @hookimpl
        def fleet_notfy(self, notifier: NotifierTarget, notification: Notification) -> None:
            pass

    with pytest.raises(pluggy.PluginValidationError):
        plugins.register(Typo())


def test_every_hookspec_is_typed_and_documented() -> None:
    specs = [name for name in dir(hookspecs) if name.startswith("fleet_")]
    assert len(specs) >= 7
    for name in specs:
        function = getattr(hookspecs, name)
        assert function.__doc__ and len(function.__doc__.split()) > 20, name
        assert "return" in function.__annotations__, name
