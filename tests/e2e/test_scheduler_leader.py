"""Issue 8, case 10: two real `fleet serve` processes for one fleet, one real worker.

The first one to tick holds the leader lease and dispatches; the second polls, serves
`/status` with `"scheduler": {"leader": false, "leaderId": <the first>}` and says so in
its log. Killed with SIGKILL (no release), the first one's lease expires and the second
takes over: a new commit pushed to it then converges.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import LocalFleet
from tests.e2e.dist_support import Distributed, FleetProcess, distributed, wait_until
from tests.e2e.sync_support import suffix
from tests.support.servers import GitServer, RedisServer, free_port

pytestmark = pytest.mark.timeout(300)


def _status(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as answer:
            return dict(json.loads(answer.read()))
    except OSError:
        return {}


def test_only_one_serve_dispatches_and_the_other_takes_over_when_it_dies(
    local_fleet: LocalFleet, git_server: GitServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    sfx = suffix()
    tree = git_server.create_repo(f"leader-{sfx}", tmp_path / "repo")
    tree.write("fleet.yaml", yaml.safe_dump({
        "apiVersion": "fleet-gitops.io/v1alpha1", "kind": "Fleet", "name": f"leader-{sfx}",
        "clusters": [{"name": "dev-eu", "labels": {"region": "eu"}}],
        "bundles": {"paths": [{"glob": "bundles/*"}]},
    }, sort_keys=False))  # fmt: skip
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}
    tree.write("bundles/app/fleet.yaml", yaml.safe_dump({"defaultNamespace": f"leader-{sfx}"}))
    tree.write("bundles/app/cm.yaml", yaml.safe_dump({**config, "data": {"v": "one"}}))
    first = tree.commit_and_push("one")
    url = redis_server.url.rsplit("/", 1)[0] + "/10"
    with distributed(
        tree.remote_url, tmp_path / "logs", url, local_fleet.dir, FLEET_LEADER_TTL="3"
    ) as dist:
        dist.start_worker("eu", "eu")
        leader = dist.start_serve("--poll-interval", "3600")
        dist.wait_converged(first, timeout=120)
        standby_port = free_port()
        standby = _second_serve(dist, standby_port)
        try:
            wait_until(lambda: _status(standby_port).get("commit") == first, 60,
                       "the standby to load the commit", dist)  # fmt: skip
            seen = _status(standby_port)["scheduler"]
            lead = dist.status()["scheduler"]
            assert lead["leader"] is True and seen["leader"] is False
            assert seen["leaderId"] == lead["id"]
            assert "standing by" in standby.tail(100)
            assert "fleet_scheduler_leader 0" in _metrics(standby_port)
            assert 'fleet.apply_unit"}' not in _metrics(standby_port)  # it sent nothing

            leader.kill()  # SIGKILL: no release; the lease expires after FLEET_LEADER_TTL
            killed = time.monotonic()
            wait_until(lambda: _status(standby_port).get("scheduler", {}).get("leader"), 60,
                       "the standby to take over", dist)  # fmt: skip
            print(
                f"\nstandby took over {time.monotonic() - killed:.1f}s after the SIGKILL (TTL 3s)"
            )
            tree.write("bundles/app/cm.yaml", yaml.safe_dump({**config, "data": {"v": "two"}}))
            second = tree.commit_and_push("two")
            dist.port = standby_port  # webhooks and /status go to the new leader now
            assert dist.push_webhook(second) == 202
            dist.wait_converged(second, timeout=120)
            assert "is the scheduler of fleet" in standby.tail(200)
            assert 'fleet_tasks_dispatched_total{task="fleet.apply_unit"} 1' in _metrics(
                standby_port
            )
        finally:
            standby.stop()


def _second_serve(dist: Distributed, port: int) -> FleetProcess:
    env = {**dist.env, "FLEET_CACHE_DIR": str(dist.logs / "cache-standby")}
    env.pop("FLEET_CREDENTIALS_DIR", None)
    args = ["serve", dist.repo_url, "--listen", f"127.0.0.1:{port}", "--tick", "0.5",
            "--poll-interval", "3600"]  # fmt: skip
    return FleetProcess(args, env, dist.logs / "serve-standby.log").start()


def _metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""
