"""`fleet serve`: the scheduler loop and one HTTP port for webhooks, metrics and status.

One process: the scheduler loop (a tick every `tick_interval` seconds, or at once when a
push webhook for our repository arrives) and a `BoundedHTTPServer` (`fleet.runtime.http`:
a fixed pool of `FLEET_HTTP_MAX_CLIENTS` threads, `FLEET_HTTP_TIMEOUT` seconds per client):

    POST /            (any path) GitHub/GitLab push webhook, HMAC-verified (fleet.source.webhooks)
    POST /hooks/registry[/<token>]  registry push (Docker Hub, Quay, distribution), token
                      `FLEET_REGISTRY_WEBHOOK_TOKEN` (fleet.runtime.registry_hooks); it wakes
                      the image loop (fleet.runtime.image_loop), which runs on the leader
    GET  /metrics     Prometheus text exposition (fleet.runtime.serve_view)
    GET  /status      the FleetStatus JSON `fleet status -o json` prints, plus the source
    GET  /healthz     200 "ok" while the loop runs

Several `fleet serve` for one fleet may run (a rolling update, a standby): only the holder
of the fleet's leader lease in Redis dispatches (`fleet.runtime.leader`); the others poll,
show `/status` with `"scheduler": {"leader": false, "leaderId": ...}` and take over when
the lease expires (`FLEET_LEADER_TTL`) or is released by a clean stop.

Without `FLEET_WEBHOOK_SECRET` the webhook answers 404 and polling alone drives the loop
(the receiver never accepts unsigned requests). A tick that fails because Redis or the
broker is down is logged with what happens next and retried; nothing is lost, because the
next tick recomputes everything from Git and the clusters' inventories.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from fleet.config import (
    DEFAULT_HTTP_MAX_CLIENTS,
    DEFAULT_HTTP_TIMEOUT,
    DEFAULT_LEADER_TTL,
    Settings,
)
from fleet.errors import FleetError
from fleet.images.hooks import TOKEN_ENV, is_hook_path, redact_path
from fleet.runtime.http import BoundedHTTPServer, GuardedHandler, make_webhook_handler
from fleet.runtime.image_loop import ImageLoop
from fleet.runtime.leader import LeaderLease
from fleet.runtime.registry_hooks import ImageTrigger, PolicyView, handle_registry_hook
from fleet.runtime.scheduler import Scheduler, SchedulerConfig
from fleet.runtime.serve_view import CONTENT_TYPE_METRICS, metrics_text, status_json
from fleet.runtime.state_cache import connect_redis
from fleet.runtime.tasks import CeleryDispatcher, Dispatcher
from fleet.source.git import GitSource
from fleet.source.webhooks import SECRET_ENV

log = logging.getLogger(__name__)


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `:PORT`) -> (host, port); a user error otherwise."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise FleetError(f"--listen must be HOST:PORT, not {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True)
class RegistryHooks:
    """The registry push receiver's parts: its token (None: every request is refused),
    the policies in force and the trigger the image loop consumes."""

    token: str | None
    view: PolicyView
    trigger: ImageTrigger


def make_handler(
    scheduler: Scheduler, secret: str | None, registry: RegistryHooks | None = None
) -> type[GuardedHandler]:
    """The request handler: Git webhook POSTs (when a secret is set), registry push POSTs
    on /hooks/registry (when `registry` is given) and the read-only GETs."""
    base: type[GuardedHandler] = (
        make_webhook_handler(secret, scheduler.on_push) if secret else GuardedHandler
    )
    git_post = getattr(base, "do_POST", None)

    class ServeHandler(base):  # type: ignore[valid-type,misc]
        server_version = "fleet-serve"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics_text(scheduler), CONTENT_TYPE_METRICS)
            elif path == "/status":
                self._send(200, status_json(scheduler), "application/json")
            elif path == "/healthz":
                self._send(200, "ok\n", "text/plain")
            else:
                self._send(
                    404, "not found: try /status, /metrics or POST a webhook\n", "text/plain"
                )

        def do_POST(self) -> None:
            if registry is not None and is_hook_path(self.path):
                handle_registry_hook(self, registry.token, registry.view, registry.trigger)
            elif git_post is not None:
                git_post(self)
            else:
                self._send(404, f"webhooks are off ({SECRET_ENV} not set)\n", "text/plain")
                self.drain_small_body()

        def _send(self, status: int, body: str, content_type: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            # a request line may hold the registry token (/hooks/registry/<token>)
            log.debug("%s %s", self.client_address[0], redact_path(format % args))

    return ServeHandler


@dataclass
class Server:
    """A running `fleet serve`: `stop()` ends the loop and the HTTP server."""

    scheduler: Scheduler
    http: BoundedHTTPServer
    stopping: threading.Event
    threads: list[threading.Thread]
    images: ImageTrigger

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    def stop(self) -> None:
        self.stopping.set()
        self.scheduler.wake.set()
        self.images.wake.set()
        self.http.shutdown()
        for thread in self.threads:
            thread.join(timeout=30)
        if self.scheduler.leader is not None:
            self.scheduler.leader.stop()  # a standby takes over at its next tick
        self.http.server_close()
        if self.scheduler.events is not None:
            self.scheduler.events.close()


def run_loop(scheduler: Scheduler, stopping: threading.Event, tick_interval: float) -> None:
    """Tick until stopped; a Redis or broker outage is logged and retried, never fatal."""
    failures = 0
    while not stopping.is_set():
        try:
            scheduler.tick()
            if failures:
                log.info("scheduler tick works again after %d failures", failures)
            failures = 0
        except (redis.RedisError, OSError) as err:
            failures += 1
            log.warning("scheduler tick failed (%s); will retry in %.0fs", err, tick_interval)
        except Exception as err:  # a bug in one tick must not stop the fleet
            failures += 1
            log.exception("scheduler tick failed (%s); will retry in %.0fs", err, tick_interval)
        scheduler.wake.wait(tick_interval)


def start_server(
    repo_url: str,
    *,
    branch: str = "HEAD",
    listen: str = "127.0.0.1:8080",
    redis_url: str,
    env: Mapping[str, str],
    dispatcher: Dispatcher | None = None,
    config: SchedulerConfig | None = None,
    tick_interval: float = 2.0,
    client_timeout: float = DEFAULT_HTTP_TIMEOUT,
    max_clients: int = DEFAULT_HTTP_MAX_CLIENTS,
    leader_ttl: float = DEFAULT_LEADER_TTL,
) -> Server:
    """Bind the port, build the scheduler (with its leader lease) and start the loop and
    the HTTP server."""
    host, port = parse_listen(listen)
    secret = env.get(SECRET_ENV, "").strip() or None
    client = connect_redis(redis_url)
    leader = LeaderLease(client, ttl=leader_ttl)
    scheduler = Scheduler(
        GitSource(repo_url, branch),
        client,
        dispatcher or CeleryDispatcher(redis_url),
        config=config,
        leader=leader,
        settings=Settings.from_env(env),
    )
    leader.start()
    trigger = ImageTrigger()
    images = ImageLoop(scheduler, trigger)
    token = env.get(TOKEN_ENV, "").strip() or None
    registry = RegistryHooks(token, PolicyView(images.policies, images.normalize), trigger)
    http = BoundedHTTPServer(
        (host, port),
        make_handler(scheduler, secret, registry),
        client_timeout=client_timeout,
        max_clients=max_clients,
    )
    stopping = threading.Event()
    threads = [
        threading.Thread(target=http.serve_forever, name="fleet-http", daemon=True),
        threading.Thread(
            target=run_loop,
            args=(scheduler, stopping, tick_interval),
            name="fleet-scheduler",
            daemon=True,
        ),
        threading.Thread(target=images.run, args=(stopping,), name="fleet-images", daemon=True),
    ]
    for thread in threads:
        thread.start()
    where = f"http://{host}:{http.server_address[1]}"
    hooks = "webhooks on POST /" if secret else f"webhooks off ({SECRET_ENV} not set), polling only"
    hooks += "; registry pushes on POST /hooks/registry" if token else ""
    log.info(
        "fleet serve on %s (/status, /metrics; %s); scheduling %s",
        where,
        hooks,
        scheduler.source.display_url,
    )
    return Server(scheduler, http, stopping, threads, trigger)
