"""The Celery app of `fleet worker`: Redis broker, JSON only, at-least-once delivery.

Settings and why:

- `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only after its
  task finished, so a worker killed mid-apply (SIGKILL, OOM, node loss) leaves it unacked
  and Redis hands it to another worker once the visibility timeout passes. The tasks are
  idempotent (keyed by bundle, cluster and deployment id) and locked per (bundle,
  cluster), so running one twice changes nothing.
- `visibility_timeout` (`FLEET_CELERY_VISIBILITY_TIMEOUT`, default 1800s) is longer than
  the longest task: a health wait (a bundle's `waitTimeoutSeconds`, capped by
  `FLEET_MAX_WAIT_SECONDS` and at most half the visibility timeout: fleet.runtime.waits)
  plus retries. Retry countdowns are capped well below it (see workers.tasks), or a
  waiting retry would be redelivered.
- `worker_prefetch_multiplier=1`: a worker takes one message per free slot, so a slow
  cluster does not hoard a queue's messages another worker could run.
- JSON only, for arguments and results: messages are names and hashes, readable in Redis.
- Queues: `fleet.apply.<region>` per region (the scheduler's dispatcher picks it from the
  cluster's region) and `fleet.control` shared by all workers (see fleet.runtime.tasks).

The worker uses the `threads` pool: the work is waiting on API servers, and a thread pool
keeps one process per worker, which is also what a SIGKILL takes down whole.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Sequence

from celery import Celery

from fleet import config
from fleet.backoff import Backoff
from fleet.config import Settings, configure_logging
from fleet.runtime.tasks import CONTROL_QUEUE, PING_TASK, apply_queue, redis_url

# a dead Celery child: restarted 1s after a long run, else after 2, 4 ... 30s
RESTART_BACKOFF = Backoff(1.0, cap=30.0)


def make_app(settings: Settings) -> Celery:
    """The configured app; the broker and result backend are the same Redis.

    Built by `run_worker` from the settings, not at import time: importing this module
    (or `workers.tasks`, whose tasks are shared and bind to the app that runs them) reads
    no environment and connects to nothing.
    """
    broker = redis_url(settings.redis_url)
    celery = Celery("fleet", broker=broker, backend=broker, include=["workers.tasks"])
    timeout = settings.visibility_timeout
    celery.conf.update(
        # kombu's Redis transport, fixed so that a Redis restart is a reconnect, not a
        # dead worker (see workers.transport)
        broker_transport="workers.transport:Transport",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": timeout,
            # kombu sweeps unacked messages every interval x throttle seconds (default
            # 10 x 10): sweep at least twice per visibility timeout, at most every 5s.
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": max(1, int(min(100.0, timeout / 2) // 5)),
        },
        result_expires=3600,
        task_default_queue=CONTROL_QUEUE,
        task_routes={PING_TASK: {"queue": CONTROL_QUEUE}},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # Redis restarted: reconnect, do not exit
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return celery


def queues_for(regions: Sequence[str]) -> list[str]:
    """The apply queues of these regions (none -> the `default` region) + the control queue."""
    names: list[str | None] = list(regions) or [None]
    return [*(apply_queue(r) for r in names), CONTROL_QUEUE]


def run_worker(
    regions: Sequence[str], concurrency: int, url: str | None = None, name: str | None = None
) -> None:
    """Start a Celery worker in this process (`fleet worker`); returns when it stops.

    `url` (`--redis`) takes the place of FLEET_REDIS_URL for this worker's broker, result
    backend and state cache (the tasks read it from the app's configuration).
    """
    app = make_app(config.current().with_redis_url(url))
    configure_logging("INFO")
    node = name or f"{'-'.join(regions) or 'default'}@{socket.gethostname()}"
    argv = [
        "worker",
        "--queues",
        ",".join(queues_for(regions)),
        "--concurrency",
        str(concurrency),
        "--pool",
        "threads",
        "--hostname",
        node,
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    supervise(app, argv)


def supervise(app: Celery, argv: list[str]) -> None:
    """Run the Celery worker in a forked child and start it again if it dies on an error.

    A safety net: a Redis restart is handled inside the worker (see workers.transport),
    but any other "Unrecoverable error" that ends Celery must not end `fleet worker`, so
    the worker runs in a child; a non-zero exit is logged and the worker restarts after a
    short pause (unacked messages come back after the visibility timeout). SIGTERM/SIGINT are passed
    on and end both. A whole-group SIGKILL ends both too, as an operator expects.
    """
    log = logging.getLogger("fleet.worker")
    stopping = False
    child = 0

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child:
            os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    crashes = 0  # quick deaths in a row: the restart delay doubles with each, up to 30s
    while not stopping:
        child = os.fork()
        if child == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                app.worker_main(argv)
            except SystemExit as exit_:
                os._exit(exit_.code if isinstance(exit_.code, int) else 1)
            os._exit(0)
        started = time.monotonic()
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        if stopping or code == 0:
            return
        crashes = 0 if time.monotonic() - started > 60 else crashes + 1
        delay = RESTART_BACKOFF.delay(crashes)
        log.warning("celery worker exited with %s; will restart it in %.0fs", code, delay)
        time.sleep(delay)
