"""`fleet images scan`: what every image policy of the definition picks now;
`fleet images update`: the same scan, and the changed markers committed back to Git.

One scan, as `fleet serve` does it (`fleet.images.scan.scan_policies`): each repository's
tags listed once through the definition's `registries` and the worker-side credentials of
this process's environment. Nothing is written: markers and commits are the write-back's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleet import config
from fleet.cli import FleetGroup, app, check_output
from fleet.cli.definition_cmds import RepoDir, _relative
from fleet.errors import FleetError, UserError

if TYPE_CHECKING:
    from fleet.cli.rollout_session import RolloutSession
    from fleet.images.model import ImageChoice
    from fleet.images.scan import ScanResult
    from fleet.images.update import UpdateResult
    from fleet.images.writeback import Planner
    from fleet.plugin.manager import FleetPlugins
    from fleet.rollout.record import BundleRollout, Controls
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
RedisOpt = Annotated[
    str | None,
    typer.Option(
        "--redis",
        metavar="URL",
        help="`fleet serve`'s Redis, for the rollout records of `promotion: waves` "
        "policies (else FLEET_REDIS_URL, else the clusters' rollout ConfigMaps).",
    ),
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
    redis: RedisOpt = None,
) -> None:
    """For every image policy: the tag (and digest) it picks now, and on every cluster
    which tag and digest each workload fleet deployed runs, `behind` when not the newest.
    For a `promotion: waves` policy, one `promotion:` line per bundle: the wave its tag
    is at and what the next one waits for (the rollout records, as `fleet rollout status`).

    Reads Deployments, StatefulSets, DaemonSets, Jobs and CronJobs labelled with this
    fleet on each cluster (the operator's cluster credentials, as `fleet status`); the
    digest comes from an `@sha256:` pin, else a running Pod's imageID, else "-". Exit 1
    when a policy's scan failed or a cluster could not be read.
    """
    from fleet.cli.rollout_session import rollout_session
    from fleet.runtime.image_view import images_view
    from fleet.status.model import format_table

    check_output(output)
    with contextlib.ExitStack() as stack:

        def records() -> tuple[Mapping[str, BundleRollout], Mapping[str, Controls]]:
            store = stack.enter_context(rollout_session(source, redis)).store
            return store.records(), store.controls()

        try:
            view = images_view(source, branch=branch, records=records)
        except FleetError as err:
            raise _relative(err, Path(source) if Path(source).is_dir() else None) from None
    if output == "json":
        payload = {
            "commit": view.commit,
            "policies": [p.to_json() for p in view.policies],
            "unreachable": view.down,
            "promotion": view.promotion,
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
        for line in view.promotion:
            typer.echo(f"promotion: {line}")
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
    redis: RedisOpt = None,
) -> None:
    """Scan every image policy once and commit the changed markers back to Git.

    What `fleet serve` does every `imageUpdates.interval`, as one shot (cron, embedded
    users): the markers under `imageUpdates.paths` of the branch are rewritten to the
    tags the policies pick, committed with `imageUpdates.author` and pushed (to
    `imageUpdates.pushBranch` when set). The definition is read from REPO (a checkout);
    the commit is made in a fresh clone of the repository URL, never in REPO. Prints one
    `path:line policy old -> new` per change. Exit 1 when a policy failed (its markers
    stay as they are; the others are still updated).

    A policy with `promotion: waves` gets only the next wave's markers of each bundle
    rewritten, once the wave before passed in the rollout of the commit committed to
    (records from --redis, FLEET_REDIS_URL or the clusters, as `fleet rollout status`);
    one `promotion:` line per policy and bundle says where its tag is and what it waits
    for.
    """
    from fleet.images import update
    from fleet.images.writeback import change_line
    from fleet.runtime.image_promotion import promotion_lines

    repo, plugins = _load_checked(repo_dir)
    definition = repo.definition
    result = update.scan(definition, plugins)
    for reason in result.errors.values():
        typer.echo(f"error: {reason}", err=True)
    with contextlib.ExitStack() as stack:
        planner = _planner(repo_dir, redis, repo, plugins, result.choices, stack)
        done = _update(repo_dir, repo_url, branch, dry_run, repo, result, planner)
    for warning in done.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for change in done.changes:
        typer.echo(change_line(change))
    for line in promotion_lines(done.promotion):
        typer.echo(f"promotion: {line}")
    if dry_run:
        typer.echo(f"{len(done.changes)} marker changes (dry run: nothing committed)")
    elif done.commit:
        typer.echo(f"committed {done.commit[:12]} to {done.branch}")
    else:
        typer.echo("no marker changes: nothing committed")
    if not result.ok:
        raise typer.Exit(1)


def _update(
    repo_dir: Path,
    repo_url: str | None,
    branch: str | None,
    dry_run: bool,
    repo: FleetRepo,
    result: ScanResult,
    planner: Planner | None,
) -> UpdateResult:
    """The dry run on a copy of REPO, or the write-back to the repository's clone."""
    from fleet.images import update

    definition = repo.definition
    if dry_run:
        commit = _git_out(repo_dir, "rev-parse", "HEAD") or ""
        done = update.dry_run(definition, result, repo_dir, planner=planner, commit=commit)
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
        done = update.write_choices(definition, result, url, target, planner=planner)
    return done


def _planner(
    repo_dir: Path,
    redis: str | None,
    repo: FleetRepo,
    plugins: FleetPlugins,
    choices: Mapping[str, ImageChoice],
    stack: contextlib.ExitStack,
) -> Planner | None:
    """The promotion's planner (None: no policy promoted by waves). The commit it is
    asked about is loaded and targeted (its bundles' waves and revisions: a clone's, not
    REPO's, since that is what is committed to); the rollout store is opened on the first
    ask only, and closed with `stack`."""
    from fleet.cli.rollout_session import rollout_session
    from fleet.desired import targeted_units
    from fleet.runtime import image_promotion
    from fleet.spec.loader import load_repository

    opened: list[RolloutSession] = []

    def context(checkout: Path, commit: str) -> image_promotion.Context:
        if not opened:
            opened.append(stack.enter_context(rollout_session(str(repo_dir), redis)))
        store = opened[0].store
        try:
            target = load_repository(checkout)
            units = targeted_units(target, plugins, commit)
        except FleetError as err:
            raise FleetError(
                f"the commit to promote on ({commit[:12] or 'the checkout'}) does not load: "
                f"{err.problems[0] if err.problems else err.reason}"
            ) from None
        return image_promotion.Context(target, units, store.records(), store.controls())

    return image_promotion.planner(repo.definition, choices, context)


def _git_out(repo_dir: Path, *args: str) -> str | None:
    """One line of `git -C REPO ARGS`, or None when REPO is no checkout (or git fails)."""
    from fleet.process import run_tool

    try:
        done = run_tool(["git", "-C", str(repo_dir), *args], what="git", timeout=30)
    except FleetError:
        return None
    text = done.stdout.decode(errors="replace").strip()
    return text if done.returncode == 0 and text else None
