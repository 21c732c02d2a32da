"""Helpers for the distributed e2e tests: real `fleet serve` and `fleet worker` processes.

Each process runs `python -m fleet ...` in its own session (so a test can SIGKILL a whole
worker), logs to a file the failure message points at, and is stopped by pid at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.source.webhooks import github_signature
from tests.conftest import ROOT
from tests.support.servers import free_port

SECRET = "dist-webhook-secret"


@dataclass
class FleetProcess:
    """One `python -m fleet ...` child and its log file."""

    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FleetProcess:
        out = open(self.log, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleet", *self.args],
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Distributed:
    """`fleet serve` + workers sharing one environment."""

    repo_url: str
    env: dict[str, str]
    logs: Path
    port: int = field(default_factory=free_port)
    serve: FleetProcess | None = None
    workers: dict[str, FleetProcess] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_serve(self, *extra: str) -> FleetProcess:
        env = {**self.env, "FLEET_CACHE_DIR": str(self.logs / "cache-serve")}
        env.pop("FLEET_CREDENTIALS_DIR", None)  # the scheduler needs no cluster credential
        self.serve = FleetProcess(
            [
                "serve",
                self.repo_url,
                "--listen",
                f"127.0.0.1:{self.port}",
                "--tick",
                "0.5",
                *extra,
            ],
            env,
            self.logs / "serve.log",
        ).start()
        wait_until(lambda: self.get("/healthz") is not None, 30, "fleet serve to listen", self)
        return self.serve

    def start_worker(
        self, name: str, *regions: str, env: Mapping[str, str] | None = None
    ) -> FleetProcess:
        args = ["worker", "--concurrency", "3", "--name", f"{name}@test"]
        for region in regions:
            args += ["--region", region]
        worker_env = {
            **self.env,
            "FLEET_CACHE_DIR": str(self.logs / f"cache-{name}"),
            **(env or {}),
        }
        proc = FleetProcess(args, worker_env, self.logs / f"worker-{name}.log").start()
        self.workers[name] = proc
        return proc

    def get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as answer:
                return str(answer.read().decode())
        except (urllib.error.URLError, OSError):
            return None

    def status(self) -> dict[str, Any]:
        text = self.get("/status")
        return json.loads(text) if text else {}

    def push_webhook(self, sha: str, branch: str = "main") -> int:
        body = json.dumps(
            {
                "ref": f"refs/heads/{branch}",
                "after": sha,
                "repository": {"clone_url": self.repo_url},
            }
        ).encode()
        request = urllib.request.Request(
            self.base + "/",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-Hub-Signature-256": github_signature(SECRET, body),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)

    def wait_converged(self, commit: str, timeout: float = 180) -> dict[str, Any]:
        """Poll /status until every unit is Ready at `commit` and nothing is left to do."""

        def done() -> dict[str, Any] | None:
            status = self.status()
            if status.get("commit") == commit and status.get("converged"):
                return status
            return None

        return wait_until(done, timeout, f"convergence at {commit[:12]}", self)

    def describe(self) -> str:
        parts = [f"--- /status\n{json.dumps(self.status(), indent=1)[:6000]}"]
        for name, proc in [("serve", self.serve), *self.workers.items()]:
            if proc is not None:
                parts.append(f"--- {name} ({proc.log})\n{proc.tail()}")
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in [*self.workers.values(), self.serve]:
            if proc is not None:
                proc.stop()


def wait_until(
    check: Callable[[], Any], timeout: float, what: str, dist: Distributed | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    detail = dist.describe() if dist is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")


@contextmanager
def distributed(
    repo_url: str, logs: Path, redis_url: str, credentials: Path, **extra_env: str
) -> Iterator[Distributed]:
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "FLEET_REDIS_URL": redis_url,
        "FLEET_CREDENTIALS_DIR": str(credentials),
        "FLEET_WEBHOOK_SECRET": SECRET,
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    dist = Distributed(repo_url, env, logs)
    try:
        yield dist
    finally:
        dist.stop()
