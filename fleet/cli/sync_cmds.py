"""`fleet sync`, `fleet diff`, `fleet status`: the embedded mode, one process, no Redis.

The table or JSON goes to stdout; progress lines go to stderr (a rich spinner on a
terminal, plain lines otherwise), so `fleet sync -o json | jq` works. Exit codes:
`sync` 0 only when every unit is Ready at its desired id; `diff --exit-code` 0 in sync,
1 something would change, 2 error; `status` 0 when every unit is Ready, else 1. User errors
(a broken commit, a missing credential) are one line each, file:line, and apply nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleet.cli import app, check_output, print_problems
from fleet.errors import FleetError

if TYPE_CHECKING:  # imported in the commands: `fleet --help` stays fast
    from fleet.runtime.embedded import Progress, SyncReport

SourceArg = Annotated[
    str,
    typer.Argument(
        metavar="SOURCE",
        help="The fleet repository: a local directory (used as it is, commit = its HEAD) "
        "or a Git URL (fetched into fleet's cache).",
        show_default=True,
    ),
]
BranchOpt = Annotated[
    str | None,
    typer.Option(
        "--branch", "-b", metavar="REF", help="Branch, tag or commit to sync (default: HEAD)."
    ),
]
ClusterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--cluster", "-c", metavar="NAME", help="Only this cluster of the definition (repeatable)."
    ),
]
OutputOpt = Annotated[
    str, typer.Option("--output", "-o", metavar="FORMAT", help="table (default) or json.")
]


@contextmanager
def _progress(enabled: bool = True) -> Iterator[Progress]:
    """Progress lines on stderr: a rich spinner on a terminal, plain lines otherwise."""
    if not enabled:
        yield lambda line: None
        return
    if not sys.stderr.isatty():
        yield lambda line: print(line, file=sys.stderr, flush=True)
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True)
    with console.status("fleet: starting") as spinner:

        def show(line: str) -> None:
            console.print(f"[dim]{escape(line)}[/dim]")
            spinner.update(f"fleet: {escape(line[:80])}")

        yield show


def _print(report: SyncReport, output: str) -> None:
    from fleet.status.model import render_json, render_table

    if output == "json":
        extra = {
            "source": report.source,
            "dryRun": report.dry_run,
            "writes": report.writes,
            "seconds": round(report.seconds, 2),
            "renders": report.renders,
            "unreachable": report.unreachable,
        }
        if report.dry_run:
            extra["diffs"] = {
                f"{cluster}/{bundle}": result.diff
                for (bundle, cluster), result in sorted(report.results.items())
                if result.diff
            }
        typer.echo(render_json(report.status, **extra), nl=False)
        return
    typer.echo(render_table(report.status), nl=False)
    if report.dry_run:
        outcome = "changes pending" if report.changed else "no changes"
    else:
        outcome = f"{report.writes} writes"
    typer.echo(f"{report.units} units, {report.renders} renders, {outcome}, {report.seconds:.1f}s")


@app.command("sync")
def sync_command(
    source: SourceArg = ".",
    branch: BranchOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show per cluster what would change (a diff); write nothing."
        ),
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="Apply without waiting for health; later rollout waves wait for the next sync.",
        ),
    ] = False,
    cluster: ClusterOpt = None,
    output: OutputOpt = "table",
    allow_mass_delete: Annotated[
        bool,
        typer.Option(
            "--allow-mass-delete",
            help="Go ahead when the commit would remove every bundle from a cluster or more "
            "than FLEET_MASS_DELETE_SHARE of the fleet's objects (stopped otherwise).",
        ),
    ] = False,
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis",
            metavar="URL",
            help="Lock units in this Redis, the one `fleet serve`'s workers use "
            "(default $FLEET_REDIS_URL; unset: a Lease in each cluster).",
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            "--events",
            metavar="FILE",
            help="Append every event of the pass (unit applied/failed/pruned, drift, "
            "removals, the rollout's result) to FILE as JSON lines; `fleet events --file` "
            "reads it.",
        ),
    ] = None,
    cluster_concurrency: Annotated[
        int | None,
        typer.Option(
            "--cluster-concurrency",
            min=1,
            metavar="N",
            help="Units applied at once on one cluster; independent bundles overlap, "
            "dependsOn and waves still order (default $FLEET_CLUSTER_CONCURRENCY, 8).",
        ),
    ] = None,
) -> None:
    """Make every cluster run what the repository says: one full pass in this process.

    Loads and renders every (bundle, cluster) unit first: a commit with any error is
    applied nowhere (each problem printed as file:line). Then reads what each cluster runs
    (its inventories), applies what differs in rollout-wave and dependsOn order (bundles
    that do not depend on each other concurrently, up to --cluster-concurrency per
    cluster), waits for health, removes bundles that left Git, and prints a status table
    (cluster x bundle: state, deployment id, commit, message). A commit that would remove
    every bundle from a cluster, or more than FLEET_MASS_DELETE_SHARE (0.5) of the fleet's
    objects, stops before anything is written unless --allow-mass-delete. Cluster
    credentials come from the environment (FLEET_KUBECONFIG_<NAME> or
    FLEET_CREDENTIALS_DIR; a kubeconfig.path must lie in FLEET_KUBECONFIG_DIR, default
    ~/.kube). Exit 0 only if every unit is Ready.

    Each unit written is locked first: in Redis when FLEET_REDIS_URL (or --redis) is set,
    the lock `fleet serve`'s workers take; otherwise a Lease in the cluster's fleet-system
    namespace. A unit another run or worker holds is not touched: it is reported
    "locked by <holder>" (WaitApplied) and the exit code is 1.
    """
    from fleet.runtime.embedded import sync_fleet

    check_output(output)
    with _progress() as progress:
        report = sync_fleet(
            source,
            branch=branch,
            dry_run=dry_run,
            wait=not no_wait,
            clusters=cluster or (),
            progress=progress,
            allow_mass_delete=allow_mass_delete,
            redis_url=redis,
            events_file=events,
            cluster_concurrency=cluster_concurrency,
        )
    if dry_run and output == "table":
        _print_diffs(report)
    _print(report, output)
    if not report.ok:
        raise typer.Exit(1)


def _print_diffs(report: SyncReport) -> None:
    by_cluster: dict[str, list[str]] = {}
    for (bundle, cluster), result in sorted(report.results.items()):
        if result.diff:
            by_cluster.setdefault(cluster, []).append(f"# bundle {bundle}\n{result.diff}")
    for (bundle, cluster), removed in sorted(report.removed.items()):
        by_cluster.setdefault(cluster, []).append(f"# bundle {bundle}: {removed.message}\n")
    for cluster, parts in sorted(by_cluster.items()):
        typer.echo(f"=== cluster {cluster}")
        typer.echo("".join(parts))


@app.command("diff")
def diff_command(
    source: SourceArg = ".",
    branch: BranchOpt = None,
    cluster: ClusterOpt = None,
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code",
            help="Exit 1 when something would change, 2 on error, 0 when in sync.",
        ),
    ] = False,
    output: OutputOpt = "table",
) -> None:
    """What `fleet sync` would change, per cluster, as a diff (Secret data redacted).

    Server-side dry runs only: nothing is written. Covers every unit whose deployment id
    differs from what its cluster runs (rollout order ignored), drift that correctDrift
    would undo, and bundles that would be removed.
    """
    from fleet.runtime.embedded import sync_fleet

    check_output(output)
    try:
        with _progress() as progress:
            report = sync_fleet(
                source, branch=branch, dry_run=True, clusters=cluster or (), progress=progress
            )
    except FleetError as err:
        if exit_code:
            print_problems(err)
            raise typer.Exit(2) from None
        raise
    if output == "table":
        _print_diffs(report)
        if not report.changed:
            typer.echo("no changes: the clusters run what Git says")
    _print(report, output)
    if exit_code:
        if not report.ok:
            raise typer.Exit(2)
        raise typer.Exit(1 if report.changed else 0)
    if not report.ok:
        raise typer.Exit(1)


@app.command("status")
def status_command(
    source: SourceArg = ".",
    branch: BranchOpt = None,
    cluster: ClusterOpt = None,
    output: OutputOpt = "table",
    tree: Annotated[
        bool,
        typer.Option(
            "--tree",
            help="Draw fleet > cluster group > cluster > bundle > objects, each object "
            "Ready or NotReady with the reason (a cluster in several groups is under each; "
            "clusters in none under '(no group)'). -o json adds each unit's objects.",
        ),
    ] = False,
    objects: Annotated[
        int,
        typer.Option(
            "--objects",
            min=0,
            metavar="N",
            help="With --tree: objects listed per unit, not-ready ones first; the rest are "
            "counted on one line.",
        ),
    ] = 10,
) -> None:
    """What the clusters run compared with what Git wants, rolled up per bundle, cluster
    and fleet.

    Reads each cluster's inventories, checks the health of every deployed object and
    compares them with what fleet would apply (server-side dry runs: objects edited by
    hand are Modified, deleted ones too). Writes nothing. Exit 0 when everything is Ready.
    With --tree, the objects are those of the units deployed at the id Git wants (one
    LIST per kind, as without it); other units show only their own line.
    """
    from fleet.runtime.live_status import fleet_status
    from fleet.status.model import render_json, render_table
    from fleet.status.tree import render_tree

    check_output(output)
    with _progress() as progress:
        status = fleet_status(
            source, branch=branch, clusters=cluster or (), progress=progress, objects=tree
        )
    if output == "json":
        extra = {"groups": status.groups} if tree else {}
        typer.echo(render_json(status, **extra), nl=False)
    else:
        typer.echo(render_tree(status, objects) if tree else render_table(status), nl=False)
    if not status.ready:
        raise typer.Exit(1)
