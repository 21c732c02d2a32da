"""`fleet serve` and `fleet worker`: the distributed mode (Redis + Celery workers).

`fleet serve` runs the scheduler loop, the push-webhook receiver, `/metrics` and the
read-only `/status` API on one port (`fleet.runtime.serve`). `fleet worker` runs a Celery worker
that consumes the apply queues of its regions (`fleet.apply.<region>`) and the shared
control queue; with no `--region` it serves `fleet.apply.default`, the queue of clusters
that have no region (explicit, so a worker never silently takes clusters whose
credentials it does not hold).

The Celery app lives in the `workers` package, which `fleet` never imports by name: the
command finds it through the `fleet.worker` entry point (DESIGN.md: `workers` -> `fleet`,
never the other way), exactly as built-in plugins are found through the plugin manager.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from fleet.cli import app
from fleet.errors import FleetError

WORKER_ENTRY_POINT_GROUP = "fleet.worker"

RedisOpt = Annotated[
    str | None,
    typer.Option(
        "--redis", metavar="URL", help="Redis URL (broker and cache); default $FLEET_REDIS_URL."
    ),
]


@app.command("serve")
def serve_command(
    repo_url: Annotated[
        str | None,
        typer.Argument(
            metavar="REPO_URL", help="The fleet repository's Git URL (default: $FLEET_REPO_URL)."
        ),
    ] = None,
    branch: Annotated[
        str,
        typer.Option("--branch", "-b", metavar="REF", help="Branch, tag, semver range or commit."),
    ] = "HEAD",
    listen: Annotated[
        str,
        typer.Option(
            "--listen", metavar="HOST:PORT", help="HOST:PORT for webhooks, /metrics and /status."
        ),
    ] = "127.0.0.1:8080",
    redis: RedisOpt = None,
    tick: Annotated[
        float, typer.Option("--tick", metavar="SECONDS", help="Seconds between scheduler ticks.")
    ] = 2.0,
    poll_interval: Annotated[
        float | None,
        typer.Option(
            "--poll-interval",
            metavar="SECONDS",
            help="Seconds between Git polls (default: the definition's).",
        ),
    ] = None,
    drift_interval: Annotated[
        float,
        typer.Option(
            "--drift-interval", metavar="SECONDS", help="Seconds between drift checks of a unit."
        ),
    ] = 300.0,
    refresh_interval: Annotated[
        float,
        typer.Option(
            "--refresh-interval",
            metavar="SECONDS",
            help="Seconds between re-reads of a cluster's inventories (and rolled-back revisions).",
        ),
    ] = 300.0,
    allow_mass_delete: Annotated[
        bool,
        typer.Option(
            "--allow-mass-delete",
            help="Send removals even when a commit would remove every bundle from a cluster or "
            "more than FLEET_MASS_DELETE_SHARE of the fleet's objects (held otherwise; a "
            "commit with the trailer 'Fleet-Allow-Mass-Delete: true' allows its own).",
        ),
    ] = False,
) -> None:
    """Run the scheduler: poll Git (or take push webhooks), plan, send tasks to the workers.

    Serves POST / (GitHub/GitLab push webhook, needs FLEET_WEBHOOK_SECRET; signed, at most
    1 MiB), POST /hooks/registry (Docker Hub, Quay or distribution push notification,
    needs FLEET_REGISTRY_WEBHOOK_TOKEN as a Bearer header or /hooks/registry/<token>),
    GET /metrics (Prometheus) and GET /status (JSON, the same model as `fleet status
    -o json`, plus each bundle's rollout as `fleet rollout status` shows it).
    With imagePolicies and imageUpdates, the leader scans the policies every
    imageUpdates.interval (and on a registry push) and commits new tags back to Git.
    FLEET_HTTP_MAX_CLIENTS connections at once (default 16), each with FLEET_HTTP_TIMEOUT
    seconds (default 10) to send its request.
    The scheduler needs no cluster credential: the workers of each region hold them.
    Several `fleet serve` for one fleet may run: only the holder of the leader lease in
    Redis dispatches (renewed; FLEET_LEADER_TTL, default 15s); the others stand by, say
    so in /status ("scheduler": {"leader": false, ...}) and take over when it expires.
    """
    from fleet.config import configure_logging, current
    from fleet.rollout.mass_delete import MassDeleteRule
    from fleet.runtime.scheduler import SchedulerConfig
    from fleet.runtime.serve import start_server
    from fleet.runtime.tasks import redis_url

    settings = current()
    url = repo_url or settings.repo_url
    if not url:
        raise FleetError("fleet serve needs the repository URL (argument or FLEET_REPO_URL)")
    configure_logging(settings.log_level)
    config = SchedulerConfig(
        poll_interval=poll_interval,
        drift_interval=drift_interval,
        refresh_interval=refresh_interval,
        task_ttl=settings.task_ttl,
        mass_delete=MassDeleteRule(settings.mass_delete_share, settings.mass_delete_min_objects),
        allow_mass_delete=allow_mass_delete,
    )
    server = start_server(
        url,
        branch=branch,
        listen=listen,
        redis_url=redis_url(redis),  # --redis, else FLEET_REDIS_URL (settings), checked
        env=settings.env,
        config=config,
        tick_interval=tick,
        client_timeout=settings.http_timeout,
        max_clients=settings.http_max_clients,
        leader_ttl=settings.leader_ttl,
    )
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    logging.getLogger(__name__).info("stopping: finishing the current tick, then exiting")
    server.stop()


@app.command("worker")
def worker_command(
    region: Annotated[
        list[str] | None,
        typer.Option(
            "--region", "-r", metavar="REGION", help="Serve this region's clusters (repeatable)."
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, metavar="N", help="Units applied at once.")
    ] = 4,
    redis: RedisOpt = None,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Worker node name (default REGIONS@host)."),
    ] = None,
) -> None:
    """Run a Celery worker for the clusters of the given regions (queues fleet.apply.<region>).

    Cluster credentials come from this worker's environment (FLEET_KUBECONFIG_<NAME> or
    FLEET_CREDENTIALS_DIR); a definition's kubeconfig.path must lie in FLEET_KUBECONFIG_DIR
    (default ~/.kube). Without --region it serves clusters that have no region.
    """
    from importlib.metadata import entry_points

    from fleet.runtime.tasks import redis_url

    url = redis_url(redis)
    found = entry_points(group=WORKER_ENTRY_POINT_GROUP)
    if not found:
        raise FleetError(
            f"no Celery worker installed (entry point group {WORKER_ENTRY_POINT_GROUP!r}); "
            "reinstall fleet-gitops"
        )
    run_worker = next(iter(found)).load()
    run_worker(list(region or []), concurrency, url, name)
