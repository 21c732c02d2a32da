"""Issue 8, case 10: no second writer, on a real cluster of the test bed.

- two embedded `fleet sync` runs of one fleet at once, without Redis: the in-cluster Lease
  lets one write while the other reports the unit "locked by <holder>" and writes nothing;
- with Redis configured, `fleet sync` takes the workers' own lock: a unit a worker holds
  is reported locked, nothing applied;
- a run that loses its lock mid-sync stops before prune (the lock stolen right after it
  was taken, through a hook in the lock) or before the inventory write (stolen from
  outside during a slow health wait): nothing pruned, the inventory as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from fleet.engine.inventory import (
    Inventory,
    InventoryEntry,
    read_inventory,
    record,
    store_inventory,
)
from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.runtime.embedded import SyncReport, sync_fleet
from fleet.runtime.leases import ClusterLease, lease_name
from fleet.runtime.locks import UnitLock
from fleet.runtime.state_cache import connect_redis
from fleet.runtime.unit_guard import UnitGuard, UnitLocks
from fleet.states import BundleState
from tests.conftest import ROOT, LocalFleet
from tests.e2e.dist_support import distributed, wait_until
from tests.e2e.engine_support import core_api
from tests.e2e.sync_support import fleet_env  # noqa: F401  (fixture)
from tests.support.audit import AuditLog
from tests.support.servers import GitServer, RedisServer

pytestmark = pytest.mark.timeout(300)


class Repo:
    """A local fleet directory (synced as it is): one bundle on dev-eu."""

    def __init__(self, root: Path, sfx: str) -> None:
        self.root, self.sfx = root, sfx
        self.fleet, self.bundle, self.ns = f"locks-{sfx}", f"app-{sfx}", f"locks-{sfx}"
        self.write("fleet.yaml", {
            "apiVersion": "fleet-gitops.io/v1alpha1", "kind": "Fleet", "name": self.fleet,
            "clusters": [{"name": "dev-eu", "labels": {"env": "dev"}}],
            "bundles": {"paths": [{"glob": "bundles/*"}]},
        })  # fmt: skip
        self.write("bundles/app/fleet.yaml", {"name": self.bundle, "defaultNamespace": self.ns})

    def write(self, path: str, body: dict[str, Any]) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(body, sort_keys=False))

    def configmap(self, name: str, value: str) -> None:
        self.write(f"bundles/app/{name}.yaml", {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name}, "data": {"v": value}})  # fmt: skip

    def slow_deployment(self, image: str, min_ready: int) -> None:
        self.write("bundles/app/deploy.yaml", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "slow"},
            "spec": {"replicas": 1, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": "slow"}},
                     "template": {"metadata": {"labels": {"app": "slow"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}},
        })  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path, local_fleet: LocalFleet, fleet_env: None) -> Iterator[Repo]:  # noqa: F811
    made = Repo(tmp_path / "fleet", uuid.uuid4().hex[:6])
    yield made
    api = core_api(local_fleet, "dev-eu")
    for name in (made.ns,):
        with suppress(client.ApiException):
            api.delete_namespace(name)


def _coordination(local_fleet: LocalFleet) -> client.CoordinationV1Api:
    kubeconfig = str(local_fleet.clusters["dev-eu"].kubeconfig)
    return client.CoordinationV1Api(config.new_client_from_config(config_file=kubeconfig))


def _lease(local_fleet: LocalFleet, repo: Repo) -> Any:
    try:
        return _coordination(local_fleet).read_namespaced_lease(
            lease_name(repo.fleet, repo.bundle), "fleet-system"
        )
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise


def _steal(local_fleet: LocalFleet, repo: Repo, who: str) -> None:
    """Another writer takes the Lease over (as if ours had expired)."""
    body = {"spec": {"holderIdentity": f"{who}#stolen"}}
    _coordination(local_fleet).patch_namespaced_lease(
        lease_name(repo.fleet, repo.bundle), "fleet-system", body
    )


def _inventory_version(local_fleet: LocalFleet, repo: Repo) -> str | None:
    api = core_api(local_fleet, "dev-eu")
    for cm in api.list_namespaced_config_map("fleet-system").items:
        if (cm.metadata.annotations or {}).get("fleet-gitops.io/bundle-name") == repo.bundle:
            return str(cm.metadata.resource_version)
    return None


def _configmap_exists(local_fleet: LocalFleet, repo: Repo, name: str) -> bool:
    try:
        core_api(local_fleet, "dev-eu").read_namespaced_config_map(name, repo.ns)
    except client.ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def _until(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _in_thread(fn: Callable[[], SyncReport]) -> tuple[threading.Thread, list[SyncReport]]:
    out: list[SyncReport] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def _row(report: SyncReport, repo: Repo) -> Any:
    return next(r for r in report.status.units if r.bundle == repo.bundle)


def test_two_syncs_at_once_take_turns_through_the_lease(
    local_fleet: LocalFleet, repo: Repo
) -> None:
    repo.configmap("cfg", "one")
    repo.slow_deployment("nginx:1.27", min_ready=15)  # holds the lock for the health wait
    first, firsts = _in_thread(
        lambda: sync_fleet(repo.root, locks=UnitLocks(repo.fleet, holder="ci-job-a"))
    )
    try:
        _until(lambda: _lease(local_fleet, repo) is not None, "the first run's Lease")
        lease = _lease(local_fleet, repo)
        assert lease.spec.holder_identity.startswith("ci-job-a#")
        second = sync_fleet(repo.root, locks=UnitLocks(repo.fleet, holder="ci-job-b"))
    finally:
        first.join(timeout=240)
    assert not second.ok and second.writes == 0
    row = _row(second, repo)
    assert row.state is BundleState.WAIT_APPLIED
    assert row.message.startswith("locked by ci-job-a (another fleet sync or a worker")
    assert firsts and firsts[0].ok, firsts[0].status.units if firsts else "no report"
    assert _lease(local_fleet, repo) is None  # released at the end of the first run
    again = sync_fleet(repo.root, locks=UnitLocks(repo.fleet, holder="ci-job-b"))
    assert again.ok and again.writes == 0  # the first run did it all; the Lease is not a write


def test_with_redis_fleet_sync_takes_the_workers_lock(
    local_fleet: LocalFleet, repo: Repo, redis_server: RedisServer
) -> None:
    repo.configmap("cfg", "one")
    redis = connect_redis(redis_server.url)
    worker = UnitLock(redis, repo.fleet, repo.bundle, "dev-eu", 30, holder="eu@worker-1")
    with worker.hold():
        busy = sync_fleet(repo.root, redis_url=redis_server.url)
    row = _row(busy, repo)
    assert (row.state, busy.writes) == (BundleState.WAIT_APPLIED, 0)
    assert row.message.startswith("locked by eu@worker-1")
    assert not _configmap_exists(local_fleet, repo, "cfg")
    assert _lease(local_fleet, repo) is None  # Redis configured: no Lease
    done = sync_fleet(repo.root, redis_url=redis_server.url)
    assert done.ok and _configmap_exists(local_fleet, repo, "cfg")
    assert redis.get(worker.key) is None  # released


class StolenAfterAcquire(UnitLocks):
    """The Lease of a run, taken over by "ci-job-b" right after the run acquired it."""

    def __init__(self, repo: Repo, local_fleet: LocalFleet) -> None:
        super().__init__(repo.fleet, holder="ci-job-a", ttl=30)
        self.repo, self.local_fleet = repo, local_fleet

    def guard(self, bundle: str, cluster: str, conn: ClusterConnection) -> UnitGuard:
        lease = ClusterLease(conn, self.fleet, bundle, duration=self.ttl, holder=self.holder)
        repo, local_fleet = self.repo, self.local_fleet

        class Stolen:
            @contextmanager
            def hold(self) -> Iterator[object]:
                with lease.hold():
                    _steal(local_fleet, repo, "ci-job-b")
                    yield lease

            def still_owner(self) -> bool:
                return lease.still_owner()

        return Stolen()


def test_a_lock_lost_before_prune_prunes_nothing_and_keeps_the_inventory(
    local_fleet: LocalFleet, repo: Repo
) -> None:
    repo.configmap("cfg", "one")
    repo.configmap("leaving", "x")
    assert sync_fleet(repo.root).ok
    version = _inventory_version(local_fleet, repo)
    assert version is not None
    (repo.root / "bundles/app/leaving.yaml").unlink()  # a prune candidate
    repo.configmap("cfg", "two")
    audit = AuditLog(local_fleet.clusters["dev-eu"].kubeconfig, "dev-eu")
    mark = audit.mark()

    report = sync_fleet(repo.root, locks=StolenAfterAcquire(repo, local_fleet))
    row = _row(report, repo)
    assert row.state is BundleState.ERR_APPLIED and not report.ok
    assert (
        row.message == "lost the lock of the unit before prune: stopped, nothing pruned or recorded"
    )
    assert _configmap_exists(local_fleet, repo, "leaving")  # not pruned
    assert audit.deletes(mark, namespace=repo.ns) == []  # the API server saw no DELETE
    assert _inventory_version(local_fleet, repo) == version  # not written
    lease = _lease(local_fleet, repo)
    assert lease is not None and lease.spec.holder_identity == "ci-job-b#stolen"  # not deleted
    _coordination(local_fleet).delete_namespaced_lease(lease.metadata.name, "fleet-system")
    assert sync_fleet(repo.root).ok  # the next run finishes the job
    assert not _configmap_exists(local_fleet, repo, "leaving")


def test_a_lock_lost_during_the_health_wait_does_not_write_the_inventory(
    local_fleet: LocalFleet, repo: Repo
) -> None:
    repo.configmap("cfg", "one")
    repo.slow_deployment("nginx:1.27", min_ready=0)
    assert sync_fleet(repo.root).ok
    version = _inventory_version(local_fleet, repo)
    repo.slow_deployment("nginx:1.28", min_ready=20)  # a new rollout, slow to be available
    locks = UnitLocks(repo.fleet, holder="ci-job-a", ttl=3)  # renewed every second
    run, reports = _in_thread(lambda: sync_fleet(repo.root, locks=locks))
    try:
        _until(lambda: _lease(local_fleet, repo) is not None, "the run's Lease")
        apps = client.AppsV1Api(
            config.new_client_from_config(
                config_file=str(local_fleet.clusters["dev-eu"].kubeconfig)
            )
        )

        def rolled() -> bool:
            live = apps.read_namespaced_deployment("slow", repo.ns)
            return bool(live.spec.template.spec.containers[0].image == "nginx:1.28")

        _until(rolled, "the new Deployment to be applied")
        _steal(local_fleet, repo, "ci-job-b")
    finally:
        run.join(timeout=240)
    assert reports, "the run did not finish"
    row = _row(reports[0], repo)
    assert row.state is BundleState.ERR_APPLIED
    assert row.message == (
        "lost the lock of the unit before the inventory write: stopped, nothing pruned or recorded"
    )
    assert _inventory_version(local_fleet, repo) == version


def test_an_inventory_changed_since_it_was_read_is_merged_not_overwritten(
    local_fleet: LocalFleet, repo: Repo
) -> None:
    """The resourceVersion read at the start goes with the write: a concurrent write is a
    409, re-read and merged (both writers' objects recorded), never silently lost."""
    repo.configmap("cfg", "one")
    assert sync_fleet(repo.root).ok
    conn = ClusterConnection.from_kubeconfig(local_fleet.clusters["dev-eu"].kubeconfig)

    def plus(old: Inventory, name: str) -> Inventory:
        entry = InventoryEntry(ObjectRef("v1", "ConfigMap", repo.ns, name), "hash")
        new = record(old, [*old.objects, entry], commit="c0ffee", deployment_id=f"id-{name}",
                     state="Ready", message=name)  # fmt: skip
        assert new is not None
        return new

    try:
        old = read_inventory(conn, repo.bundle, repo.fleet)
        store_inventory(conn, plus(old, "elsewhere"))  # another writer, after our read
        store_inventory(conn, plus(old, "ours"))  # old's resourceVersion: 409, re-read, merged
        final = read_inventory(conn, repo.bundle, repo.fleet)
    finally:
        conn.close()
    assert {e.ref.name for e in final.objects} >= {"cfg", "elsewhere", "ours"}
    assert final.current is not None and final.current.message == "ours"
    assert [r.message for r in final.revisions][-2:] == ["elsewhere", "ours"]


def test_a_fleet_sync_next_to_a_busy_worker_reports_the_unit_locked_and_exits_1(
    local_fleet: LocalFleet, git_server: GitServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The real thing: `fleet serve` and a worker applying a slow unit, and the `fleet sync`
    CLI with the same Redis: the unit is "locked by" the worker, the CLI exits 1 and
    writes nothing; once the worker is done, the same command is a no-op."""
    sfx = uuid.uuid4().hex[:6]
    tree = git_server.create_repo(f"busy-{sfx}", tmp_path / "repo")
    repo = Repo(tree.path, sfx)  # the same files, in the Git work tree
    repo.configmap("cfg", "one")
    repo.slow_deployment("nginx:1.27", min_ready=20)
    commit = tree.commit_and_push("a slow unit")
    url = redis_server.url.rsplit("/", 1)[0] + "/11"
    lock_key = f"fleet:{repo.fleet}:lock:{repo.bundle}:dev-eu"
    client_ = connect_redis(url)
    with distributed(tree.remote_url, tmp_path / "logs", url, local_fleet.dir) as dist:
        dist.start_worker("eu")  # dev-eu has no region: the default queue
        dist.start_serve("--poll-interval", "3600")
        wait_until(lambda: client_.exists(lock_key), 90, "the worker to take the lock", dist)
        env = {**dist.env, "FLEET_CACHE_DIR": str(tmp_path / "cache-cli")}
        busy = subprocess.run(
            [sys.executable, "-m", "fleet", "sync", tree.remote_url, "-o", "json"],
            env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
        assert busy.returncode == 1, busy.stderr
        report = json.loads(busy.stdout)
        row = next(u for u in report["units"] if u["bundle"] == repo.bundle)
        assert row["state"] == "WaitApplied" and report["writes"] == 0
        assert row["message"].startswith("locked by eu@test"), row
        dist.wait_converged(commit, timeout=150)
        again = subprocess.run(
            [sys.executable, "-m", "fleet", "sync", tree.remote_url, "-o", "json"],
            env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
        assert json.loads(again.stdout)["writes"] == 0
