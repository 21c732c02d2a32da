"""Faults the distributed mode must survive, each with real processes and bounded in time.

1. a worker SIGKILLed in the middle of an apply: the task is redelivered (acks_late and a
   short visibility timeout) to another worker, and the cluster converges unchanged;
2. Redis restarted (all data lost) during a rollout: the scheduler notices, has the
   inventories read again and finishes;
3. one cluster's kube-apiserver stopped: reported unreachable, retried with backoff, the
   other clusters converge, and it converges once it is back (its own small fleet);
4. the Git server unreachable: the last revision stays in force, the error is in /status,
   and polling picks up new commits once it is back (its own git daemon).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import localfleet
import pytest
import yaml

from fleet.runtime.state_cache import StateCache, connect_redis
from tests.conftest import LocalFleet
from tests.e2e.dist_support import distributed, wait_until
from tests.e2e.engine_support import apps_api
from tests.e2e.sync_support import demo_repo, deployed, suffix
from tests.support.servers import GitServer, GitWorkTree, RedisServer

pytestmark = pytest.mark.timeout(300)


def small_repo(
    git_server: GitServer, workdir: Path, sfx: str, clusters: dict[str, dict[str, str]],
    min_ready_seconds: int = 0,
) -> GitWorkTree:  # fmt: skip
    """One raw-YAML bundle (a Deployment and a ConfigMap) on the given clusters."""
    tree = git_server.create_repo(f"faults-{sfx}", workdir)
    definition = {
        "apiVersion": "fleet-gitops.io/v1alpha1",
        "kind": "Fleet",
        "name": f"faults-{sfx}",
        "source": {"pollInterval": "1s"},
        "clusters": [{"name": name, "labels": labels} for name, labels in clusters.items()],
        "bundles": {"paths": [{"glob": "bundles/*"}]},
    }
    tree.write("fleet.yaml", yaml.safe_dump(definition, sort_keys=False))
    tree.write(
        "bundles/app/fleet.yaml",
        yaml.safe_dump({"name": f"app-{sfx}", "defaultNamespace": f"app-{sfx}"}),
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {
            "replicas": 1,
            "minReadySeconds": min_ready_seconds,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        },
    }
    tree.write("bundles/app/deployment.yaml", yaml.safe_dump(deployment))
    tree.write("bundles/app/config.yaml", _config("one"))
    return tree


def _config(value: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}, "data": {"v": value}}
    )


def _db(redis_server: RedisServer, index: int) -> str:
    return redis_server.url.rsplit("/", 1)[0] + f"/{index}"


def test_a_worker_killed_mid_apply_is_redelivered_and_converges(
    local_fleet: LocalFleet, git_server: GitServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    sfx = suffix()
    tree = small_repo(git_server, tmp_path / "repo", sfx, {"dev-eu": {"region": "eu"}}, 8)
    commit = tree.commit_and_push("slow app")
    url = _db(redis_server, 5)
    client = connect_redis(url)
    lock_key = f"fleet:faults-{sfx}:lock:app-{sfx}:dev-eu"
    with distributed(
        tree.remote_url, tmp_path / "logs", url, local_fleet.dir,
        # the wait for health is capped at half the visibility timeout (10 s): longer than
        # the app's minReadySeconds, so the one apply task ends Ready, not NotReady
        FLEET_CELERY_VISIBILITY_TIMEOUT="20", FLEET_LOCK_TTL="6",
    ) as dist:  # fmt: skip
        first = dist.start_worker("eu-a", "eu")
        dist.start_serve("--poll-interval", "3600")
        wait_until(lambda: client.exists(lock_key), 60, "the apply to start", dist)
        first.kill()  # SIGKILL to the whole worker, lock held, message unacked
        killed_at = time.monotonic()
        dist.start_worker("eu-b", "eu")
        status = dist.wait_converged(commit, timeout=120)
        redelivered_after = time.monotonic() - killed_at
        assert {u["state"] for u in status["units"]} == {"Ready"}
        record = StateCache(client, f"faults-{sfx}").actual(["dev-eu"])[(f"app-{sfx}", "dev-eu")]
        assert record.by == "eu-b@test"
        # redelivered, not dispatched again: the scheduler sent one apply task
        assert 'fleet_tasks_dispatched_total{task="fleet.apply_unit"} 1' in (
            dist.get("/metrics") or ""
        )
        live = apps_api(local_fleet, "dev-eu").read_namespaced_deployment("app", f"app-{sfx}")
        assert live.metadata.generation == 1  # applied twice, changed once
        assert "applying" in first.tail(200)
        print(f"\nredelivered and converged {redelivered_after:.1f}s after the SIGKILL")


def test_redis_wiped_during_a_rollout_is_recovered_from_the_inventories(
    local_fleet: LocalFleet, git_server: GitServer, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        sfx = suffix()
        tree = demo_repo(git_server, tmp_path / "repo", sfx)
        commit = tree.commit_and_push("the demo fleet")
        with distributed(tree.remote_url, tmp_path / "logs", redis.url, local_fleet.dir) as dist:
            dist.start_worker("eu", "eu")
            dist.start_worker("us", "us")
            dist.start_serve("--poll-interval", "3600")

            def some_ready() -> bool:
                units = dist.status().get("units", [])
                return any(u["state"] == "Ready" for u in units)

            wait_until(some_ready, 120, "the rollout to start", dist)
            redis.restart()  # no persistence: every key, queue and claim is gone
            dist.wait_converged(commit, timeout=180)
            metrics = dist.get("/metrics") or ""
            assert "fleet_redis_data_lost_total 1" in metrics
            cache = StateCache(connect_redis(redis.url), f"sync-{sfx}")
            records = cache.actual(["dev-eu", "prod-eu", "prod-us"])
            assert len(records) == 9
            assert "inventory" in {r.by for r in records.values()}  # read back, not re-applied
            for cluster in ("dev-eu", "prod-eu", "prod-us"):
                assert {rec.commit for rec in deployed(local_fleet, cluster).values()
                        if rec.fleet == f"sync-{sfx}"} == {commit}  # fmt: skip
    finally:
        redis.stop()


@pytest.fixture
def outage_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One extra cluster of this test's own (region us), so stopping it harms no one."""
    fleet_dir = tmp_path_factory.mktemp("outage-fleet")
    try:
        localfleet.up(fleet_dir, [("edge-us", {"env": "edge", "region": "us"})])
    except localfleet.LocalFleetError as err:
        pytest.fail(f"outage cluster did not start: {err}", pytrace=False)
    try:
        yield fleet_dir
    finally:
        localfleet.down(fleet_dir)


def test_an_unreachable_cluster_is_retried_and_the_others_converge(
    local_fleet: LocalFleet,
    git_server: GitServer,
    redis_server: RedisServer,
    outage_fleet: Path,
    tmp_path: Path,
) -> None:
    sfx = suffix()
    clusters = {"dev-eu": {"region": "eu"}, "edge-us": {"region": "us"}}
    tree = small_repo(git_server, tmp_path / "repo", sfx, clusters)
    commit = tree.commit_and_push("app everywhere")
    localfleet.stop_component(outage_fleet, "edge-us", "kube-apiserver")
    kubeconfig = str(outage_fleet / "edge-us.kubeconfig")
    with distributed(
        tree.remote_url, tmp_path / "logs", _db(redis_server, 6), local_fleet.dir,
        FLEET_KUBECONFIG_EDGE_US=kubeconfig, FLEET_RETRY_BASE="1", FLEET_FAILURE_COOLDOWN="3",
    ) as dist:  # fmt: skip
        dist.start_worker("eu", "eu")
        dist.start_worker("us", "us")
        dist.start_serve("--poll-interval", "3600")

        def rows() -> dict[str, dict[str, str]]:
            return {u["cluster"]: u for u in dist.status().get("units", [])}

        def split() -> bool:
            found = rows()
            edge = found.get("edge-us", {})
            return (
                found.get("dev-eu", {}).get("state") == "Ready"
                and edge.get("state") == "ErrApplied"
                and "will retry in" in edge.get("message", "")
            )

        wait_until(split, 90, "dev-eu Ready and edge-us reported unreachable", dist)
        assert "unreachable" in rows()["edge-us"]["message"]
        assert "will retry in" in dist.workers["us"].tail(200)
        localfleet.start_component(outage_fleet, "edge-us", "kube-apiserver")
        dist.wait_converged(commit, timeout=150)


def test_git_unreachable_keeps_the_last_revision_and_polling_resumes(
    local_fleet: LocalFleet, redis_server: RedisServer, tmp_path: Path
) -> None:
    server = GitServer(tmp_path / "git" / "repos")
    server.start()
    try:
        sfx = suffix()
        tree = small_repo(server, tmp_path / "repo", sfx, {"dev-eu": {"region": "eu"}})
        first = tree.commit_and_push("config one")
        with distributed(
            tree.remote_url, tmp_path / "logs", _db(redis_server, 7), local_fleet.dir
        ) as dist:
            dist.start_worker("eu", "eu")
            dist.start_serve("--poll-interval", "1")
            dist.wait_converged(first)
            server.stop()

            def error() -> str | None:
                return dist.status().get("source", {}).get("error")

            message = wait_until(error, 60, "the Git error in /status", dist)
            assert "failed" in message or "unreachable" in message, message
            status = dist.status()
            assert status["commit"] == first and status["state"] == "Ready"
            assert "fleet_source_up 0" in (dist.get("/metrics") or "")
            server.start()  # same port
            tree.write("bundles/app/config.yaml", _config("two"))
            second = tree.commit_and_push("config two")
            dist.wait_converged(second, timeout=90)  # polling found it, no webhook
            assert dist.status()["source"]["error"] is None
            core = apps_api(local_fleet, "dev-eu")  # the Deployment is still there
            assert core.read_namespaced_deployment("app", f"app-{sfx}").metadata.generation == 1
    finally:
        server.stop()
