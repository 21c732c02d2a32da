"""The HTTP receiver for push webhooks, stdlib only, for `fleet serve` to run or mount.

`make_webhook_handler(secret, on_push)` returns a `BaseHTTPRequestHandler` subclass: POST
any path with a GitHub or GitLab push -> 202 and `on_push(event)`; unsigned or wrongly
signed -> 401; malformed -> 400; a body over `MAX_BODY` -> 413; other events -> 202 with
"ignored". `on_push` runs on the request thread, so it should only note the event (wake
the scheduler loop); if it raises, the answer is 500 and the error is logged.

`serve_webhooks(...)` binds a `ThreadingHTTPServer` (call `serve_forever` on a thread, and
`shutdown()` to stop). Without a secret neither starts: see `fleet.source.webhooks`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fleet.errors import FleetError
from fleet.source.webhooks import PushEvent, WebhookRejected, parse_push

log = logging.getLogger(__name__)

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB


def make_webhook_handler(
    secret: str, on_push: Callable[[PushEvent], None]
) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to `secret` and `on_push`."""
    if not secret or not secret.strip():
        raise FleetError("the webhook receiver needs a secret (FLEET_WEBHOOK_SECRET)")

    class WebhookHandler(BaseHTTPRequestHandler):
        server_version = "fleet-webhooks"
        sys_version = ""

        def do_POST(self) -> None:
            length_header = self.headers.get("Content-Length")
            if length_header is None or not length_header.isdigit():
                self._answer(411, "Content-Length required")
                return
            length = int(length_header)
            if length > MAX_BODY:
                self._answer(413, "payload too large")
                return
            body = self.rfile.read(length)
            headers = {key: value for key, value in self.headers.items()}
            try:
                event = parse_push(secret, headers, body)
            except WebhookRejected as rejected:
                if rejected.status >= 400:
                    log.warning("webhook from %s rejected: %s", self.client_address[0], rejected)
                self._answer(rejected.status, rejected.reason)
                return
            try:
                on_push(event)
            except Exception:
                log.exception("webhook push %s %s: handler failed", event.ref, event.after_sha)
                self._answer(500, "push handler failed")
                return
            log.info("webhook push %s %s (%s)", event.ref, event.after_sha[:12], event.provider)
            self._answer(202, "accepted", ref=event.ref, after=event.after_sha)

        def do_GET(self) -> None:
            self._answer(405, "POST a GitHub or GitLab push webhook here")

        def _answer(self, status: int, message: str, **extra: str) -> None:
            payload = json.dumps({"status": status, "message": message, **extra}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status == 405:
                self.send_header("Allow", "POST")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s " + format, self.client_address[0], *args)

    return WebhookHandler


def serve_webhooks(
    host: str, port: int, secret: str, on_push: Callable[[PushEvent], None]
) -> ThreadingHTTPServer:
    """A bound (not yet serving) threading HTTP server for the webhook receiver."""
    server = ThreadingHTTPServer((host, port), make_webhook_handler(secret, on_push))
    server.daemon_threads = True
    return server
