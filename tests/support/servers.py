"""Real servers for the integration and e2e tiers: redis-server and a git server.

Both listen on loopback on free ports and are stopped by the fixture that started them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A free loopback port below the ephemeral range (see localfleet.free_port: no outgoing
    connection can take it before the server binds it)."""
    from localfleet import free_port as _free_port

    return _free_port()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


MISSING_REDIS = (
    "redis-server not found; install it with: apt-get install -y redis-server "
    "(`make test` does this when run as root on Debian/Ubuntu)"
)


@dataclass
class RedisServer:
    """A real redis-server on a free loopback port, restartable (for fault tests)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(MISSING_REDIS)
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "yes",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_for_port(self.port, self.proc, "redis-server")

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


MISSING_ALERTMANAGER = (
    "prometheus-alertmanager not found; install it with: apt-get install -y "
    "prometheus-alertmanager (`make test` does this when run as root on Debian/Ubuntu)"
)
ALERTMANAGER_CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
"""


@dataclass
class AlertmanagerServer:
    """A real Prometheus Alertmanager (Debian's package) on a free loopback port, no cluster."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise RuntimeError(MISSING_ALERTMANAGER)
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(ALERTMANAGER_CONFIG)
        log = open(self.workdir / "alertmanager.log", "ab")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_for_port(self.port, self.proc, "alertmanager")

    def alerts(self, **labels: str) -> list[dict[str, object]]:
        """GET /api/v2/alerts (active ones), only those with these labels."""
        import json
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as answer:
            found: list[dict[str, object]] = json.loads(answer.read())
        return [
            a
            for a in found
            if all((a.get("labels") or {}).get(k) == v for k, v in labels.items())  # type: ignore[union-attr]
        ]

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None


@dataclass
class GitServer:
    """`git daemon` serving bare repositories under `base` over git:// (push enabled)."""

    base: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        log = open(self.base.parent / "git-daemon.log", "ab")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                f"--base-path={self.base}",
                "--export-all",
                "--enable=receive-pack",
                "--informative-errors",
                str(self.base),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_for_port(self.port, self.proc, "git daemon")

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def create_repo(self, name: str, workdir: Path) -> GitWorkTree:
        """A new bare repository `name` on the server and a clone of it in `workdir`."""
        bare = self.base / f"{name}.git"
        run_git("init", "--bare", "--initial-branch=main", str(bare))
        run_git("clone", "--quiet", self.url(name), str(workdir))
        tree = GitWorkTree(workdir, self.url(name))
        run_git("config", "user.email", "tests@fleet.invalid", cwd=workdir)
        run_git("config", "user.name", "fleet tests", cwd=workdir)
        run_git("checkout", "--quiet", "-b", "main", cwd=workdir)
        return tree


def run_git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass
class GitWorkTree:
    """A clone that tests write files into, commit and push."""

    path: Path
    remote_url: str

    def write(self, relpath: str, text: str) -> Path:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def commit_and_push(self, message: str, branch: str = "main") -> str:
        run_git("add", "-A", cwd=self.path)
        run_git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.path)
        run_git("push", "--quiet", "origin", f"HEAD:{branch}", cwd=self.path)
        return run_git("rev-parse", "HEAD", cwd=self.path)
