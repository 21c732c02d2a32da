"""A real smart-HTTP git server: `git http-backend` behind a stdlib HTTP server with Basic auth.

The `git daemon` of `servers.py` has no authentication; this one answers 401 until a request
carries `Authorization: Basic` with the expected username and token, the way GitHub or
GitLab do over HTTPS (plain HTTP on loopback here: the transport is not what is tested).
It runs in a thread of the test process and serves the bare repositories under `base`;
with `token=None` it asks for nothing (a public repository), and `python -m
tests.support.git_http BASE` runs it so in a process of its own (bench_flux.py: Flux's
source-controller clones over HTTP, not git://, and the bench process stays out of the
measured CPU).
"""

from __future__ import annotations

import base64
import hmac
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class GitHttpServer:
    """`git http-backend` over HTTP on `host` with Basic auth (`username`:`token`), or none
    when `token` is None."""

    base: Path
    token: str | None
    username: str | None = None  # None: any username with the right token (like GitHub)
    port: int = 0
    host: str = "127.0.0.1"  # any of 127.0.0.0/8: a second "host" on the same machine
    attempts: list[tuple[str, str | None]] = field(default_factory=list)  # (path, user or None)
    authorizations: list[str | None] = field(default_factory=list)  # every Authorization header
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.port}/{name}.git"

    def create_bare(self, name: str) -> Path:
        bare = self.base / f"{name}.git"
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)], check=True
        )
        subprocess.run(
            ["git", "config", "http.receivepack", "true"], cwd=bare, check=True, capture_output=True
        )
        return bare

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if shutil.which("git") is None:
            raise RuntimeError("git not found on PATH")
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _authorised_user(self, header: str | None) -> str | None:
        if self.token is None:
            return "anonymous"
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(password.encode(), self.token.encode()):
            return None
        if self.username is not None and user != self.username:
            return None
        return user or "token"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                server.authorizations.append(self.headers.get("Authorization"))
                user = server._authorised_user(self.headers.get("Authorization"))
                server.attempts.append((self.path, user))
                if user is None:
                    body = b"authentication required\n"
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="fleet-test-git"')
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self._read_body(length)
                env = {
                    "PATH": "/usr/local/bin:/usr/bin:/bin",
                    "GIT_PROJECT_ROOT": str(server.base),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": parts.path,
                    "QUERY_STRING": parts.query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": user,
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                }
                result = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True
                )
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                status = 200
                headers: list[tuple[str, str]] = []
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers.append((name, value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _read_body(self, length: int) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(length) if length else b""

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@dataclass
class RedirectServer:
    """Answers every request with a redirect to `target` + the same path (a moved or a
    hostile Git server), recording the Authorization headers it was sent."""

    target: str  # e.g. http://127.0.0.2:PORT
    status: int = 302
    ask_first: bool = False  # answer 401 until a request carries Authorization, then redirect
    port: int = 0
    authorizations: list[str | None] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def start(self) -> None:
        redirect = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                redirect.authorizations.append(self.headers.get("Authorization"))
                if redirect.ask_first and not self.headers.get("Authorization"):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="fleet-test-redirect"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(redirect.status)
                self.send_header("Location", redirect.target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def main(argv: list[str] | None = None) -> None:
    """Serve BASE's bare repositories without authentication until SIGTERM; prints the port."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("base", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = GitHttpServer(args.base, token=None, port=args.port)
    server.start()
    print(server.port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
