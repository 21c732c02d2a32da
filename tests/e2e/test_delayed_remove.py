"""Issue 8, case 6: a delayed remove never deletes a bundle that a later commit wants again.

A remove task is sent when a commit drops a bundle. If its cluster is unreachable the
task is retried with backoff (or, after a worker died, redelivered); meanwhile a later
commit may bring the bundle back. When the task finally runs it must see the desired
state of *now* and skip, not delete the objects that the next apply then recreates empty.

Two tests: the worker's check called directly (deterministic, one cluster of the shared
test bed), and the whole path with real processes (fleet serve, a Celery worker, Redis)
and a cluster of this test's own whose kube-apiserver is stopped while the bundle leaves
Git and comes back. Both compare the objects' uids: a DELETE + re-create changes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import localfleet
import pytest
import yaml
from kubernetes import client
from kubernetes import config as k8s_config

from fleet.plugin.manager import FleetPlugins
from fleet.runtime.revisions import RevisionLoader
from fleet.runtime.state_cache import StateCache, connect_redis
from fleet.runtime.worker import UnitJob, UnitWorker
from tests.conftest import LocalFleet
from tests.e2e.dist_support import distributed, wait_until
from tests.e2e.engine_support import core_api
from tests.e2e.sync_support import fleet_env, suffix  # noqa: F401  (fixture)
from tests.support.audit import AuditLog
from tests.support.servers import GitServer, GitWorkTree, RedisServer

pytestmark = pytest.mark.timeout(420)


def _repo(git_server: GitServer, workdir: Path, sfx: str, cluster: str, region: str) -> GitWorkTree:
    tree = git_server.create_repo(f"delayed-{sfx}", workdir)
    definition = {
        "apiVersion": "fleet-gitops.io/v1alpha1",
        "kind": "Fleet",
        "name": f"delayed-{sfx}",
        "source": {"pollInterval": "1h"},
        "clusters": [{"name": cluster, "labels": {"region": region}}],
        "bundles": {"paths": [{"glob": "bundles/*"}]},
    }
    tree.write("fleet.yaml", yaml.safe_dump(definition, sort_keys=False))
    tree.write("bundles/keep/cm.yaml", _configmap("keep", f"keep-{sfx}"))
    _add_app(tree, sfx)
    return tree


def _configmap(name: str, ns: str) -> str:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {"v": "precious"},
    }
    return yaml.safe_dump(body)


def _add_app(tree: GitWorkTree, sfx: str) -> None:
    tree.write(
        "bundles/app/fleet.yaml",
        yaml.safe_dump({"name": f"app-{sfx}", "defaultNamespace": f"app-{sfx}"}),
    )
    tree.write("bundles/app/cm.yaml", _configmap("data", f"app-{sfx}"))


def _drop_app(tree: GitWorkTree) -> None:
    for name in ("fleet.yaml", "cm.yaml"):
        (tree.path / "bundles/app" / name).unlink()


def _uid(api: client.CoreV1Api, ns: str) -> str | None:
    try:
        return str(api.read_namespaced_config_map("data", ns).metadata.uid)
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise


def test_a_remove_task_of_an_older_commit_is_skipped_when_the_bundle_is_wanted_again(
    local_fleet: LocalFleet,
    git_server: GitServer,
    redis_server: RedisServer,
    tmp_path: Path,
    fleet_env: None,  # noqa: F811
) -> None:
    sfx = uuid.uuid4().hex[:6]
    tree = _repo(git_server, tmp_path / "repo", sfx, "dev-eu", "eu")
    first = tree.commit_and_push("app deployed")
    redis = connect_redis(redis_server.url)
    worker = UnitWorker(
        redis,
        name="test-worker",
        loader=RevisionLoader(FleetPlugins.load(entry_points=False)),
        env={"FLEET_CREDENTIALS_DIR": str(local_fleet.dir)},
    )
    cache = StateCache(redis, f"delayed-{sfx}")
    fleet, bundle, ns = f"delayed-{sfx}", f"app-{sfx}", f"app-{sfx}"
    rev = worker.loader.load(tree.remote_url, first)
    unit_id = rev.by_key[(bundle, "dev-eu")].deployment_id
    cache.set_desired({(bundle, "dev-eu"): unit_id}, commit=first)
    applied = worker.apply(UnitJob(fleet, tree.remote_url, first, bundle, "dev-eu", unit_id))
    assert applied.state == "Ready", applied.message
    api = core_api(local_fleet, "dev-eu")
    before = _uid(api, ns)
    assert before is not None
    audit = AuditLog(local_fleet.clusters["dev-eu"].kubeconfig, "dev-eu")
    mark = audit.mark()

    _drop_app(tree)
    dropped = tree.commit_and_push("app leaves Git")
    _add_app(tree, sfx)
    back = tree.commit_and_push("app is back")
    rev = worker.loader.load(tree.remote_url, back)
    cache.set_desired({k: u.deployment_id for k, u in rev.by_key.items()}, commit=back)

    late = worker.remove(UnitJob(fleet, tree.remote_url, dropped, bundle, "dev-eu"), False)
    assert late.skipped and late.state == "Pending"
    assert late.message == (
        f"remove superseded: commit {back[:12]} deploys {bundle} to dev-eu again; nothing deleted"
    )
    assert _uid(api, ns) == before
    assert audit.deletes(mark, namespace=ns) == []  # what the API server saw: no DELETE
    # the claim was released, and the commit that really drops it still removes it
    assert cache.claim("remove", bundle, "dev-eu", "", 60)
    cache.release("remove", bundle, "dev-eu", "")
    _drop_app(tree)
    final = tree.commit_and_push("app leaves Git for good")
    cache.set_desired({}, commit=final)
    gone = worker.remove(UnitJob(fleet, tree.remote_url, final, bundle, "dev-eu"), False)
    assert gone.state == "Ready" and not gone.skipped, gone.message
    assert _uid(api, ns) is None
    # the audit log does see fleet's DELETEs: the empty list above was not blindness
    assert [d.name for d in audit.deletes(mark, namespace=ns) if d.resource == "configmaps"] == [
        "data"
    ]
    api.delete_namespace(ns)


@pytest.fixture
def outage_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cluster of this test's own (region us), so stopping its API server harms no one."""
    fleet_dir = tmp_path_factory.mktemp("delayed-remove-fleet")
    try:
        localfleet.up(fleet_dir, [("gone-us", {"env": "edge", "region": "us"})])
    except localfleet.LocalFleetError as err:
        pytest.fail(f"outage cluster did not start: {err}", pytrace=False)
    try:
        yield fleet_dir
    finally:
        localfleet.down(fleet_dir)


def test_a_remove_retried_while_the_cluster_was_down_keeps_a_bundle_that_came_back(
    git_server: GitServer, redis_server: RedisServer, outage_cluster: Path, tmp_path: Path
) -> None:
    sfx = suffix()
    tree = _repo(git_server, tmp_path / "repo", sfx, "gone-us", "us")
    first = tree.commit_and_push("app deployed")
    kubeconfig = outage_cluster / "gone-us.kubeconfig"
    api = client.CoreV1Api(k8s_config.new_client_from_config(config_file=str(kubeconfig)))
    url = redis_server.url.rsplit("/", 1)[0] + "/9"
    with distributed(
        tree.remote_url,
        tmp_path / "logs",
        url,
        outage_cluster,
        FLEET_RETRY_BASE="1",
        FLEET_CELERY_VISIBILITY_TIMEOUT="120",  # retries back off up to 40s: still pending
    ) as dist:
        worker = dist.start_worker("us", "us")
        dist.start_serve("--poll-interval", "3600")
        dist.wait_converged(first, timeout=120)
        before = _uid(api, f"app-{sfx}")
        assert before is not None
        audit = AuditLog(kubeconfig, "gone-us")
        mark = audit.mark()

        localfleet.stop_component(outage_cluster, "gone-us", "kube-apiserver")
        _drop_app(tree)
        dropped = tree.commit_and_push("app leaves Git")
        dist.push_webhook(dropped)

        def remove_failing() -> bool:
            return "remove" in worker.tail(400) and "will retry in" in worker.tail(400)

        wait_until(remove_failing, 90, "the remove task to fail and be retried", dist)
        _add_app(tree, sfx)
        back = tree.commit_and_push("app is back")
        dist.push_webhook(back)
        wait_until(lambda: dist.status().get("commit") == back, 60, "the new commit", dist)
        localfleet.start_component(outage_cluster, "gone-us", "kube-apiserver")

        superseded = "remove superseded: commit"
        wait_until(lambda: superseded in worker.tail(400), 150, "the retried remove", dist)
        dist.wait_converged(back, timeout=120)
        assert _uid(api, f"app-{sfx}") == before  # never deleted, never re-created
        assert _uid(api, f"app-{sfx}") is not None
        assert audit.deletes(mark, namespace=f"app-{sfx}") == []  # the API server saw none
        lines = [x for x in worker.tail(400).splitlines() if f"app-{sfx}" in x]
        assert any(
            f"commit {back[:12]} deploys app-{sfx} to gone-us again; nothing deleted" in x
            for x in lines
        ), lines
        print("\n" + "\n".join(x[-160:] for x in lines))


def test_a_late_remove_hands_objects_over_to_the_bundle_that_wants_them_now(
    local_fleet: LocalFleet,
    git_server: GitServer,
    redis_server: RedisServer,
    tmp_path: Path,
    fleet_env: None,  # noqa: F811
) -> None:
    """The bundle stays gone, but a later commit moved its object to another bundle: the
    late removal judges by the claims of the commit in force, so it hands the object over
    instead of deleting it (judged by its own older commit, nobody claimed it)."""
    sfx = uuid.uuid4().hex[:6]
    tree = _repo(git_server, tmp_path / "repo", sfx, "dev-eu", "eu")
    first = tree.commit_and_push("app deployed")
    redis = connect_redis(redis_server.url)
    worker = UnitWorker(redis, name="test-worker",
                        loader=RevisionLoader(FleetPlugins.load(entry_points=False)),
                        env={"FLEET_CREDENTIALS_DIR": str(local_fleet.dir)})  # fmt: skip
    cache = StateCache(redis, f"delayed-{sfx}")
    fleet, bundle, ns = f"delayed-{sfx}", f"app-{sfx}", f"app-{sfx}"

    def desire(commit: str) -> None:
        rev = worker.loader.load(tree.remote_url, commit)
        cache.set_desired({k: u.deployment_id for k, u in rev.by_key.items()}, commit=commit)

    def job(commit: str, name: str, with_id: bool = True) -> UnitJob:
        rev = worker.loader.load(tree.remote_url, commit)
        unit_id = rev.by_key[(name, "dev-eu")].deployment_id if with_id else ""
        return UnitJob(fleet, tree.remote_url, commit, name, "dev-eu", unit_id)

    desire(first)
    assert worker.apply(job(first, bundle)).state == "Ready"
    api = core_api(local_fleet, "dev-eu")
    before = _uid(api, ns)
    assert before is not None

    _drop_app(tree)
    dropped = tree.commit_and_push("app leaves Git")
    tree.write("bundles/store/fleet.yaml", yaml.safe_dump({"name": f"store-{sfx}"}))
    tree.write("bundles/store/cm.yaml", _configmap("data", ns))  # the same object, new owner
    moved = tree.commit_and_push("its ConfigMap moves to a new bundle")
    desire(moved)
    audit = AuditLog(local_fleet.clusters["dev-eu"].kubeconfig, "dev-eu")
    mark = audit.mark()

    late = worker.remove(job(dropped, bundle, with_id=False), False)
    assert late.state == "Ready" and not late.skipped, late.message
    assert _uid(api, ns) == before
    assert audit.deletes(mark, namespace=ns) == []
    assert worker.apply(job(moved, f"store-{sfx}")).state == "Ready"
    assert _uid(api, ns) == before  # handed over: same object, same uid
    api.delete_namespace(ns)
