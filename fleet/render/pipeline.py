"""The render pipeline: (bundle dir, merged options, cluster) -> ordered manifests, cached.

`render_bundle` is the only entry point the rest of fleet uses. It picks a renderer plugin
(explicit `renderer:` option, else the detection hook), runs it - and, Rancher Fleet style,
runs kustomize over a Helm chart's output when the bundle also has a kustomization - through
a `RenderCache` keyed by the render input hash, then applies `namespace`/`defaultNamespace`,
the post-render transform hooks, and the stable apply order.

Renderers must be pure functions of (bundle content, merged options, cluster kube_version):
the cluster's name and labels reach them only through options templating, done before. That
is what lets a thousand clusters with equal options share one render.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fleet.errors import FleetError
from fleet.render.manifests import Manifest, apply_namespaces, canonical_json, sort_manifests
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.cluster import ClusterContext
from fleet.spec.hashing import hash_path
from fleet.spec.pathsafety import resolve_inside

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from fleet.plugin.manager import FleetPlugins

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(frozen=True)
class RenderRequest:
    """Everything a renderer may look at. Renderers read files only through `resolve`.

    `options` are already merged for `cluster` and templated. `cache_key`, when targeting
    supplies it (the deployment id), replaces the key `render_bundle` would compute.
    `input_manifests` is set only when a renderer runs as a post-renderer (kustomize over a
    Helm chart's output): the manifests of the previous stage.
    """

    bundle_dir: Path
    repo_root: Path
    options: BundleOptions
    cluster: ClusterContext
    options_file: Path | None = None
    bundle_name: str | None = None
    cache_key: str | None = None
    input_manifests: tuple[Manifest, ...] | None = None

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
    `fleet.errors.FleetError` (one line, with the file) for problems the user can fix.
    Optional methods: `describe() -> str` adds a line to `fleet plugins`;
    `cache_context(request) -> str` returns whatever else of the request the output depends
    on (e.g. the cluster, when a values file is templated per cluster), added to the key.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def render(self, request: RenderRequest) -> list[Manifest]: ...


@dataclass
class RegisteredRenderer:
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
        return self._renderers.get(name)

    def names(self) -> list[str]:
        return sorted(self._renderers)

    def __iter__(self) -> Iterator[RegisteredRenderer]:
        return iter(self._renderers[name] for name in self.names())


@dataclass
class RenderResult:
    manifests: list[Manifest]
    renderer: str
    renderer_version: str
    cache_key: str
    cache_hit: bool = False
    post_renderer: str | None = None


@dataclass
class RenderCache:
    """Rendered manifests by render input hash: in-memory LRU, thread-safe, hit/miss counts.

    Entries are stored as JSON text and decoded on every hit, so callers may mutate what they
    get. Concurrent requests for one key render once (the others wait). A `FleetError` is
    remembered too: the same input gives the same error, so a broken chart fails once, not
    once per cluster. Bundle content hashes are memoised per directory for the cache's life:
    use one cache per checked-out revision (a Git checkout does not change under it).
    """

    max_entries: int = 512
    directory: Path | None = None  # optional on-disk layer shared by later runs (see below)
    hits: int = 0
    misses: int = 0
    disk_hits: int = 0
    _entries: OrderedDict[str, str | FleetError] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _key_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _content_hashes: dict[tuple[Path, ...], str] = field(default_factory=dict)

    def get_or_render(
        self, key: str, produce: Callable[[], list[Manifest]], *, persist: bool = True
    ) -> tuple[list[Manifest], bool]:
        """(manifests, was it a hit?) - `produce` runs only on a miss.

        With a `directory`, a memory miss looks on disk before rendering, and a render is
        written there (`persist=False` for output that depends on more than the key: a
        chart fetched from a repository, whose version range may resolve differently
        tomorrow). Errors are remembered in memory only.
        """
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                cached = self._entries.get(key)
                if cached is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
            if cached is not None:
                if isinstance(cached, FleetError):
                    raise cached
                return json.loads(cached), True
            on_disk = self._read_disk(key) if persist else None
            if on_disk is not None:
                with self._lock:
                    self.hits += 1
                    self.disk_hits += 1
                    self._remember(key, on_disk)
                return json.loads(on_disk), True
            try:
                stored: str | FleetError = json.dumps(produce())
            except FleetError as err:
                stored = err
            if persist and isinstance(stored, str):
                self._write_disk(key, stored)
            with self._lock:
                self.misses += 1
                self._remember(key, stored)
        if isinstance(stored, FleetError):
            raise stored
        return json.loads(stored), False

    def _remember(self, key: str, stored: str | FleetError) -> None:
        self._entries[key] = stored
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self._key_locks.pop(key, None)

    def _disk_path(self, key: str) -> Path | None:
        if self.directory is None:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.json.gz"

    def _read_disk(self, key: str) -> str | None:
        path = self._disk_path(key)
        if path is None or not path.is_file():
            return None
        try:
            return gzip.decompress(path.read_bytes()).decode()
        except (OSError, EOFError, UnicodeDecodeError):
            return None  # a torn or foreign file: render again and overwrite it

    def _write_disk(self, key: str, stored: str) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")  # created 0600
            with os.fdopen(fd, "wb") as out:
                out.write(gzip.compress(stored.encode(), compresslevel=3))
            os.replace(tmp, path)
        except OSError as err:
            log.warning("render cache %s not written (%s); rendering again next time", path, err)

    def content_hash(self, dirs: tuple[Path, ...], repo_root: Path) -> str:
        with self._lock:
            known = self._content_hashes.get(dirs)
        if known is None:
            known = content_hash(dirs, repo_root)
            with self._lock:
                self._content_hashes[dirs] = known
        return known


def content_hash(dirs: tuple[Path, ...], repo_root: Path) -> str:
    """sha256 over the content of `dirs` (see `fleet.spec.hashing`); symlinks leaving
    `repo_root` are refused, never read."""
    digest = hashlib.sha256()
    for root in dirs:
        digest.update(f"dir:{root}\0{hash_path(root, repo_root)}\0".encode())
    return digest.hexdigest()


def render_bundle(
    request: RenderRequest, plugins: FleetPlugins, cache: RenderCache | None = None
) -> RenderResult:
    """Render one bundle for one cluster: manifests in apply order (see module doc)."""
    options = request.options
    name = options.renderer or plugins.detect_renderer(request.bundle_dir, options)
    renderer = plugins.renderer(name, file=request.options_file)
    post = _post_renderer(request, name, plugins)
    version = renderer.version

    def produce() -> list[Manifest]:
        manifests = _checked(renderer.render(request), name)
        if post is not None:
            staged = dataclasses.replace(request, input_manifests=tuple(manifests))
            manifests = _checked(post.render(staged), post.name)
        return manifests

    key = _cache_key(request, renderer, post, cache)
    if cache is None:
        manifests, hit = produce(), False
    else:
        manifests, hit = cache.get_or_render(key, produce, persist=not _remote_chart(options))
    apply_namespaces(
        manifests, namespace=options.namespace, default_namespace=options.default_namespace
    )
    plugins.transform_manifests(manifests, request)
    return RenderResult(
        manifests=sort_manifests(manifests),
        renderer=name,
        renderer_version=version,
        cache_key=key,
        cache_hit=hit,
        post_renderer=post.name if post is not None else None,
    )


def _remote_chart(options: BundleOptions) -> bool:
    """A chart fetched at render time (`repo:` or `oci://`): its content is not in the key."""
    helm = options.helm
    return helm is not None and bool(helm.repo or (helm.chart or "").startswith("oci://"))


def _post_renderer(request: RenderRequest, name: str, plugins: FleetPlugins) -> Renderer | None:
    """kustomize over the output of another renderer (Rancher Fleet's helm + kustomize).

    With `kustomize.dir` set the kustomization there must exist; without it, a Helm bundle
    is post-rendered when its root directory holds a kustomization file (Rancher's default
    `kustomize.dir` is the bundle root).
    """
    if name == "kustomize":
        return None
    kdir = request.options.kustomize.dir if request.options.kustomize else None
    if kdir:
        where = request.resolve(kdir, what="kustomize.dir")
        if not any((where / f).is_file() for f in KUSTOMIZATION_FILES):
            raise FleetError(
                f"kustomize.dir {kdir!r} has no kustomization.yaml", file=request.options_file
            )
    elif name != "helm" or not any((request.bundle_dir / f).is_file() for f in KUSTOMIZATION_FILES):
        return None
    return plugins.renderer("kustomize", file=request.options_file)


def _checked(manifests: object, renderer: str) -> list[Manifest]:
    if not isinstance(manifests, list) or not all(
        isinstance(m, dict) and m.get("apiVersion") and m.get("kind") for m in manifests
    ):
        raise FleetError(f"renderer {renderer!r} returned something that is not a manifest list")
    return manifests


def _cache_key(
    request: RenderRequest, renderer: Renderer, post: Renderer | None, cache: RenderCache | None
) -> str:
    """The render input hash: renderer(s) + versions, bundle content, options, kube version."""
    if request.cache_key:
        return f"unit:{request.cache_key}"
    dirs = [request.bundle_dir]
    for extra in _local_dirs_outside_bundle(request):
        dirs.append(extra)
    key_dirs = tuple(dirs)
    root = request.repo_root
    content = (
        cache.content_hash(key_dirs, root) if cache is not None else content_hash(key_dirs, root)
    )
    payload = {
        "renderer": [renderer.name, renderer.version],
        "post": [post.name, post.version] if post is not None else None,
        "content": content,
        "bundle": request.name,
        "options": request.options.model_dump(mode="json", by_alias=True),
        "kubeVersion": request.cluster.kube_version,
        "context": _cache_context(renderer, request),
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def _cache_context(renderer: Renderer, request: RenderRequest) -> str:
    """What else of the cluster a renderer reads (its optional `cache_context` method)."""
    method = getattr(renderer, "cache_context", None)
    return str(method(request)) if callable(method) else ""


def _local_dirs_outside_bundle(request: RenderRequest) -> Iterator[Path]:
    """A local chart or kustomize dir outside the bundle dir is render input too."""
    options = request.options
    for relpath in (
        options.helm.chart if options.helm and not options.helm.repo else None,
        options.kustomize.dir if options.kustomize else None,
    ):
        if not relpath or "://" in relpath:
            continue
        path = (request.bundle_dir / relpath).resolve()
        bundle = request.bundle_dir.resolve()
        if path.exists() and path != bundle and bundle not in path.parents:
            yield request.resolve(relpath, what="path")


def renderer_identity(plugins: FleetPlugins, bundle_dir: Path, options: BundleOptions) -> str:
    """ "name version" of the renderer(s) a bundle uses: part of targeting's deployment id.

    Pass `lambda bundle: renderer_identity(plugins, bundle.path, bundle.options)` as
    targeting's `renderer_of`, so a new helm binary or plugin version changes the id.
    """
    name = options.renderer or plugins.detect_renderer(bundle_dir, options)
    identity = f"{name} {plugins.renderer(name).version}"
    kdir = options.kustomize.dir if options.kustomize else None
    root_kustomization = any((bundle_dir / f).is_file() for f in KUSTOMIZATION_FILES)
    if name != "kustomize" and (kdir or (name == "helm" and root_kustomization)):
        identity += f" + kustomize {plugins.renderer('kustomize').version}"
    return identity
