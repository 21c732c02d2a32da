"""`fleet rollout ...`: see and steer progressive delivery (fleet.rollout.tracker).

Every command reads the rollout records and writes the operators' controls in the store
the runtimes use (`fleet.runtime.rollout_store`): the Redis of `fleet serve` with
`--redis` or FLEET_REDIS_URL, else the `fleet-system/<fleet>.rollout` ConfigMaps of the
clusters of REPO's definition (what `fleet sync` uses without Redis).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleet.cli import FleetGroup, app, check_output
from fleet.cli.rollout_session import RolloutSession as _Session
from fleet.cli.rollout_session import rollout_session as _session
from fleet.errors import FleetError, UserError

if TYPE_CHECKING:
    from fleet.rollout.record import BundleRollout, Controls
    from fleet.spec.loader import FleetRepo

rollout_app = typer.Typer(
    cls=FleetGroup,  # its unset --help imports no pydantic either
    help="See and steer progressive delivery: status, pause, resume, abort, approve, "
    "rollback, wait. Every command reads and writes the rollout state of REPO's fleet where "
    "the runtime keeps it: `fleet serve`'s Redis with --redis or FLEET_REDIS_URL, else the "
    "clusters' fleet-system/<fleet>.rollout ConfigMaps (with their credentials, as "
    "`fleet sync`).",
    no_args_is_help=True,
)
app.add_typer(rollout_app, name="rollout")


RepoOption = Annotated[
    str,
    typer.Option("--repo", "-r", metavar="REPO", help="The fleet repository (default: .)."),
]
RedisOption = Annotated[
    str | None,
    typer.Option("--redis", metavar="URL", help="`fleet serve`'s Redis (else FLEET_REDIS_URL)."),
]


def _record(session: _Session, bundle: str) -> BundleRollout:
    found = session.store.records().get(bundle)
    if found is None:
        known = ", ".join(sorted(session.store.records())) or "none"
        raise UserError(f"no rollout record for bundle {bundle!r} (bundles with one: {known})")
    return found


# ---------------------------------------------------------------------- status


@rollout_app.command("status")
def status_command(
    bundle: Annotated[str | None, typer.Argument(metavar="BUNDLE")] = None,
    repo: RepoOption = ".",
    redis: RedisOption = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
) -> None:
    """Each bundle's rollout (or BUNDLE's): its revision, outcome, waves, and which gate
    waits on what with the values it measured; -o json adds the operators' controls."""
    from fleet.status.rollouts import status_lines

    check_output(output)
    with _session(repo, redis) as session:
        records = session.store.records()
        controls = session.store.controls()
    chosen = [records[b] for b in sorted(records) if bundle in (None, b)]
    if bundle is not None and not chosen:
        raise UserError(f"no rollout record for bundle {bundle!r}")
    if output == "json":
        payload: list[dict[str, Any]] = []
        for found in chosen:
            control = controls.get(found.bundle)
            payload.append({**found.to_json(), "controls": control.to_json() if control else {}})
        typer.echo(json.dumps(payload, indent=2, sort_keys=True))
        return
    for line in status_lines(chosen, controls) or ["no rollout records"]:
        typer.echo(line)


# ---------------------------------------------------------------------- controls


@rollout_app.command("pause")
def pause_command(
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE")],
    reason: Annotated[str, typer.Option("--reason", help="Shown in the waiting units.")] = "",
    repo: RepoOption = ".",
    redis: RedisOption = None,
) -> None:
    """Dispatch nothing more of BUNDLE, whatever the commit (what runs keeps running; the
    waiting units show --reason), until `fleet rollout resume`."""

    def change(control: Controls) -> None:
        control.paused, control.reason = True, reason

    with _session(repo, redis) as session:
        session.store.update_control(bundle, change)
    typer.echo(f"{bundle}: paused")


@rollout_app.command("resume")
def resume_command(
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE")],
    repo: RepoOption = ".",
    redis: RedisOption = None,
) -> None:
    """Undo `pause`; a rollout that failed without a rollback, or halted on an
    inconclusive gate, is verified again from its first wave."""

    def change(control: Controls) -> None:
        control.paused, control.reason, control.resumed_at = False, "", time.time()

    with _session(repo, redis) as session:
        session.store.update_control(bundle, change)
    typer.echo(f"{bundle}: resumed")


@rollout_app.command("abort")
def abort_command(
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE")],
    repo: RepoOption = ".",
    redis: RedisOption = None,
) -> None:
    """Stop BUNDLE's current revision where it is: no later wave and no retry gets it
    until a commit changes the bundle; nothing is rolled back (`rollback` does that)."""
    with _session(repo, redis) as session:
        revision = _record(session, bundle).revision

        def change(control: Controls) -> None:
            if revision not in control.aborted:
                control.aborted = [*control.aborted, revision][-20:]

        session.store.update_control(bundle, change)
    typer.echo(f"{bundle}: revision {revision} aborted")


@rollout_app.command("approve")
def approve_command(
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE")],
    wave: Annotated[str, typer.Option("--wave", "-w", metavar="W", help="The wave to approve.")],
    repo: RepoOption = ".",
    redis: RedisOption = None,
) -> None:
    """Pass the `approval` gate of wave W for BUNDLE's current revision: the next
    `fleet sync` (or `fleet serve`'s next tick) goes on. Only a wave the rollout reached."""
    with _session(repo, redis) as session:
        found = _record(session, bundle)
        if wave not in found.waves:
            known = ", ".join(found.waves) or "none verified yet"
            raise UserError(f"{bundle}: no wave {wave!r} in revision {found.revision} ({known})")

        def change(control: Controls) -> None:
            approved = set(control.approved.get(found.revision, [])) | {wave}
            control.approved = {found.revision: sorted(approved)}

        session.store.update_control(bundle, change)
    typer.echo(f"{bundle}: wave {wave} approved for revision {found.revision}")


@rollout_app.command("rollback")
def rollback_command(
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="REVISION",
            help="A commit (prefix) or a history "
            "number; default: each cluster's previous good revision.",
        ),
    ] = None,
    clusters: Annotated[
        list[str] | None,
        typer.Option("--cluster", "-c", metavar="C", help="Only these clusters (repeatable)."),
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Recorded with the rollback.")
    ] = "by hand",
    repo: RepoOption = ".",
    redis: RedisOption = None,
) -> None:
    """On every cluster that runs the commit's revision of BUNDLE (or on --cluster), go
    back from what that cluster runs to its previous good revision, or to --to: the exact
    manifests from its history, nothing rendered. BUNDLE's current revision is then held
    until a commit changes the bundle. Needs the clusters' credentials (as `fleet sync`
    does); exit 1 when a cluster could not be rolled back."""
    with _session(repo, redis) as session:
        from fleet.rollout.record import revision_of

        wanted = _desired_ids(session.repo, bundle)
        revision = revision_of(wanted.values())
        results = _roll_back(session, bundle, to, set(clusters or ()), reason, wanted)

        def change(control: Controls) -> None:
            control.rolled_back = {**control.rolled_back, revision: reason}

        if any(ok for ok, _ in results.values()):
            session.store.update_control(bundle, change)
    failed = False
    for cluster, (ok, message) in sorted(results.items()):
        typer.echo(f"{cluster}/{bundle}: {message}", err=not ok)
        failed = failed or not ok
    if not results:
        raise UserError(f"bundle {bundle!r} runs on no reachable cluster: nothing rolled back")
    if failed:
        raise typer.Exit(1)


def _roll_back(
    session: _Session,
    bundle: str,
    to: str | None,
    only: set[str],
    reason: str,
    wanted: dict[str, str],
) -> dict[str, tuple[bool, str]]:
    """cluster -> (done, one line) for each cluster rolled back: those of `only`, else
    every cluster that runs the commit's revision of the bundle (`wanted`: cluster -> its
    deployment id; a cluster the rollout did not reach yet keeps what it runs). The
    history records the rollout revision held from now on, so a runtime that lost its
    records still holds it (`fleet.rollout.rebuild`)."""
    from fleet.rollout.record import revision_of

    revision = revision_of(wanted.values())
    from fleet import config, engine
    from fleet.engine.inventory import read_inventory
    from fleet.engine.kube import ClusterConnection
    from fleet.runtime.clusters import ClusterSet

    fleet = session.repo.definition.name
    specs = [c for c in session.repo.definition.clusters if not only or c.name in only]
    unknown = only - {c.name for c in specs}
    if unknown:
        raise UserError(f"no cluster {sorted(unknown)[0]!r} in the definition")
    clusters = session.clusters
    own = clusters is None
    if clusters is None:
        clusters = ClusterSet(specs, retries=1, backoff=0.5)
        clusters.connect(config.current().env)
    results: dict[str, tuple[bool, str]] = {}
    try:
        for spec in specs:
            link = clusters.links[spec.name]
            if link.down is not None:
                results[spec.name] = (False, f"not reached: {link.down}")
                continue

            def one(conn: ClusterConnection) -> tuple[bool, str] | None:
                current = read_inventory(conn, bundle, fleet).current
                if current is None:
                    return None  # not deployed here
                if not only and current.deployment_id != wanted.get(conn.name):
                    return None  # runs another revision: not this rollout's to undo
                number = _revision_number(conn, bundle, fleet, to)
                result = engine.rollback(conn, bundle, fleet, to=number,
                                         reason=f"fleet rollout rollback: {reason}",
                                         details={"revision": revision})  # fmt: skip
                return (result.state.value != "ErrApplied",
                        f"rolled back to {result.deployment_id[:12]} "
                        f"({result.commit[:12]}): {result.state.value}")  # fmt: skip

            try:
                found = link.call(f"rollback {bundle}", one)
            except FleetError as err:
                results[spec.name] = (False, err.reason)
                continue
            if found is not None:
                results[spec.name] = found
    finally:
        if own:
            clusters.close()
    return results


def _revision_number(conn: Any, bundle: str, fleet: str, to: str | None) -> int | None:
    """--to as this cluster's history number: itself when it is a number, else the
    latest revision of that commit."""
    from fleet import engine

    if to is None:
        return None
    if to.isdigit() and len(to) < 7:
        return int(to)
    matches = [r for r in engine.list_revisions(conn, bundle, fleet) if r.commit.startswith(to)]
    if not matches:
        raise UserError(f"{conn.name}: no revision of {bundle} at commit {to!r} in its history")
    return max(matches, key=lambda r: r.sequence).number


@rollout_app.command("wait")
def wait_command(
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE")],
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout", metavar="DURATION", help="Give up after this long (exit 2): 30s, 10m, 1h."
        ),
    ] = "10m",
    repo: RepoOption = ".",
    redis: RedisOption = None,
) -> None:
    """Wait until BUNDLE's rollout of REPO's commit is decided: exit 0 succeeded; 1
    failed, halted, rolled back (by its gates or by hand) or aborted; 2 not decided within
    --timeout."""
    from fleet.rollout import record as rec
    from fleet.spec.definition import parse_duration
    from fleet.status.rollouts import stopped_by_hand

    try:
        limit = parse_duration(timeout)
    except ValueError as err:
        raise UserError(f"--timeout: {err}") from None
    deadline = time.monotonic() + limit
    with _session(repo, redis) as session:
        revision = _desired_revision(session.repo, bundle)
        while True:
            found = session.store.records().get(bundle)
            if found is not None and found.revision == revision and found.finished:
                typer.echo(f"{bundle}: {found.outcome}: {found.message}")
                raise typer.Exit(0 if found.outcome == rec.SUCCEEDED else 1)
            if found is not None and revision in found.rejected:
                typer.echo(f"{bundle}: {rec.ROLLED_BACK}: {found.rejected[revision]}")
                raise typer.Exit(1)
            stopped = stopped_by_hand(session.store.controls().get(bundle), revision)
            if stopped is not None:
                typer.echo(f"{bundle}: {stopped}")
                raise typer.Exit(1)
            if time.monotonic() >= deadline:
                state = found.outcome if found is not None and found.revision == revision else (
                    "not started")  # fmt: skip
                typer.echo(f"{bundle}: still {state} after {timeout}", err=True)
                raise typer.Exit(2)
            time.sleep(1.0)


def _desired_ids(repo: FleetRepo, bundle: str) -> dict[str, str]:
    """cluster -> the deployment id REPO's commit gives BUNDLE there."""
    from fleet.desired import targeted_units
    from fleet.plugin.manager import FleetPlugins

    plugins = FleetPlugins.load()
    plugins.raise_for_failures()
    units = targeted_units(repo, plugins)
    found = {u.cluster: u.deployment_id for u in units if u.bundle == bundle}
    if not found:
        raise UserError(f"bundle {bundle!r} is deployed to no cluster at this commit")
    return found


def _desired_revision(repo: FleetRepo, bundle: str) -> str:
    from fleet.rollout.record import revision_of

    return revision_of(_desired_ids(repo, bundle).values())
