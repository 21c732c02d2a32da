"""`UnitWorker`, the work behind each distributed task, called directly: no Celery.

The tasks in `workers/tasks.py` are one call each into `UnitWorker`; here those calls run
against a real cluster of the test bed, a real Redis and a real Git server, so the glue
(stale and superseded jobs, the state cache records, claims released, the no-op re-apply,
drift, removal) is tested without a broker in between.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from fleet.errors import TransientError
from fleet.plugin.manager import FleetPlugins
from fleet.runtime.revisions import RevisionLoader
from fleet.runtime.state_cache import StateCache, connect_redis
from fleet.runtime.worker import UnitJob, UnitWorker
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.engine_support import core_api
from tests.e2e.sync_support import fleet_env  # noqa: F401  (fixture)
from tests.support.chart_repo import serve_chart_repo
from tests.support.servers import GitServer, GitWorkTree, RedisServer

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
clusters:
  - name: dev-eu
    labels: {{env: dev, region: eu}}
bundles:
  paths: [apps/*]
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: {ns}
data:
  v: "{value}"
"""


@dataclass
class Bed:
    worker: UnitWorker
    cache: StateCache
    work: GitWorkTree
    fleet: str
    ns: str
    api: client.CoreV1Api

    def job(self, commit: str, deployment_id: str = "", bundle: str = "apps-cfg") -> UnitJob:
        return UnitJob(self.fleet, self.work.remote_url, commit, bundle, "dev-eu", deployment_id)

    def unit_id(self, commit: str) -> str:
        rev = self.worker.loader.load(self.work.remote_url, commit)
        return rev.by_key[("apps-cfg", "dev-eu")].deployment_id

    def live_value(self) -> str | None:
        try:
            found = self.api.read_namespaced_config_map("cfg", self.ns)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise
        return str((found.data or {}).get("v"))


@pytest.fixture
def bed(
    local_fleet: LocalFleet,
    git_server: GitServer,
    redis_server: RedisServer,
    tmp_path: Path,
    fleet_env: None,  # noqa: F811
) -> Iterator[Bed]:
    name = f"worker-{uuid.uuid4().hex[:6]}"
    ns = f"wk-{uuid.uuid4().hex[:6]}"
    work = git_server.create_repo(name, tmp_path / "work")
    work.write("fleet.yaml", DEFINITION.format(name=name))
    work.write("apps/cfg/fleet.yaml", f"defaultNamespace: {ns}\n")
    work.write("apps/cfg/cm.yaml", CONFIGMAP.format(ns=ns, value="one"))
    redis = connect_redis(redis_server.url)
    worker = UnitWorker(
        redis,
        name="test-worker",
        loader=RevisionLoader(FleetPlugins.load(entry_points=False)),
        env={"FLEET_CREDENTIALS_DIR": str(local_fleet.dir)},
    )
    api = core_api(local_fleet, "dev-eu")
    yield Bed(worker, StateCache(redis, name), work, name, ns, api)
    with contextlib.suppress(client.ApiException):
        api.delete_namespace(ns)


def test_apply_records_ready_and_a_second_apply_writes_nothing(bed: Bed) -> None:
    commit = bed.work.commit_and_push("first")
    unit_id = bed.unit_id(commit)
    assert bed.cache.claim("apply", "apps-cfg", "dev-eu", unit_id, 600)

    outcome = bed.worker.apply(bed.job(commit, unit_id))
    assert (outcome.state, outcome.skipped, outcome.by) == ("Ready", False, "test-worker")
    assert outcome.writes > 0
    assert bed.live_value() == "one"
    record = bed.cache.actual(["dev-eu"])[("apps-cfg", "dev-eu")]
    assert (record.deployment_id, record.state, record.commit, record.by) == (
        unit_id,
        BundleState.READY,
        commit,
        "test-worker",
    )
    # The claim was released: the scheduler may send this unit again.
    assert bed.cache.claim("apply", "apps-cfg", "dev-eu", unit_id, 600)
    bed.cache.release("apply", "apps-cfg", "dev-eu", unit_id)

    again = bed.worker.apply(bed.job(commit, unit_id))  # a redelivered task
    assert (again.state, again.writes) == ("Ready", 0)


def test_a_stale_or_superseded_job_is_skipped_and_never_rolls_back(bed: Bed) -> None:
    first = bed.work.commit_and_push("first")
    old_id = bed.unit_id(first)
    bed.work.write("apps/cfg/cm.yaml", CONFIGMAP.format(ns=bed.ns, value="two"))
    second = bed.work.commit_and_push("second")
    new_id = bed.unit_id(second)
    assert old_id != new_id

    bed.cache.set_desired({("apps-cfg", "dev-eu"): new_id})
    assert bed.worker.apply(bed.job(second, new_id)).state == "Ready"
    assert bed.live_value() == "two"

    late = bed.worker.apply(bed.job(first, old_id))  # the old commit's task, delivered late
    assert late.skipped and late.state == "Pending"
    assert late.message == f"superseded by {new_id[:12]}"
    assert bed.live_value() == "two"

    wrong = bed.worker.apply(bed.job(second, old_id))  # an id this commit does not give
    assert wrong.skipped and f"gives {new_id[:12]}" in wrong.message
    record = bed.cache.actual(["dev-eu"])[("apps-cfg", "dev-eu")]
    assert record.deployment_id == new_id


def test_drift_is_reported_modified_and_cleared_after_a_reapply(bed: Bed) -> None:
    commit = bed.work.commit_and_push("first")
    unit_id = bed.unit_id(commit)
    bed.worker.apply(bed.job(commit, unit_id))
    clean = bed.worker.check_drift(bed.job(commit, unit_id))
    assert (clean.state, clean.message) == ("Ready", "no drift")

    bed.api.patch_namespaced_config_map("cfg", bed.ns, {"data": {"v": "by hand"}})
    drifted = bed.worker.check_drift(bed.job(commit, unit_id))
    assert drifted.state == "Modified"
    assert "cfg" in drifted.message
    assert bed.cache.actual(["dev-eu"])[("apps-cfg", "dev-eu")].state is BundleState.MODIFIED
    assert bed.live_value() == "by hand"  # a drift check writes nothing


def test_refresh_reads_the_inventories_and_removal_deletes_what_left_git(bed: Bed) -> None:
    commit = bed.work.commit_and_push("first")
    unit_id = bed.unit_id(commit)
    bed.worker.apply(bed.job(commit, unit_id))

    still = bed.worker.remove(bed.job(commit), keep_resources=False)  # still in Git
    assert still.skipped
    assert still.message == (
        f"remove superseded: commit {commit[:12]} deploys apps-cfg to dev-eu; nothing deleted"
    )
    assert bed.live_value() == "one"

    refreshed = bed.worker.refresh(bed.job(commit, bundle="*"))
    assert refreshed.message == "1 bundles deployed"
    assert bed.cache.actual(["dev-eu"])[("apps-cfg", "dev-eu")].by == "inventory"
    assert "dev-eu" in bed.cache.known(["dev-eu"])

    (bed.work.path / "apps/cfg/cm.yaml").unlink()
    (bed.work.path / "apps/cfg/fleet.yaml").unlink()
    bed.work.write("apps/other/cm.yaml", CONFIGMAP.format(ns=bed.ns, value="x").replace(
        "name: cfg", "name: other"))  # fmt: skip
    gone = bed.work.commit_and_push("cfg leaves Git")
    unknown = bed.worker.remove(bed.job(gone), keep_resources=False)  # no desired map yet
    assert unknown.skipped and "desired state is unknown" in unknown.message
    assert bed.live_value() == "one"
    bed.cache.set_desired({}, commit=gone)  # what the scheduler writes for that commit
    removed = bed.worker.remove(bed.job(gone), keep_resources=False)
    assert removed.state == "Ready", removed.message
    assert "deleted" in removed.message
    assert bed.live_value() is None
    assert ("apps-cfg", "dev-eu") not in bed.cache.actual(["dev-eu"])


def test_apply_and_failure_are_events_in_the_stream_and_on_the_inventory(bed: Bed) -> None:
    from fleet.events.sinks import RedisEventLog

    commit = bed.work.commit_and_push("first")
    unit_id = bed.unit_id(commit)
    assert bed.worker.apply(bed.job(commit, unit_id)).state == "Ready"
    bed.work.write("apps/cfg/cm.yaml", CONFIGMAP.format(ns=bed.ns, value="two").replace(
        "  v:", '  "no key!":'))  # fmt: skip
    broken = bed.work.commit_and_push("a key the API server refuses")
    broken_id = bed.unit_id(broken)
    for _ in range(2):  # the retry after the cooldown fails the same way: no new event
        assert bed.worker.apply(bed.job(broken, broken_id)).state == "ErrApplied"
    log = RedisEventLog(bed.worker.redis, bed.fleet)
    events = [e.event for e in log.read()]
    assert [(e.type.value, e.commit) for e in events] == [
        ("unit.applied", commit),
        ("unit.failed", broken),
    ]
    assert events[1].deployment_id == broken_id and events[1].cluster == "dev-eu"
    listed = bed.api.list_namespaced_event(
        "fleet-system", field_selector=f"involvedObject.name={bed.fleet}.bundle-apps-cfg"
    )
    reasons = sorted(e.reason for e in listed.items)
    assert reasons == ["UnitApplied", "UnitFailed"]
    assert all(e.source.host == "test-worker" for e in listed.items)
    counts = bed.worker.redis.hgetall(f"fleet:{bed.fleet}:metrics:reconcile")
    assert counts["c|apps-cfg|dev-eu|Ready"] == "1"  # fleet_reconcile_duration_seconds
    assert counts["c|apps-cfg|dev-eu|ErrApplied"] == "2"


def test_a_worker_with_another_helm_reports_both_versions(
    bed: Bed, binary: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler targets with one helm, the worker has another: the worker's ids differ
    (the renderer identity is part of them). That is ErrApplied naming both, in the cache,
    not a task skipped as stale at every dispatch."""
    bed.work.write("apps/chart/Chart.yaml", "apiVersion: v2\nname: chart\nversion: 0.1.0\n")
    bed.work.write("apps/chart/templates/cm.yaml", CONFIGMAP.format(ns=bed.ns, value="helm"))
    commit = bed.work.commit_and_push("a helm bundle")
    monkeypatch.setenv("FLEET_HELM", binary("helm"))
    scheduler = RevisionLoader(FleetPlugins.load(entry_points=False)).load(
        bed.work.remote_url, commit
    )
    unit = scheduler.by_key[("apps-chart", "dev-eu")]
    bed.cache.set_desired({u.key: u.deployment_id for u in scheduler.units}, commit=commit)
    bed.cache.set_renderers(commit, {u.bundle: u.renderer for u in scheduler.units})

    other = tmp_path / "other-helm"  # the same helm that says it is another version
    other.write_text(
        f'#!/bin/sh\ncase "$1" in version) echo v3.99.0-other; exit 0;; esac\n'
        f'exec {binary("helm")} "$@"\n'
    )
    other.chmod(0o755)
    monkeypatch.setenv("FLEET_HELM", str(other))
    worker = UnitWorker(
        bed.worker.redis,
        name="other-worker",
        loader=RevisionLoader(FleetPlugins.load(entry_points=False)),
        env=bed.worker.env,
    )
    outcome = worker.apply(bed.job(commit, unit.deployment_id, bundle="apps-chart"))
    assert (outcome.state, outcome.skipped) == ("ErrApplied", False)
    assert "helm v3.99.0-other" in outcome.message, outcome.message
    assert unit.renderer.split(" fleet-helm")[0] in outcome.message, outcome.message
    assert outcome.message.startswith("worker other-worker renders apps-chart with ")
    record = bed.cache.actual(["dev-eu"])[("apps-chart", "dev-eu")]
    assert (record.state, record.message) == (BundleState.ERR_APPLIED, outcome.message)
    assert bed.live_value() is None  # nothing applied

    # the same helm as the scheduler's: applied
    monkeypatch.setenv("FLEET_HELM", binary("helm"))
    fixed = UnitWorker(bed.worker.redis, name="same-worker",
                       loader=RevisionLoader(FleetPlugins.load(entry_points=False)),
                       env=bed.worker.env)  # fmt: skip
    assert fixed.apply(bed.job(commit, unit.deployment_id, bundle="apps-chart")).state == "Ready"
    assert bed.live_value() == "helm"


def test_a_chart_server_outage_is_not_remembered_by_the_worker(
    bed: Bed, binary: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 while the worker renders a pinned repository chart fails that task as transient
    (the task layer reports it and the unit is dispatched again after the cooldown); the
    same worker, with the same loaded commit and render cache, applies it once the server
    answers again."""
    repos = serve_chart_repo(binary("helm"), tmp_path / "charts", monkeypatch)
    charts = next(repos)
    try:
        bed.work.write("apps/chart/fleet.yaml", yaml.safe_dump({
            "defaultNamespace": bed.ns,
            "helm": {"repo": charts.url, "chart": "demo", "version": "^0.1.0"}}))  # fmt: skip
        commit = bed.work.commit_and_push("a chart from a repository")
        rev = bed.worker.loader.load(bed.work.remote_url, commit)
        unit = rev.by_key[("apps-chart", "dev-eu")]
        bed.cache.set_desired({u.key: u.deployment_id for u in rev.units}, commit=commit)
        job = bed.job(commit, unit.deployment_id, bundle="apps-chart")

        charts.handler.outage = True
        with pytest.raises(TransientError, match="503"):
            bed.worker.apply(job)
        charts.handler.outage = False
        outcome = bed.worker.apply(job)
        assert outcome.state == "Ready", outcome.message
        found = bed.api.read_namespaced_config_map("demo", bed.ns)
        assert found.data == {"chart": "0.1.0", "marker": "first"}
    finally:
        repos.close()
