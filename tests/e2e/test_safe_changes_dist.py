"""Handovers and conflicts in the distributed runtime: real Redis, real workers, real Git.

A renamed bundle is one removal task and one apply task; they may run in either order, on
different workers. `UnitWorker` (the work behind each task) runs them here in both orders
against a real cluster; then the same rename goes through `fleet serve` and a `fleet worker`
process end to end. "Not deleted" is the same uid and no DELETE in the audit log.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from fleet.engine.inventory import read_inventory
from fleet.engine.kube import ObjectRef
from fleet.engine.labels import LABEL_BUNDLE
from fleet.plugin.manager import FleetPlugins
from fleet.runtime.revisions import RevisionLoader
from fleet.runtime.state_cache import StateCache, connect_redis
from fleet.runtime.worker import UnitJob, UnitWorker
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.dist_support import distributed
from tests.e2e.safe_support import CLUSTER, SafeFleet, configmap, namespace, new_fleet
from tests.e2e.sync_support import fleet_env  # noqa: F401  (fixture)
from tests.support.servers import GitServer, RedisServer

pytestmark = pytest.mark.usefixtures("fleet_env")


@dataclass
class Bed:
    fleet: SafeFleet
    worker: UnitWorker
    cache: StateCache

    def unit_id(self, commit: str, bundle: str) -> str:
        rev = self.worker.loader.load(self.fleet.tree.remote_url, commit)
        return rev.by_key[(bundle, CLUSTER)].deployment_id

    def job(self, commit: str, bundle: str, with_id: bool = True) -> UnitJob:
        unit_id = self.unit_id(commit, bundle) if with_id else ""
        return UnitJob(
            self.fleet.name, self.fleet.tree.remote_url, commit, bundle, CLUSTER, unit_id
        )

    def desire(self, commit: str) -> None:
        """What the scheduler writes for the commit in force (workers check it)."""
        rev = self.worker.loader.load(self.fleet.tree.remote_url, commit)
        ids = {key: unit.deployment_id for key, unit in rev.by_key.items()}
        self.cache.set_desired(ids, commit=commit)

    def apply(self, commit: str, bundle: str) -> str:
        job = self.job(commit, bundle)
        self.desire(commit)
        return self.worker.apply(job).state


@pytest.fixture
def bed(
    git_server: GitServer,
    local_fleet: LocalFleet,
    redis_server: RedisServer,
    tmp_path: Path,
) -> Iterator[Bed]:
    made = new_fleet(git_server, local_fleet, tmp_path / "repo", prefix="dist")
    redis = connect_redis(redis_server.url)
    worker = UnitWorker(
        redis,
        name="safe-worker",
        loader=RevisionLoader(FleetPlugins.load(entry_points=False)),
        env={"FLEET_CREDENTIALS_DIR": str(local_fleet.dir)},
    )
    yield Bed(made, worker, StateCache(redis, made.name))
    with contextlib.suppress(client.ApiException):
        made.core().delete_namespace(made.ns("data"))
    made.conn.close()


def refs(ns: str) -> list[ObjectRef]:
    return [
        ObjectRef("v1", "Namespace", None, ns),
        ObjectRef("v1", "ConfigMap", ns, "settings"),
    ]


@pytest.mark.parametrize("order", ["remove-first", "apply-first"])
def test_a_renamed_bundle_is_handed_over_whatever_order_the_tasks_run(bed: Bed, order: str) -> None:
    fleet = bed.fleet
    data = fleet.ns("data")
    fleet.write("apps/data/ns.yaml", namespace(data))
    fleet.write("apps/data/cm.yaml", configmap("settings", data, v="1"))
    first = fleet.commit("data")
    assert bed.apply(first, "apps-data") == "Ready"
    before = [fleet.uid(r) for r in refs(data)]
    assert None not in before

    fleet.move("apps/data", "apps/store")
    second = fleet.commit("rename")
    bed.desire(second)
    mark = fleet.audit.mark()
    if order == "remove-first":
        removed = bed.worker.remove(bed.job(second, "apps-data", with_id=False), False)
        assert removed.state == "Ready", removed
        assert "kept 2" in removed.message  # handed over, not deleted
        assert bed.apply(second, "apps-store") == "Ready"
    else:
        assert bed.apply(second, "apps-store") == "Ready"
        removed = bed.worker.remove(bed.job(second, "apps-data", with_id=False), False)
        assert removed.state == "Ready", removed

    assert fleet.deletes(mark, data) == []
    assert [fleet.uid(r) for r in refs(data)] == before
    live = fleet.live(refs(data)[1])
    assert live is not None and live["metadata"]["labels"][LABEL_BUNDLE] == "apps-store"
    assert not read_inventory(fleet.conn, "apps-data", fleet.name).exists
    assert set(refs(data)) <= read_inventory(fleet.conn, "apps-store", fleet.name).refs()


def test_a_second_claim_is_err_applied_in_the_state_cache(bed: Bed) -> None:
    fleet = bed.fleet
    data = fleet.ns("data")
    fleet.write("apps/alpha/cm.yaml", configmap("shared", data, owner="alpha"))
    fleet.write("apps/beta/cm.yaml", configmap("shared", data, owner="beta"))
    commit = fleet.commit("two bundles, one object")
    assert bed.apply(commit, "apps-alpha") == "Ready"
    assert bed.apply(commit, "apps-beta") == "ErrApplied"
    record = bed.cache.actual([CLUSTER])[("apps-beta", CLUSTER)]
    assert record.state is BundleState.ERR_APPLIED
    assert f"ConfigMap {data}/shared is rendered by bundles apps-alpha and apps-beta" in (
        record.message
    )
    live = fleet.live(ObjectRef("v1", "ConfigMap", data, "shared"))
    assert live is not None and live["data"] == {"owner": "alpha"}


def test_a_rename_through_serve_and_a_worker(
    git_server: GitServer,
    local_fleet: LocalFleet,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    fleet = new_fleet(
        git_server, local_fleet, tmp_path / "repo", prefix=f"e2e{uuid.uuid4().hex[:2]}"
    )
    data = fleet.ns("data")
    try:
        fleet.write("apps/data/ns.yaml", namespace(data))
        fleet.write("apps/data/cm.yaml", configmap("settings", data, v="1"))
        first = fleet.commit("data")
        with distributed(
            fleet.tree.remote_url, tmp_path / "logs", redis_server.url, local_fleet.dir
        ) as dist:
            dist.start_serve()
            dist.start_worker("eu", "eu")
            assert dist.push_webhook(first) in (200, 202)
            dist.wait_converged(first)
            before = [fleet.uid(r) for r in refs(data)]

            fleet.move("apps/data", "apps/store")
            second = fleet.commit("rename")
            mark = fleet.audit.mark()
            assert dist.push_webhook(second) in (200, 202)
            status = dist.wait_converged(second)
            assert [u["bundle"] for u in status["units"]] == ["apps-store"], status
        assert fleet.deletes(mark, data) == []
        assert [fleet.uid(r) for r in refs(data)] == before
    finally:
        with contextlib.suppress(client.ApiException):
            fleet.core().delete_namespace(data)
        fleet.conn.close()
