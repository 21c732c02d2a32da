"""A definition's kubeconfig.path cannot put a worker secret into `/status`, Redis or the logs.

`fleet serve` (its real HTTP port, scheduler loop and Git source; the dispatcher records
instead of publishing) and a `UnitWorker` (the work of the refresh task) on a real Redis
and a real Git server, with `FLEET_GIT_TOKEN` in the environment of both:

- `path: /x/${FLEET_GIT_TOKEN}` is a broken commit: `/status` names the definition line,
  and the token is nowhere (before, the worker expanded it and reported "kubeconfig
  /x/<token> not found" into Redis, hence into the unauthenticated `/status`);
- `path: /proc/self/environ` (outside FLEET_KUBECONFIG_DIR) is refused by the worker with
  the definition's file:line, which reaches `/status` through Redis; the file is not read.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleet.plugin.manager import FleetPlugins
from fleet.runtime.revisions import RevisionLoader
from fleet.runtime.scheduler import SchedulerConfig
from fleet.runtime.serve import Server, start_server
from fleet.runtime.state_cache import connect_redis
from fleet.runtime.tasks import REFRESH_TASK, TaskArgs
from fleet.runtime.worker import UnitJob, UnitWorker
from tests.support.servers import GitServer, GitWorkTree, RedisServer

TOKEN = "ghp_StatusMustNotShow0123456789abcdef"

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
clusters:
  - name: edge
    kubeconfig:
      path: "{path}"
bundles:
  paths: [apps/*]
"""


@dataclass
class Recorder:
    sent: list[tuple[str, TaskArgs]] = field(default_factory=list)

    def send(self, task: str, kwargs: TaskArgs, queue: str) -> str:
        self.sent.append((task, dict(kwargs)))
        return f"task-{len(self.sent)}"


@dataclass
class Bed:
    server: Server
    recorder: Recorder
    work: GitWorkTree
    name: str
    worker: UnitWorker

    def status(self) -> str:
        url = f"http://127.0.0.1:{self.server.port}/status"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return str(answer.read().decode())

    def wait_for(self, text: str) -> str:
        """`/status` once it contains `text` (the loop ticks every 0.2 s)."""
        for _ in range(150):
            body = self.status()
            if text in body:
                return body
            self.server.scheduler.wake.set()
            time.sleep(0.2)
        raise AssertionError(f"/status never showed {text!r}: {body}")


@pytest.fixture
def bed(
    git_server: GitServer,
    redis_server: RedisServer,
    tmp_path: Path,
    source_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Bed]:
    kube = tmp_path / "operator-kube"
    kube.mkdir()
    monkeypatch.setenv("FLEET_GIT_TOKEN", TOKEN)  # the scheduler's environment too
    monkeypatch.setenv("FLEET_KUBECONFIG_DIR", str(kube))
    name = f"leak-{uuid.uuid4().hex[:8]}"
    work = git_server.create_repo(name, tmp_path / "work")
    work.write("fleet.yaml", DEFINITION.format(name=name, path="/x/${FLEET_GIT_TOKEN}"))
    work.write("apps/cfg/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
    work.commit_and_push("leaky path")
    recorder = Recorder()
    server = start_server(
        git_server.url(name),
        branch="main",
        listen="127.0.0.1:0",
        redis_url=redis_server.url,
        env={},
        dispatcher=recorder,
        config=SchedulerConfig(poll_interval=0.2),
        tick_interval=0.2,
    )
    worker = UnitWorker(
        connect_redis(redis_server.url),
        name="test-worker",
        loader=RevisionLoader(FleetPlugins.load(entry_points=False)),
        env={"FLEET_GIT_TOKEN": TOKEN, "FLEET_KUBECONFIG_DIR": str(kube), "HOME": str(tmp_path)},
    )
    try:
        yield Bed(server, recorder, work, name, worker)
    finally:
        server.stop()


def test_kubeconfig_paths_never_put_the_token_in_status_or_logs(
    bed: Bed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = bed.wait_for('commitError": {')
    commit_error = json.loads(body)["source"]["commitError"]
    assert any("fleet.yaml:7:" in p and "kubeconfig.path" in p for p in commit_error["problems"])
    assert TOKEN not in body

    bed.work.write("fleet.yaml", DEFINITION.format(name=bed.name, path="/proc/self/environ"))
    bed.work.commit_and_push("a path outside the operator's directory")
    bed.wait_for('"commitError": null')
    for _ in range(100):  # the first tick of the new commit sends a refresh for `edge`
        refreshes = [kw for task, kw in bed.recorder.sent if task == REFRESH_TASK]
        if refreshes:
            break
        time.sleep(0.1)
    kw = refreshes[0]
    job = UnitJob(str(kw["fleet"]), str(kw["repo_url"]), str(kw["commit"]), "*", "edge")
    outcome = bed.worker.refresh(job)
    assert outcome.state == "ErrApplied"
    assert "fleet.yaml:7: cluster 'edge': kubeconfig.path '/proc/self/environ' is outside" in (
        outcome.message
    )

    body = bed.wait_for("is outside FLEET_KUBECONFIG_DIR")
    row = json.loads(body)["units"][0]
    assert "fleet.yaml:7:" in json.dumps(row)
    assert TOKEN not in body
    assert TOKEN not in caplog.text
    redis = bed.worker.redis
    stored = "".join(
        json.dumps(redis.hgetall(key)) if redis.type(key) == "hash" else str(redis.get(key))
        for key in redis.scan_iter(f"*{bed.name}*")
        if redis.type(key) in ("hash", "string")
    )
    assert stored and TOKEN not in stored
