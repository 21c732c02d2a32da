"""The renderer contract: what a renderer plugin implements and what the pipeline needs.

This module is the part of `fleet.render` that plugins see (re-exported by `fleet.plugin`):
the request a renderer reads, the `Renderer` protocol, the registry renderers are added to,
and `RendererSource`, the few calls the pipeline makes on the plugin manager. The pipeline
takes a `RendererSource` rather than the plugin manager itself, so `fleet.render` never
imports `fleet.plugin` (the plugin layer sits above the renderer contract, not beside it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fleet.errors import FleetError
from fleet.manifest import Manifest
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.cluster import ClusterContext
from fleet.spec.definition import RegistrySpec
from fleet.spec.pathsafety import read_inside, resolve_inside

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(frozen=True)
class RenderRequest:
    """Everything a renderer may look at. Renderers read files only through `read_text` /
    `read_bytes` (or `resolve`, for a path handed to a tool).

    `options` are already merged for `cluster` and templated. `cache_key`, when targeting
    supplies it (the deployment id), replaces the key `render_bundle` would compute.
    `registries` are the definition's registry entries (see `fleet.plugin.registry_credential`).
    `input_manifests` is set only when a renderer runs as a post-renderer (kustomize over a
    Helm chart's output, see `fleet_post_renderer`): the manifests of the previous stage.
    """

    bundle_dir: Path
    repo_root: Path
    options: BundleOptions
    cluster: ClusterContext
    options_file: Path | None = None
    bundle_name: str | None = None
    cache_key: str | None = None
    input_manifests: tuple[Manifest, ...] | None = None
    # the definition's `registries` (names and hosts, never secrets): which credential a
    # renderer uses for a registry host (`fleet.plugin.registry_credential`); not part of
    # the cache key, since a credential changes whether a chart can be pulled, not what it is
    registries: tuple[RegistrySpec, ...] = ()
    # (chart, helm.version as written, the version and manifest digest resolved when the
    # commit was targeted): render exactly those bytes (`fleet.registry.charts`); both are
    # part of the deployment id
    chart_versions: tuple[tuple[str, str, str, str], ...] = ()

    def chart_version(self, chart: str, wanted: str | None) -> tuple[str, str] | None:
        """(version, manifest digest) that `chart` with `helm.version: wanted` was resolved
        to for this commit (None when it was not: a chart that is not from an OCI
        registry, `fleet render` of a bundle directory)."""
        for pinned_chart, pinned_wanted, version, digest in self.chart_versions:
            if (pinned_chart, pinned_wanted) == (chart, wanted or ""):
                return version, digest
        return None

    @property
    def name(self) -> str:
        """The bundle's name (default: its directory name), e.g. for Helm's release name."""
        return self.bundle_name or self.bundle_dir.name

    def resolve(self, relpath: str, *, what: str) -> Path:
        """`relpath` (relative to the bundle dir) as an absolute path inside the repository.

        Symlinks are resolved first, so a link pointing outside the repository is refused
        like a `../../etc` path. The error names `options_file` (the bundle's fleet.yaml).
        """
        return resolve_inside(
            self.repo_root, self.bundle_dir, relpath, what=what, file=self.options_file
        )

    def read_bytes(self, relpath: str, *, what: str, file: Path | str | None = None) -> bytes:
        """The content of `relpath` (relative to the bundle dir), checked before it is opened.

        The path check of `resolve`, then: a regular file of at most 8 MiB
        (`fleet.spec.pathsafety.MAX_READ_BYTES`). Every file a renderer reads goes through
        here (or `read_text`). The error names `file` (where the path came from; default
        the bundle's fleet.yaml).
        """
        return read_inside(
            self.repo_root,
            self.bundle_dir,
            relpath,
            what=what,
            file=file if file is not None else self.options_file,
        )

    def read_text(self, relpath: str, *, what: str, file: Path | str | None = None) -> str:
        """`read_bytes` decoded as UTF-8 (anything else is a FleetError naming the file)."""
        data = self.read_bytes(relpath, what=what, file=file)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            where = file if file is not None else self.resolve(relpath, what=what)
            raise FleetError(f"{what} '{relpath}' is not valid UTF-8 text", file=where) from None

    def display(self, path: Path) -> str:
        """`path` relative to the repository root, for messages (absolute if outside)."""
        try:
            return path.relative_to(self.repo_root.resolve()).as_posix() or "."
        except ValueError:
            return str(path)


class Renderer(Protocol):
    """What a renderer plugin registers (see `fleet_register_renderers`).

    `name` is what `renderer:` in fleet.yaml and the detection hook refer to. `version`
    goes into the render cache key and the deployment id: change it when output for the
    same input may change (tool version + plugin version, e.g. "helm v3.16.2 plugin 1").
    `render` returns the manifests as JSON-compatible dicts, in any order, and raises
    `FleetError` (one line, with the file) for problems the user can fix.
    Optional methods: `describe() -> str` adds a line to `fleet plugins`;
    `cache_context(request) -> str` returns whatever else of the request the output depends
    on (e.g. the cluster, when a values file is templated per cluster), added to the key;
    `check(request) -> None` raises `FleetError` for a request this renderer cannot render,
    before any stage runs (cheap file checks only: a post-renderer's missing input is then
    reported without running the chart first).
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def render(self, request: RenderRequest) -> list[Manifest]: ...


@dataclass
class RegisteredRenderer:
    """One renderer in the registry, with the plugin that added it."""

    renderer: Renderer
    plugin: str
    replaced: str | None = None  # plugin whose renderer of the same name this one replaced


class RendererRegistry:
    """The object `fleet_register_renderers` receives; `add` registers one renderer.

    Plugins are asked in registration order: built-ins first, then installed plugins, then
    plugins registered at run time. A name already taken by a built-in is replaced by the
    later plugin (that is how an installed plugin swaps out `helm`). A name already taken by
    a non-built-in plugin is an error at start-up unless the later `add` says `override=True`.
    """

    def __init__(self) -> None:
        self._renderers: dict[str, RegisteredRenderer] = {}
        self._plugin = "<unknown>"
        self._builtin = False
        self._builtin_names: set[str] = set()

    def begin_plugin(self, plugin: str, *, builtin: bool) -> None:
        """Called by the plugin manager before each plugin's hook runs."""
        self._plugin, self._builtin = plugin, builtin

    def add(self, renderer: Renderer, *, override: bool = False) -> None:
        # Not isinstance(renderer, Renderer): that would evaluate `version` (runs a binary).
        if not isinstance(getattr(renderer, "name", None), str) or not callable(
            getattr(renderer, "render", None)
        ):
            raise FleetError(f"plugin {self._plugin}: {renderer!r} is not a Renderer")
        name = renderer.name
        existing = self._renderers.get(name)
        if existing is not None:
            replaceable = existing.plugin in self._builtin_names and not self._builtin
            if not (replaceable or override):
                raise FleetError(
                    f"renderer {name!r} is registered by both {existing.plugin} and "
                    f"{self._plugin}; add it with override=True to replace it"
                )
        self._renderers[name] = RegisteredRenderer(
            renderer, self._plugin, existing.plugin if existing else None
        )
        if self._builtin:
            self._builtin_names.add(self._plugin)

    def get(self, name: str) -> RegisteredRenderer | None:
        """The renderer registered as `name`, or None."""
        return self._renderers.get(name)

    def names(self) -> list[str]:
        """Registered renderer names, sorted."""
        return sorted(self._renderers)

    def __iter__(self) -> Iterator[RegisteredRenderer]:
        return iter(self._renderers[name] for name in self.names())


class RendererSource(Protocol):
    """What the render pipeline asks of the plugins (implemented by `FleetPlugins`).

    A protocol so that the pipeline can be driven by anything that answers these four
    questions (tests, an embedding application), and so `fleet.render` has no import of
    `fleet.plugin`.
    """

    def detect_renderer(self, bundle_dir: Path, options: BundleOptions) -> str:
        """The renderer for a bundle whose options name none (FleetError if no plugin knows)."""
        ...

    def renderer(self, name: str, *, file: str | Path | None = None) -> Renderer:
        """The renderer called `name` (FleetError naming the known ones if none)."""
        ...

    def post_renderer(self, renderer: str, bundle_dir: Path, options: BundleOptions) -> str | None:
        """The renderer run over `renderer`'s output for this bundle, or None."""
        ...

    def transform_manifests(self, manifests: list[Manifest], request: RenderRequest) -> None:
        """Let plugins change one cluster's rendered manifests in place."""
        ...
