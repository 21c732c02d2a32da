"""The message contract between `fleet serve` and `fleet worker`, and the sending side of it.

`fleet` owns the contract (task names, keyword arguments, queue names); `workers/` implements
the consuming side. The scheduler sends tasks *by name* through a `Dispatcher`, so the core
never imports `workers` (see DESIGN.md "Direction of imports"). `CeleryDispatcher` is the
real one: a producer-only Celery app on the same Redis broker, JSON only; a test or another
transport can pass anything with a `send` method.

Arguments are names and hashes, never objects: a worker re-derives the unit from Git at the
commit it is given (repository URL + sha), so a message is small, readable in the broker,
and still correct if it is delivered twice or late.

Queues: one per region, `fleet.apply.<region>` (a cluster without a region goes to
`fleet.apply.default`), so a worker serves only the clusters of its regions and only it
needs their credentials. `fleet.control` is shared by every worker for tasks that touch no
cluster (`fleet.ping`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from fleet import config
from fleet.errors import FleetError

REDIS_URL_ENV = "FLEET_REDIS_URL"
DEFAULT_REDIS_URL = config.DEFAULT_REDIS_URL

APPLY_TASK = "fleet.apply_unit"
REMOVE_TASK = "fleet.remove_unit"
DRIFT_TASK = "fleet.check_drift"
REFRESH_TASK = "fleet.refresh_cluster"
ROLLBACK_TASK = "fleet.rollback_unit"
PING_TASK = "fleet.ping"

QUEUE_PREFIX = "fleet.apply."
DEFAULT_REGION = "default"
CONTROL_QUEUE = "fleet.control"

TaskArgs = Mapping[str, str | bool]


def apply_queue(region: str | None) -> str:
    """The queue of a region's workers (`fleet.apply.eu`; no region -> `.default`)."""
    return f"{QUEUE_PREFIX}{region or DEFAULT_REGION}"


def redis_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """`--redis`, else `FLEET_REDIS_URL`, else a local Redis; only redis:// and rediss://."""
    settings = config.current() if env is None else config.Settings.from_env(env)
    url = explicit or settings.redis_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise FleetError(f"{REDIS_URL_ENV} must be a redis:// or rediss:// URL")
    return url


class Dispatcher(Protocol):
    """Sends one task by name to a queue; returns the task id."""

    def send(self, task: str, kwargs: TaskArgs, queue: str) -> str: ...


class CeleryDispatcher:
    """A producer-only Celery app on the broker: `send_task` by name, JSON, no result wait."""

    def __init__(self, broker_url: str) -> None:
        from celery import Celery

        self.app = Celery("fleet-scheduler", broker=broker_url, set_as_current=False)
        self.app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=True,
            # Lost connections (Redis restarted) are retried, never fatal for the loop.
            broker_transport_options={"max_retries": 3, "interval_start": 0.2},
        )

    def send(self, task: str, kwargs: TaskArgs, queue: str) -> str:
        result = self.app.send_task(task, kwargs=dict(kwargs), queue=queue, routing_key=queue)
        return str(result.id)

    def close(self) -> None:
        self.app.close()
