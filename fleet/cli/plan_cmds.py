"""`fleet plan`: what a change does on every cluster, from two commits, no cluster needed.

Thin: resolve the two commits (`fleet.source.local.resolve_commits`), load and target both
(`fleet.desired.DesiredState`, one shared render cache), `fleet.plan.compute.compute_plan`,
print in the chosen format. Exit codes: 0; with `--exit-code` 0 no change, 1 changes,
2 error (a broken head commit: one `path:line: message` line per problem on stderr).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fleet.cli import app, print_problems
from fleet.errors import FleetError

if TYPE_CHECKING:
    from fleet.plan.model import FleetPlan

FORMATS = ("text", "json", "markdown")


@app.command("plan")
def plan_command(
    repo: Annotated[
        str,
        typer.Argument(
            metavar="REPO",
            help="The fleet repository: a local Git clone (refs resolved there, no fetch) "
            "or a Git URL.",
        ),
    ] = ".",
    base: Annotated[
        str,
        typer.Option(
            "--base", metavar="REF", help="The commit the change starts from, e.g. origin/main."
        ),
    ] = "",
    head: Annotated[
        str,
        typer.Option("--head", metavar="REF", help="The commit to plan, e.g. the pull request's."),
    ] = "HEAD",
    output: Annotated[
        str,
        typer.Option("--output", "-o", metavar="FORMAT", help="text (default), json or markdown."),
    ] = "text",
    exit_code: Annotated[
        bool,
        typer.Option("--exit-code", help="Exit 1 when something changes, 2 on error, 0 if not."),
    ] = False,
    cluster: Annotated[
        list[str] | None,
        typer.Option("--cluster", "-c", metavar="NAME", help="Only this cluster (repeatable)."),
    ] = None,
    bundle: Annotated[
        list[str] | None,
        typer.Option("--bundle", "-b", metavar="NAME", help="Only this bundle (repeatable)."),
    ] = None,
    selector: Annotated[
        str | None,
        typer.Option(
            "--selector",
            "-l",
            metavar="SELECTOR",
            help="Only clusters whose labels match, kubectl style: 'env=prod,region in (eu,us)'.",
        ),
    ] = None,
    max_chars: Annotated[
        int,
        typer.Option(
            "--max-chars",
            metavar="N",
            help="Markdown: keep the comment under N characters (GitHub's limit is 65536).",
        ),
    ] = 60_000,
) -> None:
    """What going from commit BASE to commit HEAD changes on every cluster, no cluster needed.

    Renders both commits completely (the render cache makes unchanged units free) and
    prints, per group of clusters with the same change: the bundle added, removed or
    changed, a unified diff of its rendered objects (fleet's labels and annotations left
    out, Secret values redacted), the rollout waves it falls in, then which clusters gain
    or lose a bundle and a summary line ("3 bundles change on 41 clusters in 3 waves").
    Needs no kubeconfig or cluster credential: run it in CI on pull requests. A head
    commit that does not load or render is reported as path:line problems (exit 2 with
    --exit-code, else 1).
    """
    try:
        if output not in FORMATS:
            raise FleetError(f"unknown output format {output!r} (use text, json or markdown)")
        if not base:
            raise FleetError("--base REF is required (the commit the change starts from)")
        plan = _plan(repo, base, head, cluster or [], bundle or [], selector)
    except FleetError as err:
        if exit_code:
            print_problems(err)
            raise typer.Exit(2) from None
        raise
    typer.echo(_format(plan, output, max_chars), nl=False)
    if exit_code:
        raise typer.Exit(1 if plan.changed else 0)


def _plan(
    repo: str, base: str, head: str, clusters: list[str], bundles: list[str], selector: str | None
) -> FleetPlan:
    from fleet.desired import DesiredState
    from fleet.plan.compute import PlanScope, compute_plan, relative_problems
    from fleet.plugin.manager import FleetPlugins
    from fleet.render.cache import RenderCache
    from fleet.source.git import cache_root
    from fleet.source.local import resolve_commits
    from fleet.spec.loader import load_repository

    plugins = FleetPlugins.load()
    plugins.raise_for_failures()
    checkouts = resolve_commits(repo, [base, head])
    cache = RenderCache(directory=cache_root() / "renders", max_entries=4096)
    states = []
    for side, checkout in zip(("base", "head"), checkouts, strict=True):
        try:
            loaded = load_repository(checkout.path)
            states.append(DesiredState.target(loaded, checkout.commit, plugins, cache=cache))
        except FleetError as err:
            raise relative_problems(err, checkout.path, checkout.commit, side) from None
    scope = PlanScope(tuple(clusters), tuple(bundles), selector)
    try:
        return compute_plan(states[0], states[1], scope)
    except FleetError as err:
        raise relative_problems(err, checkouts[1].path, checkouts[1].commit, "head") from None


def _format(plan: FleetPlan, output: str, max_chars: int) -> str:
    if output == "json":
        from fleet.plan.as_json import render_json

        return render_json(plan)
    if output == "markdown":
        from fleet.plan.as_markdown import render_markdown

        return render_markdown(plan, max_chars)
    from fleet.plan.as_text import render_text

    return render_text(plan)
