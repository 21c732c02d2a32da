"""`fleet explain BUNDLE --cluster C`: why one unit is in its state (`fleet.runtime.explain`).

Read-only: the repository, the clusters' inventories, a live look at the unit's objects,
the planner's waiting reason, the bundle's rollout record and the unit's last events (the
fleet's Redis stream in the distributed mode, else Kubernetes Events). Exit 0 when the
unit is Ready, 1 otherwise; an unknown bundle or cluster is one line, exit 1.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleet.cli import app, check_output

if TYPE_CHECKING:
    from fleet.runtime.explain import Explanation


def _render(found: Explanation, max_objects: int) -> str:
    from fleet.status.model import one_line

    row = found.row
    lines = [
        f"bundle {row.bundle} on cluster {row.cluster}: {row.state.value}",
        f"  message:    {row.message or '-'}",
        f"  desired:    {row.deployment_id[:12] or '-'}",
        f"  running:    {found.running_id[:12] or '(nothing)'} at commit {row.commit[:12] or '-'}",
        f"  wave:       {row.wave or '-'}",
        f"  waits for:  {found.waiting or 'nothing'}",
        f"  next sync:  {found.next_step}",
    ]
    if found.objects is None:
        lines.append("objects: not looked at (the cluster does not run the desired id)")
    else:
        unready = [o for o in found.objects if not o.ready]
        lines.append(f"objects: {len(found.objects) - len(unready)} of {len(found.objects)} "
                     "ready")  # fmt: skip
        for obj in unready[:max_objects]:
            lines.append(f"  {obj.ref}: NotReady: {one_line(obj.message)}")
        if len(unready) > max_objects:
            lines.append(f"  ... {len(unready) - max_objects} more not ready; --objects N")
    lines.append("rollout:" if found.rollout else "rollout: no record")
    lines += [f"  {line}" for line in found.rollout]
    stream = found.events_from == "stream"
    where = "the fleet's Redis stream" if stream else "Kubernetes Events"
    if found.events:
        lines.append(f"events (from {where}):")
    else:
        lines.append("events: none in the fleet's Redis stream" if stream
                     else "events: none recorded (Kubernetes keeps ~1h)")  # fmt: skip
    for event in found.events:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.time))
        lines.append(f"  {stamp}  {event.type.value}  {event.message}")
    lines += [f"note: {note}" for note in found.notes]
    return "\n".join(lines) + "\n"


def _json(found: Explanation) -> str:
    payload: dict[str, Any] = {
        **found.row.to_json(),
        "runningId": found.running_id,
        "waiting": found.waiting,
        "nextSync": found.next_step,
        "objects": None if found.objects is None else [o.to_json() for o in found.objects],
        "rollout": found.rollout,
        "events": [e.to_json() for e in found.events],
        "eventsFrom": found.events_from,
        "notes": found.notes,
    }
    return json.dumps(payload, indent=2) + "\n"


@app.command("explain")
def explain_command(
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE", help="The bundle to explain.")],
    cluster: Annotated[
        str, typer.Option("--cluster", "-c", metavar="NAME", help="The cluster it runs on.")
    ],
    source: Annotated[
        str,
        typer.Argument(
            metavar="REPO",
            help="The fleet repository: a directory or a Git URL.",
            show_default=True,
        ),
    ] = ".",
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch", "-b", metavar="REF", help="Branch, tag or commit (default: HEAD)."
        ),
    ] = None,
    events: Annotated[
        int, typer.Option("--events", min=0, metavar="N", help="Last events shown.")
    ] = 5,
    objects: Annotated[
        int, typer.Option("--objects", min=0, metavar="N", help="Not-ready objects shown.")
    ] = 10,
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FORMAT", help="table (default) or json.")
    ] = "table",
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis",
            metavar="URL",
            help="Distributed: the last events from `fleet serve`'s Redis stream and the "
            "rollout records there (default: FLEET_REDIS_URL when set).",
        ),
    ] = None,
) -> None:
    """Why BUNDLE on --cluster is in its state: its state and message, the deployment id
    Git wants and the one the cluster runs, the objects not ready and why (a live look),
    what the planner says it waits for (dependsOn, wave, gate, window, freeze, pause,
    offline), the bundle's rollout record and the unit's last events (from the fleet's
    Redis stream with --redis or FLEET_REDIS_URL, else the cluster's Kubernetes Events).
    Writes nothing and asks no gate; exit 0 when the unit is Ready, else 1."""
    from fleet.runtime.explain import explain_unit
    from fleet.states import BundleState

    check_output(output)
    found = explain_unit(source, bundle, cluster, branch=branch, events=events, redis_url=redis)
    typer.echo(_json(found) if output == "json" else _render(found, objects), nl=False)
    if found.row.state is not BundleState.READY:
        raise typer.Exit(1)
