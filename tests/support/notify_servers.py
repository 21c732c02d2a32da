"""Receivers for the notifier tests: a recording HTTP endpoint and a commit-status forge.

`Receiver` records every request (method, path, headers, exact body) and can be told to
answer 500 to the first N requests, to show retries. `StatusForge` implements exactly the
two documented commit-status endpoints and their list endpoints:

- GitHub REST: `POST /repos/{owner}/{repo}/statuses/{sha}` (JSON `state` in error,
  failure, pending, success; `target_url`, `description`, `context` default "default";
  `Authorization: Bearer|token <token>`, else 401 `{"message": "Bad credentials"}`;
  anything else 422 `{"message": "Validation Failed", "errors": [...]}`; 201 with the
  status object) and `GET /repos/{owner}/{repo}/commits/{ref}/statuses`;
- GitLab REST v4: `POST /api/v4/projects/:id/statuses/:sha` (`:id` a number or the
  URL-encoded path; `state` in pending, running, success, failed, canceled, skipped;
  `name`/`context` default "default"; `PRIVATE-TOKEN`, else 401 `{"message": "401
  Unauthorized"}`; a bad state 400 `{"error": "state does not have a valid value"}`;
  201 with the status object) and `GET /api/v4/projects/:id/repository/commits/:sha/statuses`.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased: HTTP header names are case-insensitive
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Server:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner._handle(self, "POST")

            def do_GET(self) -> None:
                owner._handle(self, "GET")

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

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Request(
            method, handler.path, {k.lower(): v for k, v in handler.headers.items()}, body
        )
        with self.lock:
            self.requests.append(request)
            status, answer = self.answer(request)
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def answer(self, request: Request) -> tuple[int, Any]:
        raise NotImplementedError


class Receiver(_Server):
    """Answers 200 `{}`, or 500 to the first `fail_first` requests (`fail_first=-1`: all)."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first

    def answer(self, request: Request) -> tuple[int, Any]:
        if self.fail_first < 0 or len(self.requests) <= self.fail_first:
            return 500, {"error": "receiver down"}
        return 200, {}


@dataclass
class StatusForge(_Server):
    """GitHub's and GitLab's commit-status endpoints (see the module docstring)."""

    token: str = "forge-token"
    statuses: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def answer(self, request: Request) -> tuple[int, Any]:
        path = urllib.parse.urlsplit(request.path).path
        if path.startswith("/api/v4/"):
            return self._gitlab(request, path.removeprefix("/api/v4"))
        return self._github(request, path)

    # ---------------------------------------------------------------- GitHub

    def _github(self, request: Request, path: str) -> tuple[int, Any]:
        auth = request.headers.get("authorization", "")
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return 401, {
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
            }
        post = re.fullmatch(r"/repos/([^/]+)/([^/]+)/statuses/([^/]+)", path)
        if request.method == "POST" and post:
            owner, repo, sha = post.groups()
            body = request.json()
            state = body.get("state")
            if state not in ("error", "failure", "pending", "success") or not SHA.match(sha):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"resource": "Status", "code": "custom", "field": "state"}],
                }
            unknown = set(body) - {"state", "target_url", "description", "context"}
            if unknown:
                return 422, {"message": "Validation Failed", "errors": sorted(unknown)}
            status = {
                "url": f"{self.url}/repos/{owner}/{repo}/statuses/{sha}",
                "id": len(self.requests),
                "node_id": f"SC_{len(self.requests)}",
                "state": state,
                "description": body.get("description"),
                "target_url": body.get("target_url"),
                "context": body.get("context") or "default",
                "created_at": "2026-12-02T00:00:00Z",
                "updated_at": "2026-12-02T00:00:00Z",
                "creator": {"login": "fleet-bot", "id": 1, "type": "Bot"},
            }
            self.statuses.setdefault((f"{owner}/{repo}", sha), []).insert(0, status)
            return 201, status
        listing = re.fullmatch(r"/repos/([^/]+)/([^/]+)/commits/([^/]+)/statuses", path)
        if request.method == "GET" and listing:
            owner, repo, sha = listing.groups()
            return 200, self.statuses.get((f"{owner}/{repo}", sha), [])
        return 404, {"message": "Not Found"}

    # ---------------------------------------------------------------- GitLab

    def _gitlab(self, request: Request, path: str) -> tuple[int, Any]:
        if request.headers.get("private-token") != self.token:
            return 401, {"message": "401 Unauthorized"}
        post = re.fullmatch(r"/projects/([^/]+)/statuses/([^/]+)", path)
        if request.method == "POST" and post:
            project, sha = urllib.parse.unquote(post.group(1)), post.group(2)
            body = request.json()
            state = body.get("state")
            if state not in ("pending", "running", "success", "failed", "canceled", "skipped"):
                return 400, {"error": "state does not have a valid value"}
            if not SHA.match(sha):
                return 404, {"message": "404 Commit Not Found"}
            status = {
                "id": len(self.requests),
                "sha": sha,
                "ref": body.get("ref"),
                "status": state,
                "name": body.get("name") or body.get("context") or "default",
                "target_url": body.get("target_url"),
                "description": body.get("description"),
                "created_at": "2026-12-02T00:00:00.000Z",
                "started_at": None,
                "finished_at": None,
                "allow_failure": False,
                "coverage": None,
                "author": {"id": 1, "username": "fleet-bot", "name": "fleet", "state": "active"},
            }
            self.statuses.setdefault((project, sha), []).insert(0, status)
            return 201, status
        listing = re.fullmatch(r"/projects/([^/]+)/repository/commits/([^/]+)/statuses", path)
        if request.method == "GET" and listing:
            project = urllib.parse.unquote(listing.group(1))
            return 200, self.statuses.get((project, listing.group(2)), [])
        return 404, {"message": "404 Not Found"}
