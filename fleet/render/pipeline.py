"""The render pipeline: (bundle dir, merged options, cluster) -> ordered manifests, cached.

`render_bundle` is the only entry point the rest of fleet uses. It picks a renderer plugin
(explicit `renderer:` option, else the detection hook), runs it - followed by the
post-renderer a plugin names for it (`fleet_post_renderer`: the built-in kustomize plugin
runs kustomize over a Helm chart's output, Rancher Fleet style) - through a `RenderCache`
keyed by the render input hash, then applies `namespace`/`defaultNamespace`, the
post-render transform hooks, and the stable apply order.

Renderers must be pure functions of (bundle content, merged options, cluster kube_version):
the cluster's name and labels reach them only through options templating, done before. That
is what lets a thousand clusters with equal options share one render.

The pipeline talks to the plugins only through `RendererSource` (`fleet.render.api`) and
names no renderer: which renderer follows which is the plugins' answer, asked in one place
(`_stages`) by both `render_bundle` and `renderer_identity`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import FleetError, Problem
from fleet.manifest import Manifest
from fleet.render.api import Renderer, RendererSource, RenderRequest
from fleet.render.cache import RenderCache, dir_content_hash
from fleet.render.manifests import (
    apply_namespaces,
    canonical_json,
    check_manifest,
    sort_manifests,
)
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.yamlload import YamlDocument


@dataclass
class RenderResult:
    """One bundle rendered for one cluster, and which renderer(s) and cache entry it came from."""

    manifests: list[Manifest]
    renderer: str
    renderer_version: str
    cache_key: str
    cache_hit: bool = False
    post_renderer: str | None = None


@dataclass(frozen=True)
class _Stages:
    """The renderer a bundle uses and the one run over its output (if any), by name."""

    name: str
    renderer: Renderer
    post_name: str | None
    post: Renderer | None


def _stages(
    plugins: RendererSource,
    bundle_dir: Path,
    options: BundleOptions,
    *,
    file: str | Path | None = None,
) -> _Stages:
    """The one place that decides which renderer runs, and which runs after it."""
    name = options.renderer or plugins.detect_renderer(bundle_dir, options)
    renderer = plugins.renderer(name, file=file)
    post_name = plugins.post_renderer(name, bundle_dir, options)
    post = plugins.renderer(post_name, file=file) if post_name is not None else None
    return _Stages(name, renderer, post_name, post)


def render_bundle(
    request: RenderRequest, plugins: RendererSource, cache: RenderCache | None = None
) -> RenderResult:
    """Render one bundle for one cluster: manifests in apply order (see module doc)."""
    options = request.options
    stages = _stages(plugins, request.bundle_dir, options, file=request.options_file)
    renderer, post = stages.renderer, stages.post
    for stage in (renderer, post):
        _precheck(stage, request)
    version = renderer.version

    def produce() -> list[Manifest]:
        manifests = _checked(renderer.render(request), stages.name, request)
        if post is not None:
            staged = dataclasses.replace(request, input_manifests=tuple(manifests))
            manifests = _checked(post.render(staged), post.name, request)
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
        renderer=stages.name,
        renderer_version=version,
        cache_key=key,
        cache_hit=hit,
        post_renderer=stages.post_name,
    )


def _precheck(renderer: Renderer | None, request: RenderRequest) -> None:
    """A renderer's optional `check(request)`: refuse a request before any stage runs."""
    method = getattr(renderer, "check", None)
    if callable(method):
        method(request)


def _remote_chart(options: BundleOptions) -> bool:
    """A chart fetched at render time (`repo:` or `oci://`): its content is not in the key."""
    helm = options.helm
    return helm is not None and bool(helm.repo or (helm.chart or "").startswith("oci://"))


def _checked(manifests: object, renderer: str, request: RenderRequest) -> list[Manifest]:
    """A renderer's output, held to the rules of manifests fleet parses itself.

    Built-in renderers parse YAML with `load_manifests`, which checks every object's
    envelope (`check_manifest`) with file and line; a third-party renderer hands back dicts,
    so the same check runs here, naming the renderer and the bundle (there is no line).
    """
    where = request.options_file or request.bundle_dir
    if not isinstance(manifests, list):
        raise FleetError(
            f"renderer {renderer!r} returned something that is not a manifest list "
            f"for bundle {request.name!r}",
            file=where,
        )
    problems: list[Problem] = []
    for index, manifest in enumerate(manifests):
        doc = YamlDocument(manifest, Path(f"renderer {renderer}"))
        for found in check_manifest(manifest, doc):
            problems.append(
                Problem(
                    f"renderer {renderer!r} returned, for bundle {request.name!r}, an object "
                    f"(item {index}) that is not a valid manifest: {found.message}",
                    str(where),
                )
            )
    if problems:
        raise FleetError(problems=problems)
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
        cache.dir_content_hash(key_dirs, root)
        if cache is not None
        else dir_content_hash(key_dirs, root)
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


def renderer_identity(plugins: RendererSource, bundle_dir: Path, options: BundleOptions) -> str:
    """ "name version" of the renderer(s) a bundle uses: part of targeting's deployment id.

    Pass `lambda bundle: renderer_identity(plugins, bundle.path, bundle.options)` as
    targeting's `renderer_of`, so a new helm binary or plugin version changes the id. The
    stages are decided by `_stages`, as for `render_bundle`; no `check` runs here: a broken
    bundle fails its own render, not the targeting of the whole commit.
    """
    stages = _stages(plugins, bundle_dir, options)
    identity = f"{stages.name} {stages.renderer.version}"
    if stages.post is not None:
        identity += f" + {stages.post_name} {stages.post.version}"
    return identity
