"""Driving a gate as the rollout tracker does, and the small servers the gate tests talk to.

`drive(gate, ctx)` calls `check` again and again with the real time as `ctx.now`,
sleeping until each `next_check`, until the gate decides. `ProbeServer` is the service an
`http` gate smoke-tests (`/status/500`, `/sleep/3`, ...); `AuthProxy` stands in front of
the real Prometheus and lets a query through only with the expected Authorization header.
Both record every request.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fleet.plugin import Gate, GateContext, GateResult, GateTarget


def wave_context(*targets: GateTarget, env: dict[str, str] | None = None) -> GateContext:
    """A fresh context for wave `canary` of bundle `web` with these clusters."""
    now = time.time()
    return GateContext(
        fleet="test", bundle="web", wave="canary", revision="r1", commit="c1",
        targets=list(targets), since=now, now=now, memory={}, env=env or {},
    )  # fmt: skip


def drive(
    gate: Gate, ctx: GateContext, max_checks: int = 60
) -> tuple[GateResult, list[GateResult]]:
    """Check until decided; (the verdict, every answer on the way)."""
    answers = []
    for _ in range(max_checks):
        ctx.now = time.time()
        answer = gate.check(ctx)
        answers.append(answer)
        if answer.verdict.decided:
            return answer, answers
        if answer.next_check is not None:
            time.sleep(max(0.0, answer.next_check - time.time()))
    raise AssertionError(f"the gate did not decide in {max_checks} checks: {answers[-1]}")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class _Recorder:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._handle(self)

            def do_POST(self) -> None:
                owner._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Recorded(
            handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}, body
        )
        with self.lock:
            self.requests.append(request)
        status, content_type, data = self.answer(request)
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client gave up (a timeout test)

    def answer(self, request: Recorded) -> tuple[int, str, bytes]:
        raise NotImplementedError


class ProbeServer(_Recorder):
    """`/status/N[/...]` answers N; `/sleep/S[/...]` answers 200 after S seconds;
    anything else 200."""

    def answer(self, request: Recorded) -> tuple[int, str, bytes]:
        parts = request.path.split("?")[0].strip("/").split("/")
        if parts[0] == "status" and len(parts) > 1:
            return int(parts[1]), "text/plain", b"as asked\n"
        if parts[0] == "sleep" and len(parts) > 1:
            time.sleep(float(parts[1]))
        return 200, "text/plain", b"ok\n"


class AuthProxy(_Recorder):
    """Forwards GETs to `upstream` when the Authorization header is `expected`, else
    answers 401 as a Prometheus behind an authenticating proxy would."""

    def __init__(self, upstream: str, expected: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.expected = expected

    def answer(self, request: Recorded) -> tuple[int, str, bytes]:
        if request.headers.get("authorization") != self.expected:
            return 401, "text/plain", b"401 Unauthorized\n"
        try:
            with urllib.request.urlopen(self.upstream + request.path, timeout=10) as answer:
                return answer.status, answer.headers.get("Content-Type", ""), answer.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("Content-Type", ""), err.read()
