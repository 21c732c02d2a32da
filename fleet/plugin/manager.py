"""The pluggy plugin manager and `FleetPlugins`, the typed facade the core calls.

Loading order is the contract: the built-in plugins (`plugins/`, imported by module name so
`fleet` never imports `plugins` statically) are registered first, then every entry point of
group `fleet` in a stable order (distribution name, entry-point name). pluggy calls the
last-registered implementation first, so an installed plugin wins every "who handles this"
hook, and `RendererRegistry` lets it replace a built-in renderer by name.

A plugin that fails to import, or implements a hook that does not exist, is not registered;
it is recorded with its entry-point name and error, shown by `fleet plugins`, and makes every
render fail with one line naming it: rendering without a plugin the user installed (maybe to
replace a built-in) would deploy something else than they meant.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from fleet.errors import FleetError, Problem
from fleet.events.model import Delivery, Notification, NotifierTarget
from fleet.gates.model import Gate
from fleet.manifest import Manifest
from fleet.plugin import hookspecs
from fleet.plugin.hookspecs import HealthVerdict
from fleet.registry.provider import RegistryProvider
from fleet.render.api import Renderer, RendererRegistry, RenderRequest
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.definition import MetricProvider, RegistrySpec
from fleet.spec.rollout_spec import GateSpec

# Module names, not imports: fleet never imports `plugins` by name (layering rule).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "plugins.render_yaml",
    "plugins.render_kustomize",
    "plugins.render_helm",
    "plugins.registry_oci",
    "plugins.registry_dockerhub",
    "plugins.registry_ghcr",
    "plugins.registry_quay",
    "plugins.notify_webhook",
    "plugins.notify_slack",
    "plugins.notify_alertmanager",
    "plugins.notify_commit_status",
    "plugins.gate_prometheus",
    "plugins.gate_http",
    "plugins.gate_approval",
)
BUILTIN = "builtin"
RUNTIME = "runtime"


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin as `fleet plugins` shows it."""

    name: str
    origin: str  # "builtin", "<distribution> <version>" or "runtime"
    hooks: tuple[str, ...]


@dataclass(frozen=True)
class FailedPlugin:
    """A plugin that could not be loaded, and why."""

    name: str
    origin: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.origin}) failed to load: {self.error}"


class FleetPlugins:
    """One typed method per hook; the rest of fleet never touches `pm.hook` directly.

    Implements `fleet.render.api.RendererSource`, the protocol the render pipeline takes.
    """

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm or new_plugin_manager()
        self.failed: list[FailedPlugin] = []
        self._origins: dict[str, str] = {}
        self._registry: RendererRegistry | None = None

    @classmethod
    def load(
        cls,
        *,
        builtins: Iterable[str] = BUILTIN_PLUGINS,
        entry_points: bool = True,
        blocked: Iterable[str] = (),
    ) -> FleetPlugins:
        """Built-ins first, then installed plugins; `blocked` names are skipped."""
        plugins = cls()
        for name in blocked:
            plugins.pm.set_blocked(name)
        for module_name in builtins:
            plugins._load_builtin(module_name)
        if entry_points:
            plugins._load_entry_points()
        plugins.pm.check_pending()
        return plugins

    def _load_builtin(self, module_name: str) -> None:
        short = module_name.rsplit(".", 1)[-1]
        if self.pm.is_blocked(short):
            return
        try:
            module = importlib.import_module(module_name)
        except Exception as err:
            self.failed.append(FailedPlugin(short, BUILTIN, _describe(err)))
            return
        self._register_checked(module, short, BUILTIN)

    def _load_entry_points(self) -> None:
        found = [
            (dist.metadata["Name"] or "?", dist.version, ep)
            for dist in importlib.metadata.distributions()
            for ep in dist.entry_points
            if ep.group == hookspecs.ENTRY_POINT_GROUP
        ]
        seen: set[str] = set()
        for dist_name, version, ep in sorted(found, key=lambda f: (f[0].lower(), f[2].name)):
            origin = f"{dist_name} {version}"
            if ep.name in seen or self.pm.is_blocked(ep.name) or self.pm.has_plugin(ep.name):
                continue
            seen.add(ep.name)
            try:
                plugin = ep.load()
            except Exception as err:
                self.failed.append(FailedPlugin(ep.name, origin, _describe(err)))
                continue
            self._register_checked(plugin, ep.name, origin)

    def _register_checked(self, plugin: object, name: str, origin: str) -> None:
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as err:
            self.failed.append(FailedPlugin(name, origin, _describe(err)))
            return
        unknown = [
            caller.name for caller in self.pm.get_hookcallers(plugin) or [] if not caller.has_spec()
        ]
        if unknown:
            self.pm.unregister(plugin)
            self.failed.append(
                FailedPlugin(name, origin, f"implements unknown hook(s): {', '.join(unknown)}")
            )
            return
        self._origins[name] = origin
        self._registry = None

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin at run time (tests, embedding); returns its name."""
        registered = self.pm.register(plugin, name=name)
        if registered is None:
            raise FleetError(f"plugin {name or plugin!r} is blocked")
        self.pm.check_pending()
        self._origins[registered] = RUNTIME
        self._registry = None
        return registered

    def unregister(self, plugin: object) -> None:
        removed = self.pm.unregister(plugin)
        if removed is not None:
            self._origins.pop(self.pm.get_name(removed) or "", None)
        self._registry = None

    def plugins(self) -> list[PluginInfo]:
        """Registered plugins in registration order, with origin and implemented hooks."""
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            infos.append(PluginInfo(name, self._origins.get(name, RUNTIME), tuple(hooks)))
        return infos

    def origin(self, plugin_name: str) -> str:
        return self._origins.get(plugin_name, RUNTIME)

    def raise_for_failures(self) -> None:
        """FleetError with one line per plugin that failed to load (none -> no-op)."""
        if self.failed:
            raise FleetError(problems=[Problem(str(failed)) for failed in self.failed])

    # -- hooks -----------------------------------------------------------------------------

    def renderers(self) -> RendererRegistry:
        """All renderers, asking each plugin in registration order (see RendererRegistry)."""
        if self._registry is None:
            registry = RendererRegistry()
            caller = self.pm.hook.fleet_register_renderers
            for impl in caller.get_hookimpls():  # registration order, unlike a hook call
                registry.begin_plugin(
                    impl.plugin_name, builtin=self.origin(impl.plugin_name) == BUILTIN
                )
                impl.function(registry=registry)
            self._registry = registry
        return self._registry

    def renderer(self, name: str, *, file: str | Path | None = None) -> Renderer:
        """The renderer called `name`; FleetError naming the known ones if there is none."""
        self.raise_for_failures()
        registered = self.renderers().get(name)
        if registered is None:
            known = ", ".join(self.renderers().names()) or "none"
            raise FleetError(f"unknown renderer {name!r} (installed: {known})", file=file)
        return registered.renderer

    def detect_renderer(self, bundle_dir: Path, options: BundleOptions) -> str:
        self.raise_for_failures()
        name: str | None = self.pm.hook.fleet_detect_renderer(
            bundle_dir=bundle_dir, options=options
        )
        if name is None:
            raise FleetError(f"no renderer plugin recognises bundle {bundle_dir}")
        return name

    def post_renderer(self, renderer: str, bundle_dir: Path, options: BundleOptions) -> str | None:
        """The renderer a plugin wants run over `renderer`'s output (`fleet_post_renderer`)."""
        self.raise_for_failures()
        name: str | None = self.pm.hook.fleet_post_renderer(
            renderer=renderer, bundle_dir=bundle_dir, options=options
        )
        return name

    def transform_manifests(self, manifests: list[Manifest], request: RenderRequest) -> None:
        self.pm.hook.fleet_transform_manifests(manifests=manifests, request=request)

    def resolve_image(self, image: str, spec: RegistrySpec | None) -> str | None:
        """A plugin's digest for `image` (`fleet_resolve_image`), or None: ask the registry."""
        result: str | None = self.pm.hook.fleet_resolve_image(image=image, spec=spec)
        return result

    def registry_provider(self, host: str, spec: RegistrySpec | None) -> RegistryProvider | None:
        """The provider of a registry host (`fleet_registry`; implements ProviderSource)."""
        self.raise_for_failures()
        result: RegistryProvider | None = self.pm.hook.fleet_registry(host=host, spec=spec)
        return result

    def health_check(self, obj: dict[str, Any]) -> HealthVerdict | None:
        result: HealthVerdict | None = self.pm.hook.fleet_health_check(obj=obj)
        return result

    def notifier_types(self) -> set[str]:
        """Every notifier type a plugin serves (`fleet_notifier_types`)."""
        answers: list[list[str] | None] = self.pm.hook.fleet_notifier_types()
        return {name for names in answers for name in names or ()}

    def notify(self, notifier: NotifierTarget, notification: Notification) -> Delivery | None:
        """Hand one notification to the plugin serving `notifier.type` (None: no plugin)."""
        result: Delivery | None = self.pm.hook.fleet_notify(
            notifier=notifier, notification=notification
        )
        return result

    def gate(self, spec: GateSpec, providers: Mapping[str, MetricProvider]) -> Gate | None:
        """The gate a plugin builds for `spec` (`fleet_gate`); None: no plugin serves its
        type. `GateConfigError` from the plugin passes through (bad parameters)."""
        self.raise_for_failures()
        result: Gate | None = self.pm.hook.fleet_gate(spec=spec, providers=providers)
        return result

    def gate_types(self) -> set[str]:
        """Every gate type a plugin serves (`fleet_gate_types`)."""
        answers: list[list[str] | None] = self.pm.hook.fleet_gate_types()
        return {name for names in answers for name in names or ()}

    def cluster_credentials(self, cluster: str, credential: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.pm.hook.fleet_cluster_credentials(
            cluster=cluster, credential=credential
        )
        return result


def new_plugin_manager() -> pluggy.PluginManager:
    """A pluggy manager for project "fleet" with every hook of `fleet.plugin.hookspecs` declared."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
