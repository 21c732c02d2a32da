"""A real Gitea (built by `tests/testbin/build.sh gitea`) on a free loopback port.

Gitea's commit-status API follows GitHub's shape under `/api/v1`, so fleet's `github`
notifier is tested against a real forge rather than only against a server written from
the documentation (tests/support/notify_servers.py).

The binary is built without bindata, so it reads its locales and templates from its own
source directory in the Go module cache (`STATIC_ROOT_PATH`); without them it exits at
start ("translation is missing"). Tests run as root here and in CI, which Gitea refuses
unless told otherwise (`I_AM_BEING_UNSAFE_RUNNING_AS_ROOT`, acceptable for a throwaway
loopback server). The database is sqlite (pure Go), the admin user and its token come
from `gitea admin` on the command line, repositories from the API, commits from real
`git push` over HTTP; its push webhooks may go to loopback (`[webhook] ALLOWED_HOST_LIST`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import free_port, stop, wait_for_port

MISSING_GITEA = "gitea not found; build it with: tests/testbin/build.sh gitea"
ADMIN = "fleet-admin"
PASSWORD = "fleet-test-password-1"  # a throwaway server's; the tests use the token

APP_INI = """\
APP_NAME = fleet-test
RUN_MODE = prod
WORK_PATH = {work}
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
ROOT_URL = http://127.0.0.1:{port}/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
APP_DATA_PATH = {work}/data
STATIC_ROOT_PATH = {source}

[database]
DB_TYPE = sqlite3
PATH = {work}/data/gitea.db

[repository]
ROOT = {work}/repos

[security]
INSTALL_LOCK = true
SECRET_KEY = fleet-test-secret-key

[service]
DISABLE_REGISTRATION = true

[cron]
ENABLED = false

[webhook]
; fleet's receiver in the tests listens on loopback, which Gitea refuses by default
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 10

[mailer]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
"""


def gitea_source(binary: str) -> Path:
    """Gitea's source directory in the module cache, for the version the binary reports."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    found = re.search(r"version (\d+\.\d+\.\d+)", out.stdout)
    if not found:
        raise RuntimeError(f"gitea --version said {out.stdout.strip()[:200]!r}")
    version = found.group(1)
    modcache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    source = Path(modcache) / f"code.gitea.io/gitea@v{version}"
    if not (source / "options" / "locale").is_dir():
        raise RuntimeError(
            f"gitea's source is not in {source}; fetch it with: "
            f"go mod download code.gitea.io/gitea@v{version}"
        )
    return source


@dataclass
class GiteaServer:
    """A real Gitea with one admin user and its API token (`token`), on loopback."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    binary: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        """The API base URL, the notifier's `FLEET_NOTIFIER_<CREDENTIAL>_URL`."""
        return f"{self.url}/api/v1"

    @property
    def owner(self) -> str:
        return ADMIN

    def _gitea(self, *args: str) -> str:
        config = self.workdir / "app.ini"
        cmd = [self.binary, "--config", str(config), "--work-path", str(self.workdir), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"gitea {' '.join(args[:3])} failed: {' | '.join(tail)}")
        return done.stdout

    def start(self) -> None:
        binary = shutil.which("gitea")
        if binary is None:
            raise RuntimeError(MISSING_GITEA)
        self.binary = binary
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "app.ini").write_text(
            APP_INI.format(work=self.workdir, port=self.port, source=gitea_source(binary))
        )
        self._gitea("migrate")
        self._gitea("admin", "user", "create", "--username", ADMIN, "--password", PASSWORD,
                    "--email", f"{ADMIN}@example.invalid", "--admin",
                    "--must-change-password=false")  # fmt: skip
        raw = self._gitea("admin", "user", "generate-access-token", "--username", ADMIN,
                          "--token-name", "fleet-tests", "--scopes", "all", "--raw")  # fmt: skip
        self.token = raw.strip().splitlines()[-1].strip()
        log = open(self.workdir / "gitea.log", "ab")  # noqa: SIM115 - child keeps it
        env = {**os.environ, "GITEA_WORK_DIR": str(self.workdir), "HOME": str(self.workdir)}
        self.proc = subprocess.Popen(
            [binary, "--config", str(self.workdir / "app.ini"), "web"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.workdir,
        )
        log.close()
        wait_for_port(self.port, self.proc, "gitea", timeout=60)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.request("GET", "/user")
                return
            except (OSError, RuntimeError):
                time.sleep(0.2)
        raise RuntimeError(f"gitea did not answer /api/v1/user within {timeout}s")

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One API call with the admin token; the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api + path, data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read(4 * 1024 * 1024)
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"gitea {method} {path}: HTTP {err.code}") from None
        return json.loads(raw) if raw else None

    def create_repo(self, name: str) -> str:
        """An empty repository of the admin's; its `owner/name`."""
        self.request("POST", "/user/repos", {"name": name, "auto_init": False})
        return f"{ADMIN}/{name}"

    def push_commit(self, repo: str, workdir: Path, files: dict[str, str]) -> str:
        """Commit `files` in a fresh clone and push it over HTTP; the commit's SHA."""
        remote = f"{self.url}/{repo}.git"  # the token goes in a header, not in the URL
        basic = base64.b64encode(f"{ADMIN}:{self.token}".encode()).decode()
        git = ["git", "-c", "user.name=fleet", "-c", "user.email=fleet@example.invalid",
               "-c", f"http.extraHeader=Authorization: Basic {basic}"]  # fmt: skip
        if not (workdir / ".git").is_dir():
            subprocess.run(["git", "init", "-q", "-b", "main", str(workdir)], check=True)
        for rel, text in files.items():
            (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
            (workdir / rel).write_text(text)
        subprocess.run([*git, "-C", str(workdir), "add", "-A"], check=True)
        subprocess.run([*git, "-C", str(workdir), "commit", "-qm", "fleet test"], check=True)
        subprocess.run([*git, "-C", str(workdir), "push", "-q", remote, "HEAD:main"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        out = subprocess.run(["git", "-C", str(workdir), "rev-parse", "HEAD"],
                             check=True, capture_output=True, text=True)  # fmt: skip
        return out.stdout.strip()

    def add_webhook(self, repo: str, url: str, secret: str) -> int:
        """A push webhook of Gitea's own type (it signs like GitHub: X-Hub-Signature-256);
        its id."""
        config = {"url": url, "content_type": "json", "secret": secret}
        hook = {"type": "gitea", "config": config, "events": ["push"], "active": True}
        return int(self.request("POST", f"/repos/{repo}/hooks", hook)["id"])

    def deliveries(self, hook_id: int) -> list[int]:
        """The HTTP status of each delivery Gitea made for the hook, oldest first. Gitea's
        API does not list them, so they are read from its database (read-only)."""
        db = self.workdir / "data" / "gitea.db"
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute(
                "SELECT response_content FROM hook_task"
                " WHERE hook_id = ? AND is_delivered = 1 ORDER BY id",
                (hook_id,),
            ).fetchall()
        # (a delivery's row is marked delivered a moment before its response is written)
        statuses = [int(json.loads(r[0] or "{}").get("status", 0)) for r in rows]
        return [s for s in statuses if s]

    def statuses(self, repo: str, sha: str) -> list[dict[str, Any]]:
        """The commit's statuses, newest first (by id: Gitea orders by creation time in
        seconds, so two statuses of one second come in either order)."""
        found = self.request("GET", f"/repos/{repo}/commits/{sha}/statuses?limit=50")
        return sorted(found or [], key=lambda s: int(s["id"]), reverse=True)
