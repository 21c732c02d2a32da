"""`fleet events`: what fleet changed, where and why (see fleet.runtime.event_reader)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleet.cli import app, check_output
from fleet.errors import FleetError

if TYPE_CHECKING:
    from fleet.events.model import Event


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    from fleet.spec.definition import parse_duration

    try:
        return time.time() - parse_duration(text)
    except ValueError:
        raise FleetError(f"--since must be a duration like 30s, 15m or 2h, not {text!r}") from None


def _line(event: Event, output: str) -> str:
    if output == "json":
        return json.dumps(event.to_json(), sort_keys=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.time))
    where = "/".join(p for p in (event.cluster, event.bundle) if p) or "-"
    commit = event.commit[:12] or "-"
    return f"{stamp}  {event.type.value:<19} {event.level.value:<7} {where:<30} {commit:<12}  " + (
        event.message
    )


@app.command("events")
def events_command(
    source: Annotated[
        str,
        typer.Argument(
            metavar="[REPO]",
            help="Embedded mode: the repository whose clusters' Kubernetes Events to read "
            "(when neither --redis/FLEET_REDIS_URL nor --file is given).",
        ),
    ] = ".",
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events (Redis or --file).")
    ] = False,
    bundle: Annotated[
        str | None, typer.Option("--bundle", metavar="B", help="Only this bundle's events.")
    ] = None,
    cluster: Annotated[
        str | None, typer.Option("--cluster", "-c", metavar="C", help="Only this cluster's.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DURATION", help="Only newer events: 30s, 15m, 1h."),
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FORMAT", help="table or json (JSON lines).")
    ] = "table",
    file: Annotated[
        Path | None,
        typer.Option("--file", metavar="FILE", help="Read a `fleet sync --events FILE` log."),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option("--redis", metavar="URL", help="Read the stream of `fleet serve`'s Redis."),
    ] = None,
    fleet: Annotated[
        str | None,
        typer.Option("--fleet", metavar="NAME", help="Which fleet's stream (default: the only)."),
    ] = None,
) -> None:
    """Every change fleet made, oldest first: commits detected or rejected, units applied,
    failed or pruned, bundles removed, drift, clusters unreachable, rollouts.

    Reads the fleet's Redis stream (distributed: --redis or FLEET_REDIS_URL), a
    `fleet sync --events` file (--file), or else the Kubernetes Events fleet recorded in
    fleet-system of every cluster of REPO's definition (Kubernetes keeps them about an
    hour). -o json prints one JSON object per line.
    """
    from fleet import config
    from fleet.runtime import event_reader as reader

    check_output(output)
    keep = reader.EventFilter(bundle, cluster, _since(since))
    settings = config.current()
    url = redis or (settings.redis_url if settings.redis_configured else None)
    if file is not None:
        events = reader.follow_file(file, keep) if follow else iter(reader.read_file(file, keep))
    elif url:
        log = reader.redis_fleet(url, fleet)
        events = reader.follow_redis(log, keep) if follow else reader.read_redis(log, keep)
        events = reader.redis_errors(events, url)
    else:
        if follow:
            raise FleetError("-f needs the Redis stream (--redis) or a --file to follow")
        found, down = reader.read_clusters(source, keep)
        for name, why in sorted(down.items()):
            typer.echo(f"warning: cluster {name}: events not read ({why})", err=True)
        events = iter(found)
    if output == "table":
        typer.echo(f"{'TIME':<20}  {'TYPE':<19} {'LEVEL':<7} {'CLUSTER/BUNDLE':<30} "
                   f"{'COMMIT':<12}  MESSAGE")  # fmt: skip
    try:
        for event in events:
            typer.echo(_line(event, output))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
