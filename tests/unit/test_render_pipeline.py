"""render_bundle: renderer choice, namespaces, order, transforms, and the render cache."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import FleetError
from fleet.plugin.hookspecs import hookimpl
from fleet.plugin.manager import FleetPlugins
from fleet.render.api import RendererRegistry, RenderRequest
from fleet.render.cache import RenderCache
from fleet.render.manifests import dump_manifests, load_manifests, sort_manifests
from fleet.render.pipeline import render_bundle
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.cluster import ClusterContext

MIXED = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "mine"}},
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "r"},
    },
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
    {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}},
    {"apiVersion": "other.io/v1", "kind": "Thing", "metadata": {"name": "t"}},
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "names": {"kind": "Gadget"}, "scope": "Cluster"},
    },
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "names": {"kind": "Widget"}, "scope": "Namespaced"},
    },
]


class CountingRenderer:
    """A test renderer that counts its calls (thread-safe) and returns MIXED."""

    name = "counting"
    version = "counting 1"

    def __init__(self, manifests: list[dict[str, Any]] | None = None) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        self.manifests = manifests if manifests is not None else MIXED

    def render(self, request: RenderRequest) -> list[dict[str, Any]]:
        with self.lock:
            self.calls += 1
        return [dict(m) for m in self.manifests]


class CountingPlugin:
    def __init__(self, renderer: CountingRenderer) -> None:
        self.renderer = renderer

    @hookimpl
    def fleet_register_renderers(self, registry: RendererRegistry) -> None:
        registry.add(self.renderer)


@pytest.fixture
def counting(tmp_path: Path) -> Any:
    plugins = FleetPlugins.load(entry_points=False)
    renderer = CountingRenderer()
    plugin = CountingPlugin(renderer)
    plugins.register(plugin, name="counting-plugin")
    yield plugins, renderer
    plugins.unregister(plugin)


def request_for(bundle: Path, cluster: str = "c1", **options: Any) -> RenderRequest:
    return RenderRequest(
        bundle_dir=bundle,
        repo_root=bundle,
        options=BundleOptions.model_validate({"renderer": "counting", **options}),
        cluster=ClusterContext(cluster, {"env": "prod"}),
    )


def test_default_namespace_fills_only_missing_namespaces(tmp_path: Path, counting: Any) -> None:
    plugins, _ = counting
    result = render_bundle(request_for(tmp_path, defaultNamespace="app"), plugins)
    namespaces = {
        (m["kind"], m["metadata"]["name"]): m["metadata"].get("namespace") for m in result.manifests
    }
    assert namespaces == {
        ("CustomResourceDefinition", "gadgets.example.com"): None,
        ("CustomResourceDefinition", "widgets.example.com"): None,
        ("Namespace", "ns"): None,
        ("ClusterRole", "r"): None,
        ("Gadget", "g"): None,  # its CRD in the bundle says scope: Cluster
        ("Widget", "w"): "app",  # its CRD in the bundle says scope: Namespaced
        ("Thing", "t"): "app",  # unknown custom kind: namespaced
        ("Deployment", "web"): "app",
        ("Service", "web"): "mine",  # already set: kept
    }


def test_namespace_is_forced_on_namespaced_objects_only(tmp_path: Path, counting: Any) -> None:
    plugins, _ = counting
    result = render_bundle(request_for(tmp_path, namespace="forced", defaultNamespace="x"), plugins)
    for manifest in result.manifests:
        namespace = manifest["metadata"].get("namespace")
        if manifest["kind"] in ("CustomResourceDefinition", "Namespace", "ClusterRole", "Gadget"):
            assert namespace is None, manifest
        else:
            assert namespace == "forced", manifest


def test_stable_apply_order(tmp_path: Path, counting: Any) -> None:
    plugins, _ = counting
    result = render_bundle(request_for(tmp_path), plugins)
    kinds = [m["kind"] for m in result.manifests]
    assert kinds == [
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "Namespace",
        "ClusterRole",
        "Gadget",
        "Deployment",
        "Service",
        "Thing",
        "Widget",
    ]
    assert sort_manifests(list(reversed(result.manifests))) == result.manifests
    text = dump_manifests(result.manifests)
    assert load_manifests(text, file="x") == result.manifests


def test_transform_hooks_see_a_private_copy(tmp_path: Path, counting: Any) -> None:
    plugins, renderer = counting
    cache = RenderCache()

    class Labeler:
        @hookimpl
        def fleet_transform_manifests(
            self, manifests: list[dict[str, Any]], request: RenderRequest
        ) -> None:
            for manifest in manifests:
                manifest["metadata"].setdefault("labels", {})["cluster"] = request.cluster.name
            manifests.append(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "added"}}
            )

    labeler = Labeler()
    plugins.register(labeler)
    try:
        first = render_bundle(request_for(tmp_path, "a"), plugins, cache)
        second = render_bundle(request_for(tmp_path, "b"), plugins, cache)
    finally:
        plugins.unregister(labeler)
    assert renderer.calls == 1 and second.cache_hit and not first.cache_hit
    labelled = [m for m in second.manifests if m["metadata"]["name"] != "added"]
    assert {m["metadata"]["labels"]["cluster"] for m in labelled} == {"b"}
    # Every rendered manifest of the first pass carries its own cluster's label (no filter
    # that could hide one), and the cached copy was not touched by the second pass.
    rendered = [m for m in first.manifests if m["metadata"]["name"] != "added"]
    assert len(rendered) == len(MIXED)
    assert [m["metadata"]["labels"]["cluster"] for m in rendered] == ["a"] * len(MIXED)
    assert len(second.manifests) == len(MIXED) + 1


def test_one_bundle_for_1000_clusters_renders_once(tmp_path: Path, counting: Any) -> None:
    plugins, renderer = counting
    (tmp_path / "x.txt").write_text("content")
    cache = RenderCache()
    results = [
        render_bundle(request_for(tmp_path, f"cluster-{i}", defaultNamespace="app"), plugins, cache)
        for i in range(1000)
    ]
    assert renderer.calls == 1
    assert (cache.hits, cache.misses) == (999, 1)
    assert sum(r.cache_hit for r in results) == 999
    assert len({r.cache_key for r in results}) == 1


def test_cache_key_follows_options_content_and_kube_version(tmp_path: Path, counting: Any) -> None:
    plugins, renderer = counting
    cache = RenderCache()
    (tmp_path / "a.txt").write_text("1")
    base = render_bundle(request_for(tmp_path), plugins, cache)
    other_options = render_bundle(request_for(tmp_path, defaultNamespace="other"), plugins, cache)
    assert other_options.cache_key != base.cache_key
    versioned = RenderRequest(
        bundle_dir=tmp_path,
        repo_root=tmp_path,
        options=BundleOptions(renderer="counting"),
        cluster=ClusterContext("c", kube_version="1.30.0"),
    )
    assert render_bundle(versioned, plugins, cache).cache_key != base.cache_key
    (tmp_path / "a.txt").write_text("2")
    assert render_bundle(request_for(tmp_path), plugins, RenderCache()).cache_key != base.cache_key
    supplied = RenderRequest(
        bundle_dir=tmp_path,
        repo_root=tmp_path,
        options=BundleOptions(renderer="counting"),
        cluster=ClusterContext("c"),
        cache_key="deployment-id-123",
    )
    assert render_bundle(supplied, plugins, cache).cache_key == "unit:deployment-id-123"
    assert renderer.calls == 5


def test_concurrent_renders_of_one_key_render_once(tmp_path: Path, counting: Any) -> None:
    plugins, renderer = counting
    cache = RenderCache()
    barrier = threading.Barrier(16)

    def work(i: int) -> None:
        barrier.wait()
        render_bundle(request_for(tmp_path, f"c{i}"), plugins, cache)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert renderer.calls == 1 and cache.hits == 15


def test_lru_eviction_and_errors_are_remembered(tmp_path: Path) -> None:
    cache = RenderCache(max_entries=2)
    calls: list[str] = []

    def producer(key: str) -> Any:
        def produce() -> list[dict[str, Any]]:
            calls.append(key)
            if key == "bad":
                raise FleetError("chart is broken", file="chart/templates/x.yaml")
            return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": key}}]

        return produce

    for key in ["a", "b", "a", "c", "b"]:
        cache.get_or_render(key, producer(key))
    assert calls == ["a", "b", "c", "b"]  # b was evicted by c (a was used more recently)
    for _ in range(3):
        with pytest.raises(FleetError, match="chart is broken"):
            cache.get_or_render("bad", producer("bad"))
    assert calls.count("bad") == 1


def test_renderer_output_is_checked(tmp_path: Path) -> None:
    plugins = FleetPlugins.load(entry_points=False)
    plugin = CountingPlugin(CountingRenderer([{"kind": "NoApiVersion"}]))
    plugins.register(plugin)
    with pytest.raises(FleetError, match="renderer 'counting' returned"):
        render_bundle(request_for(tmp_path), plugins)


def test_third_party_output_gets_the_full_manifest_check(tmp_path: Path) -> None:
    """A plugin's dicts are held to `check_manifest` like parsed YAML (not only
    apiVersion/kind): `metadata: oops` is one error naming the renderer and the bundle."""
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": "oops"}
    labels = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": [1]}}
    plugins = FleetPlugins.load(entry_points=False)
    plugins.register(CountingPlugin(CountingRenderer([MIXED[0], bad, labels])))
    request = RenderRequest(
        tmp_path,
        tmp_path,
        BundleOptions(renderer="counting"),
        ClusterContext("c"),
        options_file=tmp_path / "fleet.yaml",
        bundle_name="shop",
    )
    with pytest.raises(FleetError) as err:
        render_bundle(request, plugins)
    messages = [(p.file, p.message) for p in err.value.problems]
    assert messages == [
        (
            str(tmp_path / "fleet.yaml"),
            "renderer 'counting' returned, for bundle 'shop', an object (item 1) that is not "
            "a valid manifest: metadata must be a mapping, not a string ('oops')",
        ),
        (
            str(tmp_path / "fleet.yaml"),
            "renderer 'counting' returned, for bundle 'shop', an object (item 2) that is not "
            "a valid manifest: metadata.labels must be a mapping, not a list",
        ),
    ]


def test_detection_is_used_without_explicit_renderer(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    request = RenderRequest(tmp_path, tmp_path, BundleOptions(), ClusterContext("c"))
    result = render_bundle(request, FleetPlugins.load(entry_points=False))
    assert result.renderer == "yaml" and result.renderer_version.startswith("fleet-yaml")
    assert result.post_renderer is None


def test_paths_outside_the_repository_are_refused(tmp_path: Path) -> None:
    request = RenderRequest(
        tmp_path,
        tmp_path,
        BundleOptions(),
        ClusterContext("c"),
        options_file=tmp_path / "fleet.yaml",
    )
    with pytest.raises(FleetError, match="outside the repository"):
        request.resolve("../etc", what="values file")
    with pytest.raises(FleetError, match="must be a path relative"):
        request.resolve("/etc/passwd", what="values file")
    assert request.resolve("a/../b", what="x") == (tmp_path / "b").resolve()


def test_kustomize_dir_without_kustomization_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (tmp_path / "k").mkdir()
    options = BundleOptions.model_validate({"helm": {"chart": "."}, "kustomize": {"dir": "k"}})
    request = RenderRequest(
        tmp_path, tmp_path, options, ClusterContext("c"), options_file=tmp_path / "fleet.yaml"
    )
    with pytest.raises(FleetError, match=r"kustomize\.dir 'k' has no kustomization\.yaml"):
        render_bundle(request, FleetPlugins.load(entry_points=False))
