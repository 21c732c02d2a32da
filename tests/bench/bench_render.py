"""Render-dedupe benchmark: renders performed vs. deployment units (a script, not a test).

1,000 clusters labelled env=dev|staging|prod (round robin) x three bundles - raw YAML,
Kustomize and Helm, generated from local fixtures in a temporary directory - go through the
same path as `fleet render`: bundle loading, targeting per cluster (targetCustomizations by
env: three distinct merged option sets per bundle), then `render_bundle` with one shared
`RenderCache` keyed by the deployment id. Prints units, renders performed, cache hits and
time; the ideal is 3 renders per bundle. A bundle whose tool is not installed is skipped.

    python tests/bench/bench_render.py [--clusters 1000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from fleet.errors import FleetError
from fleet.plugin.manager import FleetPlugins
from fleet.render.api import RenderRequest
from fleet.render.cache import RenderCache
from fleet.render.pipeline import render_bundle, renderer_identity
from fleet.spec.cluster import ClusterContext
from fleet.spec.loader import load_bundle
from fleet.targeting.units import unit_for_cluster

ENVS = ("dev", "staging", "prod")

CUSTOMIZATIONS = """
targetCustomizations:
{entries}
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def customizations(body: str) -> str:
    entries = "".join(
        f"- name: {env}\n  clusterSelector: {{matchLabels: {{env: {env}}}}}\n"
        + textwrap.indent(body.format(env=env, replicas=i + 1), "  ")
        for i, env in enumerate(ENVS)
    )
    return CUSTOMIZATIONS.format(entries=entries.rstrip())


def make_fixtures(root: Path) -> dict[str, Path]:
    yaml_bundle = root / "config"
    for i in range(20):
        write(
            yaml_bundle / f"cm-{i:02d}.yaml",
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\ndata: {{k: v{i}}}\n",
        )
    write(yaml_bundle / "fleet.yaml", customizations("defaultNamespace: config-{env}\n"))

    kustomize_bundle = root / "guestbook"
    write(kustomize_bundle / "base" / "kustomization.yaml", "resources: [deployment.yaml]\n")
    write(
        kustomize_bundle / "base" / "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: guestbook}\nspec: {replicas: 1}\n",
    )
    for env in ENVS:
        write(
            kustomize_bundle / "overlays" / env / "kustomization.yaml",
            f"resources: [../../base]\nnamePrefix: {env}-\n",
        )
    write(kustomize_bundle / "fleet.yaml", customizations("kustomize: {{dir: overlays/{env}}}\n"))

    helm_bundle = root / "web"
    write(helm_bundle / "chart" / "Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
    write(helm_bundle / "chart" / "values.yaml", "replicas: 1\n")
    write(
        helm_bundle / "chart" / "templates" / "deployment.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: {{ .Release.Name }}}
        spec: {replicas: {{ .Values.replicas }}}
        """,
    )
    write(
        helm_bundle / "fleet.yaml",
        "helm: {chart: ./chart}\n" + customizations("helm: {{values: {{replicas: {replicas}}}}}\n"),
    )
    return {"yaml": yaml_bundle, "kustomize": kustomize_bundle, "helm": helm_bundle}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=1000)
    args = parser.parse_args()
    clusters = [
        ClusterContext(f"cluster-{i:04d}", {"env": ENVS[i % len(ENVS)], "region": f"r{i % 7}"})
        for i in range(args.clusters)
    ]
    plugins = FleetPlugins.load()
    plugins.raise_for_failures()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        root = Path(tmp)
        bundles = make_fixtures(root)
        print(f"render dedupe: {len(clusters)} clusters x {len(bundles)} bundles")
        print(f"{'bundle':<10} {'units':>6} {'renders':>8} {'hits':>6} {'seconds':>8}  ratio")
        total_units = total_renders = 0
        started_all = time.perf_counter()
        for kind, bundle_dir in bundles.items():
            tool = {"helm": "helm", "kustomize": "kustomize"}.get(kind)
            if tool and not (
                shutil.which(tool) or (tool == "kustomize" and shutil.which("kubectl"))
            ):
                print(f"{kind:<10} skipped: {tool} not installed")
                continue
            cache = RenderCache()
            started = time.perf_counter()
            try:
                bundle = load_bundle(bundle_dir, root)
                units = 0
                for cluster in clusters:
                    unit = unit_for_cluster(
                        bundle,
                        cluster,
                        renderer_of=lambda b: renderer_identity(plugins, b.path, b.options),
                    )
                    if unit is None:
                        continue
                    request = RenderRequest(
                        bundle_dir=bundle.path,
                        repo_root=root,
                        options=unit.options,
                        cluster=cluster,
                        options_file=bundle.options_file,
                        bundle_name=bundle.name,
                        cache_key=unit.deployment_id,
                    )
                    render_bundle(request, plugins, cache)
                    units += 1
            except FleetError as err:
                print(f"{kind:<10} failed: {err}", file=sys.stderr)
                return 1
            seconds = time.perf_counter() - started
            ratio = units / cache.misses if cache.misses else 0.0
            print(
                f"{kind:<10} {units:>6} {cache.misses:>8} {cache.hits:>6} {seconds:>8.2f}"
                f"  {ratio:.0f} units per render"
            )
            total_units += units
            total_renders += cache.misses
        seconds = time.perf_counter() - started_all
        print(f"{'total':<10} {total_units:>6} {total_renders:>8} {'':>6} {seconds:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
