"""Thin Celery tasks: names and hashes in, one call into `fleet.runtime.worker.UnitWorker` out.

Every argument is a string or a bool (fleet name, repository URL, commit sha, bundle,
cluster, deployment id), so a message is small, JSON, and still meaningful if it is
delivered twice or late. The logic lives in `fleet`; here are only Celery's concerns:

- `ClusterUnreachable` is retried with exponential backoff and jitter (base
  `FLEET_RETRY_BASE`, default 2s, capped at a third of the visibility timeout and 300s so a
  waiting retry is never redelivered), `MAX_RETRIES` times; each retry first writes
  "unreachable, will retry in Ns" to the state cache for `/status`;
- `LockBusy` (another worker is applying the same bundle to the same cluster) is not an
  error: the task comes back after about a third of the lock's TTL;
- any other `FleetError` (a Git fetch or render failing on this worker, a missing
  credential) ends the task as ErrApplied in the cache; the scheduler dispatches it again
  after the cooldown. Anything else is a bug: it propagates with its traceback.

No task waits for another task's result.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from celery import Task, shared_task

from fleet import config
from fleet.backoff import Backoff
from fleet.engine.kube import ClusterUnreachable
from fleet.errors import FleetError
from fleet.runtime.locks import LockBusy
from fleet.runtime.state_cache import connect_redis
from fleet.runtime.tasks import (
    APPLY_TASK,
    DRIFT_TASK,
    PING_TASK,
    REFRESH_TASK,
    REMOVE_TASK,
    ROLLBACK_TASK,
)
from fleet.runtime.worker import UnitJob, UnitWorker

MAX_RETRIES = 8
LOCK_RETRIES = 100

_worker: UnitWorker | None = None
_worker_lock = threading.Lock()


def unit_worker(task: Task) -> UnitWorker:
    """The process's UnitWorker (one Redis client and revision cache for all threads)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            settings = config.current()
            _worker = UnitWorker(
                connect_redis(str(task.app.conf.broker_url)),
                name=str(task.request.hostname or "worker"),
                lock_ttl=settings.lock_ttl,
                cooldown=settings.failure_cooldown,
            )
        return _worker


def _backoff(task: Task) -> float:
    settings = config.current()
    policy = Backoff(settings.retry_base, settings.retry_cap, jitter=True)
    return policy.delay(task.request.retries, random.random)


def _run(task: Task, kind: str, job: UnitJob, work: Any) -> dict[str, Any]:
    worker = unit_worker(task)
    try:
        return dict(work(worker).to_json())
    except ClusterUnreachable as err:
        if task.request.retries >= MAX_RETRIES:
            return worker.report_unreachable(job, kind, err, None).to_json()
        countdown = _backoff(task)
        worker.report_unreachable(job, kind, err, countdown)
        raise task.retry(countdown=countdown, max_retries=MAX_RETRIES) from None
    except LockBusy:
        countdown = worker.lock_ttl / 3 * (0.5 + random.random())
        raise task.retry(countdown=countdown, max_retries=LOCK_RETRIES) from None
    except FleetError as err:
        return worker.report_failure(job, kind, err.reason).to_json()


@shared_task(  # type: ignore[untyped-decorator]
    name=APPLY_TASK, bind=True
)
def apply_unit(
    self: Task,
    fleet: str,
    repo_url: str,
    commit: str,
    bundle: str,
    cluster: str,
    deployment_id: str,
) -> dict[str, Any]:
    job = UnitJob(fleet, repo_url, commit, bundle, cluster, deployment_id)
    return _run(self, "apply", job, lambda w: w.apply(job))


@shared_task(  # type: ignore[untyped-decorator]
    name=REMOVE_TASK, bind=True
)
def remove_unit(
    self: Task,
    fleet: str,
    repo_url: str,
    commit: str,
    bundle: str,
    cluster: str,
    deployment_id: str = "",
    keep_resources: bool = False,
) -> dict[str, Any]:
    job = UnitJob(fleet, repo_url, commit, bundle, cluster, deployment_id)
    return _run(self, "remove", job, lambda w: w.remove(job, keep_resources))


@shared_task(  # type: ignore[untyped-decorator]
    name=DRIFT_TASK, bind=True
)
def check_drift(
    self: Task,
    fleet: str,
    repo_url: str,
    commit: str,
    bundle: str,
    cluster: str,
    deployment_id: str,
    health: bool = False,
) -> dict[str, Any]:
    job = UnitJob(fleet, repo_url, commit, bundle, cluster, deployment_id)
    return _run(self, "drift", job, lambda w: w.check_drift(job, health))


@shared_task(  # type: ignore[untyped-decorator]
    name=ROLLBACK_TASK, bind=True
)
def rollback_unit(
    self: Task,
    fleet: str,
    repo_url: str,
    commit: str,
    bundle: str,
    cluster: str,
    deployment_id: str,
    reason: str = "",
    revision: str = "",
) -> dict[str, Any]:
    job = UnitJob(fleet, repo_url, commit, bundle, cluster, deployment_id)
    return _run(self, "rollback", job, lambda w: w.rollback(job, reason, revision))


@shared_task(  # type: ignore[untyped-decorator]
    name=REFRESH_TASK, bind=True
)
def refresh_cluster(
    self: Task, fleet: str, repo_url: str, commit: str, cluster: str
) -> dict[str, Any]:
    job = UnitJob(fleet, repo_url, commit, "*", cluster)
    return _run(self, "refresh", job, lambda w: w.refresh(job))


@shared_task(  # type: ignore[untyped-decorator]
    name=PING_TASK, bind=True
)
def ping(self: Task) -> dict[str, str]:
    """Answered by any worker on the control queue: who it is."""
    return {"worker": str(self.request.hostname)}
