"""`fleet images scan`: what every image policy of the definition picks now;
`fleet images update`: the same scan, and the changed markers committed back to Git.

One scan, as `fleet serve` does it (`fleet.images.scan.scan_policies`): each repository's
tags listed once through the definition's `registries` and the worker-side credentials of
this process's environment. Nothing is written: markers and commits are the write-back's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleet import config
from fleet.cli import FleetGroup, app, check_output
from fleet.cli.definition_cmds import RepoDir, _relative
from fleet.errors import FleetError, UserError

if TYPE_CHECKING:
    from fleet.plugin.manager import FleetPlugins
    from fleet.spec.loader import FleetRepo

images_app = typer.Typer(
    cls=FleetGroup,  # its unset --help imports no pydantic either
    name="images",
    help="Image policies: which tag each one picks, what every cluster runs, and the "
    "updates committed to Git. Without a command: `fleet images show` of the current "
    "directory (`fleet images show -o json` for JSON).",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(images_app, name="images")

OutputOpt = Annotated[
    str,
    typer.Option("--output", "-o", metavar="FORMAT", help="table (default) or json."),
]


@images_app.callback()
def images_overview(ctx: typer.Context) -> None:
    """Without a command: what `fleet images show .` prints. (No options here: a group
    option would make every subcommand's --help import pydantic; `show -o json`.)"""
    if ctx.invoked_subcommand is None:
        show_command(".", None, "table")


@images_app.command("show")
def show_command(
    source: Annotated[
        str,
        typer.Argument(metavar="[SOURCE]", help="A checkout or a Git URL (default: .)."),
    ] = ".",
    branch: Annotated[
        str | None, typer.Option("--branch", metavar="BRANCH", help="The branch of a URL.")
    ] = None,
    output: OutputOpt = "table",
) -> None:
    """For every image policy: the tag (and digest) it picks now, and on every cluster
    which tag and digest each workload fleet deployed runs, `behind` when not the newest.

    Reads Deployments, StatefulSets, DaemonSets, Jobs and CronJobs labelled with this
    fleet on each cluster (the operator's cluster credentials, as `fleet status`); the
    digest comes from an `@sha256:` pin, else a running Pod's imageID, else "-". Exit 1
    when a policy's scan failed or a cluster could not be read.
    """
    from fleet.runtime.image_view import images_view
    from fleet.status.model import format_table

    check_output(output)
    try:
        view = images_view(source, branch=branch)
    except FleetError as err:
        raise _relative(err, Path(source) if Path(source).is_dir() else None) from None
    if output == "json":
        payload = {
            "commit": view.commit,
            "policies": [p.to_json() for p in view.policies],
            "unreachable": view.down,
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        header = ["POLICY", "NEWEST", "CLUSTER", "WORKLOAD", "TAG", "DIGEST", ""]
        table = []
        for p in view.policies:
            newest = p.tag or f"error: {p.error}"
            if not p.running:
                table.append([p.policy, newest, "-", "-", "-", "-", ""])
            for r in p.running:
                mark = "behind" if p.behind(r) else ""
                where = f"{r.workload} [{r.container}]"
                table.append(
                    [p.policy, newest, r.cluster, where, r.tag or "-", _short(r.digest), mark]
                )
        for cluster, why in sorted(view.down.items()):
            table.append(["-", "-", cluster, f"unreachable: {why}", "-", "-", ""])
        typer.echo(format_table(header, table), nl=False)
    if view.down or any(p.error for p in view.policies):
        raise typer.Exit(1)


def _load_checked(repo_dir: Path) -> tuple[FleetRepo, FleetPlugins]:
    """The definition of `repo_dir` with its image policies checked (one line per error)."""
    from fleet.images.checks import check_image_policies
    from fleet.plugin.manager import FleetPlugins
    from fleet.spec.loader import load_repository

    try:
        repo = load_repository(repo_dir)
        plugins = FleetPlugins.load()
        check_image_policies(repo, plugins)
    except FleetError as err:
        raise _relative(err, repo_dir) from None
    return repo, plugins


def _short(digest: str | None) -> str:
    return digest[:19] if digest else "-"


@images_app.command("scan")
def scan_command(
    repo_dir: RepoDir = Path("."),
    output: Annotated[
        str,
        typer.Option("--output", "-o", metavar="FORMAT", help="table (default) or json."),
    ] = "table",
) -> None:
    """Scan every image policy of the definition once and print its choice.

    One row per policy: its repository, the tag it picks, the digest (with `digest:
    true`) and, when it picked nothing, why. Exit 1 when any policy failed (a registry
    down or refusing, no tag matching); the other policies are still scanned.
    """
    from fleet.images.scan import scan_policies
    from fleet.registry.access import Registries
    from fleet.status.model import format_table

    check_output(output)
    repo, plugins = _load_checked(repo_dir)
    registries = Registries(repo.definition.registries, plugins)
    try:
        result = scan_policies(repo.definition, registries)
    finally:
        registries.close()
    rows = []
    for spec in repo.definition.image_policies:
        choice = result.choices.get(spec.name)
        rows.append(
            {
                "policy": spec.name,
                "repository": spec.image,
                "tag": choice.tag if choice else None,
                "digest": choice.digest if choice else None,
                "error": result.errors.get(spec.name),
            }
        )
    if output == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        header = ["POLICY", "REPOSITORY", "TAG", "DIGEST", "ERROR"]
        table = [
            [str(r["policy"]), str(r["repository"]), r["tag"] or "-", r["digest"] or "-",
             r["error"] or ""]
            for r in rows
        ]  # fmt: skip
        typer.echo(format_table(header, table), nl=False)
    if not result.ok:
        raise typer.Exit(1)


@images_app.command("update")
def update_command(
    repo_dir: RepoDir = Path("."),
    repo_url: Annotated[
        str | None,
        typer.Option(
            "--repo-url",
            metavar="URL",
            help="The Git repository to commit to (default: FLEET_REPO_URL, else the "
            "checkout's origin remote).",
        ),
    ] = None,
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch",
            metavar="BRANCH",
            help="The branch to update when imageUpdates.branch is unset (default: the "
            "checkout's current branch).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the marker changes; clone, commit and push nothing."),
    ] = False,
) -> None:
    """Scan every image policy once and commit the changed markers back to Git.

    What `fleet serve` does every `imageUpdates.interval`, as one shot (cron, embedded
    users): the markers under `imageUpdates.paths` of the branch are rewritten to the
    tags the policies pick, committed with `imageUpdates.author` and pushed (to
    `imageUpdates.pushBranch` when set). The definition is read from REPO (a checkout);
    the commit is made in a fresh clone of the repository URL, never in REPO. Prints one
    `path:line policy old -> new` per change. Exit 1 when a policy failed (its markers
    stay as they are; the others are still updated).
    """
    from fleet.images import update

    repo, plugins = _load_checked(repo_dir)
    definition = repo.definition
    result = update.scan(definition, plugins)
    for reason in result.errors.values():
        typer.echo(f"error: {reason}", err=True)
    if dry_run:
        done = update.dry_run(definition, result, repo_dir)
    else:
        url = (
            repo_url
            or config.current().repo_url
            or _git_out(repo_dir, "remote", "get-url", "origin")
        )
        if not url:
            raise UserError("no repository to commit to: give --repo-url or set FLEET_REPO_URL")
        target = update.update_branch(
            definition, branch or _git_out(repo_dir, "rev-parse", "--abbrev-ref", "HEAD")
        )
        done = update.write_choices(definition, result, url, target)
    for warning in done.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for change in done.changes:
        typer.echo(f"{change.path}:{change.line} {change.policy} {change.old} -> {change.new}")
    if dry_run:
        typer.echo(f"{len(done.changes)} marker changes (dry run: nothing committed)")
    elif done.commit:
        typer.echo(f"committed {done.commit[:12]} to {done.branch}")
    else:
        typer.echo("no marker changes: nothing committed")
    if not result.ok:
        raise typer.Exit(1)


def _git_out(repo_dir: Path, *args: str) -> str | None:
    """One line of `git -C REPO ARGS`, or None when REPO is no checkout (or git fails)."""
    from fleet.process import run_tool

    try:
        done = run_tool(["git", "-C", str(repo_dir), *args], what="git", timeout=30)
    except FleetError:
        return None
    text = done.stdout.decode(errors="replace").strip()
    return text if done.returncode == 0 and text else None
