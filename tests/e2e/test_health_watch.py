"""Health waits served by the cluster's watches (`fleet.engine.watch`), on a real cluster.

The waits must end from watch events (no LIST polling of the bundle's kinds), fall back
to polling where a watch cannot be had (credentials scoped to one namespace cannot list
Deployments cluster-wide), survive the server ending a watch, never take a previous
generation's Ready from the watch's cache, and stop their threads with the connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.engine import wait, watch
from fleet.engine.apply import Desired, prepare, resolve
from fleet.engine.identity import Owner
from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.engine.unit import sync_unit
from fleet.manifest import Manifest
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.engine_support import configmap, connect, core_api, deployment, options, unique

CLUSTER = "prod-eu"


@pytest.fixture
def no_polling(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fails a wait that polls: the LISTs of a polled wait go through `wait._poll`."""
    polled: list[str] = []

    def refuse(conn: ClusterConnection, by_ref: Any, unready: list[ObjectRef], *rest: Any) -> None:
        polled.extend(str(ref) for ref in unready)
        raise AssertionError(f"the wait polled {[str(r) for r in unready]}")

    monkeypatch.setattr(wait, "_poll", refuse)
    yield polled


def test_a_deployments_wait_ends_from_the_watch_without_polling(
    local_fleet: LocalFleet, no_polling: list[str]
) -> None:
    conn = connect(local_fleet, CLUSTER)
    try:
        bundle, ns = unique("watched"), unique("ns")
        manifests = [deployment("web", ns, replicas=2), configmap("cfg", ns)]
        result = sync_unit(conn, bundle, "1" * 64, "c1", manifests, options(waitTimeoutSeconds=60))
        assert result.state is BundleState.READY, result.message
        assert no_polling == []
        watches = conn.watches
        assert watches is not None
        deployments = conn.resource("apps/v1", "Deployment")
        served = watches.kind(deployments)
        assert served is not None and served.usable
        assert ObjectRef("apps/v1", "Deployment", ns, "web") in served.objects
    finally:
        conn.close()


def test_many_bundles_share_one_watch_per_kind(
    local_fleet: LocalFleet, no_polling: list[str]
) -> None:
    """Three bundles waiting at once on one connection's siblings: one Deployment watch."""
    from concurrent.futures import ThreadPoolExecutor

    conn = connect(local_fleet, CLUSTER)
    try:
        names = [(unique("shared"), unique("ns")) for _ in range(3)]

        def one(pair: tuple[str, str]) -> BundleState:
            bundle, ns = pair
            sibling = conn.sibling()
            got = sync_unit(sibling, bundle, "2" * 64, "c1", [deployment("web", ns)],
                            options(waitTimeoutSeconds=60))  # fmt: skip
            return got.state

        with ThreadPoolExecutor(3) as pool:
            states = list(pool.map(one, names))
        assert states == [BundleState.READY] * 3
        watches = conn.watches
        assert watches is not None
        assert [res.kind for res in watches._kinds] == ["Deployment"]
    finally:
        conn.close()


def test_namespace_scoped_credentials_fall_back_to_polling(
    local_fleet: LocalFleet, tmp_path: Path
) -> None:
    admin = connect(local_fleet, CLUSTER)
    ns = unique("scoped")
    limited = _namespace_scoped(local_fleet, ns, tmp_path)
    try:
        bundle = unique("scoped")
        desired = _applied(admin, bundle, [deployment("web", ns)])
        live: dict[ObjectRef, Manifest] = {}
        health = wait.wait_healthy(limited, bundle, desired, live, timeout=60)
        assert all(h.ready for h in health.values()), health
        watches = limited.watches
        assert watches is not None
        assert watches.kind(admin.resource("apps/v1", "Deployment")) is None
        [kept] = watches._kinds.values()
        assert kept.unavailable is not None and "forbidden" in kept.unavailable.lower()
    finally:
        limited.close()
        admin.close()


def test_the_watch_resumes_after_the_server_ends_it(
    local_fleet: LocalFleet, monkeypatch: pytest.MonkeyPatch, no_polling: list[str]
) -> None:
    monkeypatch.setattr(watch, "WATCH_SECONDS", 1)  # the server ends each watch after 1 s
    conn = connect(local_fleet, CLUSTER)
    try:
        watches = conn.watches
        assert watches is not None
        assert watches.kind(conn.resource("apps/v1", "Deployment")) is not None
        time.sleep(3.5)  # the stream ended and was resumed at least twice
        bundle, ns = unique("resumed"), unique("ns")
        result = sync_unit(conn, bundle, "3" * 64, "c1", [deployment("web", ns)],
                           options(waitTimeoutSeconds=60))  # fmt: skip
        assert result.state is BundleState.READY, result.message
    finally:
        conn.close()


def test_a_new_generation_is_not_judged_by_the_previous_ones_ready(local_fleet: LocalFleet) -> None:
    """Ready at generation 1 is in the watch's cache when generation 2 (unschedulable) is
    applied: the wait must say not ready, not the cached Ready."""
    conn = connect(local_fleet, CLUSTER)
    try:
        bundle, ns = unique("gen"), unique("ns")
        first = sync_unit(conn, bundle, "4" * 64, "c1", [deployment("web", ns)],
                          options(waitTimeoutSeconds=60))  # fmt: skip
        assert first.state is BundleState.READY, first.message
        stuck = deployment("web", ns, node_selector={"no-such-label": "anywhere"})
        second = sync_unit(conn, bundle, "5" * 64, "c1", [stuck], options(waitTimeoutSeconds=4))
        assert second.state is BundleState.NOT_READY, second.message
        assert f"Deployment {ns}/web" in second.message
    finally:
        conn.close()


def test_closing_the_connection_stops_the_watch_threads(local_fleet: LocalFleet) -> None:
    conn = connect(local_fleet, CLUSTER)
    watches = conn.watches
    assert watches is not None
    assert watches.kind(conn.resource("apps/v1", "Deployment")) is not None
    threads = [w._thread for w in watches._kinds.values()]
    conn.close()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()


# ---------------------------------------------------------------------- helpers


def _applied(conn: ClusterConnection, bundle: str, manifests: list[Manifest]) -> list[Desired]:
    """`manifests` applied by `conn` (no wait), as the Desired objects a wait takes."""
    result = sync_unit(conn, bundle, "6" * 64, "c1", manifests, options(), wait=False)
    assert result.state in (BundleState.READY, BundleState.NOT_READY), result.message
    desired = prepare(manifests, Owner(bundle, "f"), "6" * 64, "default")
    for item in desired:
        assert resolve(conn, item) == ""
    return desired


def _namespace_scoped(local_fleet: LocalFleet, ns: str, tmp_path: Path) -> ClusterConnection:
    """A connection whose service account may read Deployments in `ns` only."""
    from kubernetes import client, config

    core = core_api(local_fleet, CLUSTER)
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
    api = config.new_client_from_config(config_file=str(local_fleet.clusters[CLUSTER].kubeconfig))
    rbac = client.RbacAuthorizationV1Api(api)
    rule = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]}
    rbac.create_namespaced_role(ns, {"metadata": {"name": "reader"}, "rules": [rule]})
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
    })  # fmt: skip
    token = core.create_namespaced_service_account_token(
        "reader", ns, {"spec": {"expirationSeconds": 600}}
    ).status.token
    kubeconfig = yaml.safe_load(local_fleet.clusters[CLUSTER].kubeconfig.read_text())
    for user in kubeconfig["users"]:
        user["user"] = {"token": token}
    path = tmp_path / "reader.kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    return ClusterConnection.from_kubeconfig(path, name=CLUSTER)
