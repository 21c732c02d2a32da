"""`fleet render`, `fleet plugins`: renderers and the plugin manager.

`fleet render` goes through exactly what a worker runs (bundle loading, targeting with
targetCustomizations and templating, the render pipeline with its cache), so what it prints
is what a cluster would get. `fleet plugins` shows what is installed and from where, and
exits 1 when a plugin failed to load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleet.cli import app, check_output
from fleet.errors import FleetError

if TYPE_CHECKING:  # imported in the commands: `fleet --help` stays fast
    from fleet.plugin.manager import FleetPlugins
    from fleet.spec.cluster import ClusterContext


@app.command("render")
def render_command(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="A bundle directory; with --cluster, a repository checkout with a root "
            "fleet.yaml (kind: Fleet).",
        ),
    ],
    cluster_name: Annotated[
        str, typer.Option("--cluster-name", metavar="NAME", help="Bundle mode: the cluster's name.")
    ] = "local",
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            "-l",
            metavar="KEY=VALUE",
            help="Bundle mode: a cluster label KEY=VALUE (repeatable).",
        ),
    ] = None,
    kube_version: Annotated[
        str | None,
        typer.Option(
            "--kube-version",
            metavar="VERSION",
            help="The cluster's Kubernetes version, e.g. 1.30.2.",
        ),
    ] = None,
    repo_root: Annotated[
        Path | None,
        typer.Option(
            "--repo-root",
            metavar="DIR",
            help="Bundle mode: nothing outside this directory is read (default: the "
            "enclosing Git checkout, else the bundle directory).",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster", "-c", metavar="NAME", help="Repository mode: a cluster of the definition."
        ),
    ] = None,
    bundle: Annotated[
        list[str] | None,
        typer.Option(
            "--bundle", "-b", metavar="NAME", help="Repository mode: only this bundle (repeatable)."
        ),
    ] = None,
) -> None:
    """Print the manifests a cluster would get, as multi-document YAML, in apply order.

    Bundle mode, `fleet render BUNDLE_DIR --cluster-name prod-1 -l env=prod`: the bundle's
    fleet.yaml merged for a cluster with that name and labels (targetCustomizations,
    values templating), no fleet definition needed. Repository mode,
    `fleet render REPO_DIR --cluster prod-1 [--bundle web]`: every bundle of the definition
    that targets that cluster. Nothing is applied and no cluster is contacted.
    """
    from fleet.plugin.manager import FleetPlugins
    from fleet.spec.cluster import ClusterContext

    plugins = FleetPlugins.load()
    plugins.raise_for_failures()
    if cluster is not None:
        documents = _render_repository(plugins, path, cluster, bundle or [], kube_version)
    else:
        labels = _parse_labels(label or [])
        context = ClusterContext(cluster_name, labels, kube_version)
        documents = _render_bundle_dir(plugins, path, context, repo_root)
    typer.echo("".join(documents), nl=False)


def _parse_labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FleetError(f"--label {item!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


def _render_bundle_dir(
    plugins: FleetPlugins, bundle_dir: Path, cluster: ClusterContext, repo_root: Path | None
) -> list[str]:
    from fleet.desired import render_request
    from fleet.render.manifests import dump_manifests
    from fleet.render.pipeline import render_bundle, renderer_identity
    from fleet.spec.loader import load_bundle
    from fleet.targeting.units import unit_for_cluster

    root = (repo_root or _enclosing_checkout(bundle_dir)).resolve()
    loaded = load_bundle(bundle_dir, root)
    unit = unit_for_cluster(
        loaded, cluster, renderer_of=lambda b: renderer_identity(plugins, b.path, b.options)
    )
    if unit is None:
        typer.echo(f"bundle {loaded.name} is not deployed to cluster {cluster.name}", err=True)
        return []
    request = render_request(root, loaded, unit, cluster)
    return [dump_manifests(render_bundle(request, plugins).manifests)]


def _render_repository(
    plugins: FleetPlugins, repo_dir: Path, cluster: str, only: list[str], kube_version: str | None
) -> list[str]:
    from fleet.desired import chart_pins, check_clusters, fleet_units, render_request
    from fleet.render.cache import RenderCache
    from fleet.render.manifests import dump_manifests
    from fleet.render.pipeline import render_bundle
    from fleet.spec.definition import cluster_context
    from fleet.spec.loader import load_repository

    repo = load_repository(repo_dir)
    check_clusters(repo, [cluster])
    bundles = {b.name: b for b in repo.bundles}
    for name in only:
        if name not in bundles:
            raise FleetError(f"no bundle {name!r} in the repository")
    context = cluster_context(next(c for c in repo.definition.clusters if c.name == cluster))
    if kube_version:
        context = type(context)(**{**context.__dict__, "kube_version": kube_version})
    pins = chart_pins(repo, plugins)
    units = fleet_units(repo, plugins, pins)
    cache = RenderCache()
    documents = []
    for unit in units:
        if unit.cluster != cluster or (only and unit.bundle not in only):
            continue
        request = render_request(
            repo.root,
            bundles[unit.bundle],
            unit,
            context,
            registries=repo.definition.registries,
            chart_versions=pins.versions(bundles[unit.bundle]),
        )
        result = render_bundle(request, plugins, cache)
        documents.append(f"# bundle: {unit.bundle}\n" + dump_manifests(result.manifests))
    return documents


def _enclosing_checkout(path: Path) -> Path:
    """The nearest directory above `path` holding `.git`, else `path` itself."""
    start = path.resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return start


@app.command("plugins")
def plugins_command(
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FORMAT", help="table (default) or json.")
    ] = "table",
) -> None:
    """List loaded plugins (origin: builtin or the installed distribution), their hooks,
    the renderers they provide (which helm/kustomize binary) and plugins that failed to load.

    Exits 1 when a plugin failed to load or two plugins claim one renderer name.
    """
    check_output(output)
    from fleet.plugin.manager import FleetPlugins
    from fleet.status.model import format_table

    plugins = FleetPlugins.load()
    renderers: list[dict[str, Any]] = []
    problems = [str(failed) for failed in plugins.failed]
    try:
        for entry in plugins.renderers():
            describe = getattr(entry.renderer, "describe", None)
            renderers.append(
                {
                    "name": entry.renderer.name,
                    "plugin": entry.plugin,
                    "replaces": entry.replaced,
                    "details": str(describe()) if callable(describe) else "",
                }
            )
    except FleetError as err:
        problems.extend(str(p) for p in err.problems)
    infos = plugins.plugins()
    if output == "json":
        data = {
            "plugins": [
                {"name": i.name, "origin": i.origin, "hooks": list(i.hooks)} for i in infos
            ],
            "renderers": renderers,
            "failed": [
                {"name": f.name, "origin": f.origin, "error": f.error} for f in plugins.failed
            ],
            "problems": problems,
        }
        typer.echo(json.dumps(data, indent=2))
    else:
        plugin_rows = [[i.name, i.origin, ", ".join(i.hooks)] for i in infos]
        typer.echo(format_table(["PLUGIN", "ORIGIN", "HOOKS"], plugin_rows))
        renderer_table = format_table(
            ["RENDERER", "PLUGIN", "DETAILS"],
            [
                [
                    r["name"],
                    r["plugin"] + (f" (replaces {r['replaces']})" if r["replaces"] else ""),
                    r["details"],
                ]
                for r in renderers
            ],
        )
        typer.echo(renderer_table, nl=False)
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
