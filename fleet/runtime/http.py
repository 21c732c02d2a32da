"""The HTTP port of `fleet serve`, stdlib only: a bounded server and the push webhook receiver.

The port is open to whoever can reach it, so it must not be a lever against the fleet:

- `BoundedHTTPServer` handles at most `max_clients` connections at once, on that many
  worker threads started up front (never a thread per connection); up to `max_clients`
  more wait for a worker, and a connection beyond that gets `503` at once and is closed.
- Every connection has `client_timeout` seconds to send its whole request (request line,
  headers and body): each socket operation times out after that long, and a watchdog (run
  by the accept loop's `service_actions`) shuts the socket of a client still sending at
  its deadline, so a client trickling a byte a second is cut too.

`make_webhook_handler(secret, on_push)` returns a `BaseHTTPRequestHandler` subclass: POST
any path with a GitHub or GitLab push -> 202 and `on_push(event)`. The checks run in this
order, and the body is read only when all of them pass: no signature header at all
(`X-Hub-Signature-256` / `X-Gitlab-Token`) -> 401; chunked or no `Content-Length` -> 411;
`Content-Length` over `MAX_BODY` (1 MiB) -> 413. Then exactly `Content-Length` bytes are
read (within the deadline), the signature is checked (wrong -> 401), the payload parsed
(malformed -> 400; other events -> 202 with "ignored"). `on_push` runs on the request
thread, so it should only note the event (wake the scheduler loop); if it raises, the
answer is 500 and the error is logged.

`serve_webhooks(...)` binds a `BoundedHTTPServer` (call `serve_forever` on a thread, then
`shutdown()` and `server_close()`). Without a secret neither starts: see
`fleet.source.webhooks`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import BaseRequestHandler
from typing import Any

from fleet.config import DEFAULT_HTTP_MAX_CLIENTS, DEFAULT_HTTP_TIMEOUT
from fleet.errors import FleetError
from fleet.source.webhooks import UNSIGNED, PushEvent, WebhookRejected, is_signed, parse_push

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # a push payload is a few KiB; GitHub's own cap (25 MB) is far above
DRAIN_LIMIT = 64 * 1024  # an early answer reads (and drops) a small body, so close is clean
BUSY_ANSWER = json.dumps({"status": 503, "message": "busy: too many connections"}).encode()

Address = Any  # socketserver's client address (a tuple for TCP)


class BoundedHTTPServer(HTTPServer):
    """An HTTP server with a fixed pool of `max_clients` threads and a deadline per client."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog (socketserver's 5 drops SYNs under load)

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseRequestHandler],
        *,
        client_timeout: float = DEFAULT_HTTP_TIMEOUT,
        max_clients: int = DEFAULT_HTTP_MAX_CLIENTS,
    ) -> None:
        super().__init__(address, handler)
        self.client_timeout = client_timeout
        self.max_clients = max(1, max_clients)
        self.refused = 0  # connections answered 503
        self.cut = 0  # connections shut at their deadline
        self.load = 0  # connections being handled or waiting for a worker
        self._waiting: queue.Queue[tuple[socket.socket, Address] | None] = queue.Queue()
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._work, name=f"fleet-http-{n}", daemon=True)
            for n in range(self.max_clients)
        ]
        for worker in self._workers:
            worker.start()

    # the accept loop ----------------------------------------------------------------

    def process_request(self, request: Any, client_address: Address) -> None:
        """Queue the connection for a worker thread, or answer 503 when `max_clients` are
        handled and as many wait already."""
        with self._lock:
            busy = self.load >= 2 * self.max_clients
            if not busy:
                self.load += 1
        if busy:
            self.refused += 1
            if self.refused % 100 == 1:  # a flood is one line per hundred, not one per client
                log.warning("HTTP: %s refused (503), %d connections busy; %d refused so far",
                            client_address[0], self.load, self.refused)  # fmt: skip
            self._answer_busy(request)
            return
        self._waiting.put((request, client_address))

    def service_actions(self) -> None:
        """Shut the sockets of clients still sending their request at their deadline."""
        now = time.monotonic()
        with self._lock:
            late = [sock for sock, deadline in self._deadlines.items() if deadline <= now]
            for sock in late:
                del self._deadlines[sock]
        for sock in late:
            self.cut += 1
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Address) -> None:
        log.exception("HTTP: request from %s failed", client_address[0])

    def server_close(self) -> None:
        super().server_close()
        while True:  # connections still waiting are closed unanswered
            try:
                item = self._waiting.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in self._workers:
            self._waiting.put(None)
        until = time.monotonic() + self.client_timeout + 5
        for worker in self._workers:
            worker.join(timeout=max(0.0, until - time.monotonic()))

    # the handlers' side -------------------------------------------------------------

    def request_read(self, sock: socket.socket) -> None:
        """The handler has the whole request: no deadline any more (socket timeouts stay)."""
        with self._lock:
            self._deadlines.pop(sock, None)

    def _work(self) -> None:
        while True:
            item = self._waiting.get()
            if item is None:
                return
            request, address = item
            with self._lock:
                self._deadlines[request] = time.monotonic() + self.client_timeout
            try:
                self.finish_request(request, address)
            except OSError as err:  # the client went away, or was cut at its deadline
                log.debug("HTTP: %s: %s", address[0], err)
            except Exception:
                self.handle_error(request, address)
            finally:
                self.request_read(request)
                self.shutdown_request(request)
                with self._lock:
                    self.load -= 1

    def _answer_busy(self, request: socket.socket) -> None:
        head = (
            "HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BUSY_ANSWER)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        )
        try:
            request.setblocking(False)
            # what already arrived, so that closing does not reset the connection
            with contextlib.suppress(BlockingIOError, InterruptedError):
                request.recv(DRAIN_LIMIT)
            request.settimeout(1.0)
            request.sendall(head.encode() + BUSY_ANSWER)
        except OSError:
            pass
        self.shutdown_request(request)


class GuardedHandler(BaseHTTPRequestHandler):
    """A request handler that honours its server's client timeout and deadline."""

    def setup(self) -> None:
        super().setup()
        timeout = getattr(self.server, "client_timeout", None)
        if timeout is not None:
            self.connection.settimeout(timeout)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed and self.command != "POST":  # no body: the request is complete
            self.request_read()
        return parsed

    def request_read(self) -> None:
        """Tell the server the whole request is in (its deadline no longer applies)."""
        if isinstance(self.server, BoundedHTTPServer):
            self.server.request_read(self.connection)

    def drain_small_body(self) -> None:
        """After an early answer: read and drop a small body, so the close is clean (a
        socket closed with unread data resets the connection, and the client may lose
        the answer). A large or missing body is not waited for."""
        self.close_connection = True
        raw = self.headers.get("Content-Length", "")
        length = int(raw) if raw.isdigit() else 0
        if 0 < length <= DRAIN_LIMIT:
            try:
                self.connection.settimeout(1.0)
                self.rfile.read(length)
            except OSError:
                pass

    def read_bounded_body(self) -> bytes | None:
        """The body, read only when `Content-Length` is given and at most `MAX_BODY`, else
        None (answered 411 or 413, body unread; or the client stopped sending)."""
        length_header = self.headers.get("Content-Length")
        chunked = self.headers.get("Transfer-Encoding") is not None
        if chunked or length_header is None or not length_header.isdigit():
            self.answer_early(411, "Content-Length required (no chunked bodies)")
            return None
        length = int(length_header)
        if length > MAX_BODY:
            self.answer_early(413, f"payload too large (over {MAX_BODY} bytes)")
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the client stopped, or was cut at its deadline
            self.close_connection = True
            return None
        self.request_read()
        return body

    def answer_early(self, status: int, message: str) -> None:
        """Answer before the body is read, and close (see `drain_small_body`)."""
        self.answer_json(status, message)
        self.drain_small_body()

    def answer_json(self, status: int, message: str, **extra: object) -> None:
        payload = json.dumps({"status": status, "message": message, **extra}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if status == 405:
            self.send_header("Allow", "POST")
        self.end_headers()
        self.wfile.write(payload)


def make_webhook_handler(secret: str, on_push: Callable[[PushEvent], None]) -> type[GuardedHandler]:
    """A request handler class bound to `secret` and `on_push`."""
    if not secret or not secret.strip():
        raise FleetError("the webhook receiver needs a secret (FLEET_WEBHOOK_SECRET)")

    class WebhookHandler(GuardedHandler):
        server_version = "fleet-webhooks"
        sys_version = ""

        def do_POST(self) -> None:
            body = self._read_body()
            if body is None:
                return
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

        def _read_body(self) -> bytes | None:
            """The body once the headers allow it, else None (answered, body unread)."""
            if not is_signed(dict(self.headers.items())):
                log.warning("webhook from %s rejected: unsigned", self.client_address[0])
                self.answer_early(401, UNSIGNED)
                return None
            return self.read_bounded_body()

        def do_GET(self) -> None:
            self._answer(405, "POST a GitHub or GitLab push webhook here")

        def _answer(self, status: int, message: str, **extra: str) -> None:
            self.answer_json(status, message, **extra)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s " + format, self.client_address[0], *args)

    return WebhookHandler


def serve_webhooks(
    host: str,
    port: int,
    secret: str,
    on_push: Callable[[PushEvent], None],
    *,
    client_timeout: float = DEFAULT_HTTP_TIMEOUT,
    max_clients: int = DEFAULT_HTTP_MAX_CLIENTS,
) -> BoundedHTTPServer:
    """A bound (not yet serving) bounded HTTP server for the webhook receiver alone."""
    return BoundedHTTPServer(
        (host, port),
        make_webhook_handler(secret, on_push),
        client_timeout=client_timeout,
        max_clients=max_clients,
    )
