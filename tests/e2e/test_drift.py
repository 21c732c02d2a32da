"""Drift on a real cluster: hand edits and deletions found by dry run, corrected on request."""

from __future__ import annotations

import pytest

from fleet.engine.apply import Action
from fleet.engine.inspection import check_drift, drift_state
from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.engine.unit import sync_unit
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.engine_support import (
    apps_api,
    configmap,
    connect,
    core_api,
    deployment,
    options,
    unique,
)


@pytest.fixture
def conn(local_fleet: LocalFleet) -> ClusterConnection:
    return connect(local_fleet, "dev-eu")


def edit_by_hand(local_fleet: LocalFleet, name: str, ns: str, **data: str) -> None:
    """kubectl-style replace (PUT) by another field manager."""
    core = core_api(local_fleet)
    body = core.read_namespaced_config_map(name, ns)
    body.data = dict(data)
    core.replace_namespaced_config_map(name, ns, body, field_manager="kubectl-replace")


def test_no_drift_right_after_sync(conn: ClusterConnection) -> None:
    bundle, ns = unique("clean"), unique("ns")
    manifests = [configmap("a", ns, v="1")]
    sync_unit(conn, bundle, "1" * 64, "c1", manifests, options())
    writes = conn.writes
    assert check_drift(conn, bundle, "1" * 64, manifests, options()) == []
    assert conn.writes == writes  # dry runs only


def test_hand_edit_is_modified_and_corrected(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("drift"), unique("ns")
    manifests = [configmap("a", ns, v="1"), configmap("b", ns, v="1")]
    sync_unit(conn, bundle, "1" * 64, "c1", manifests, options())
    edit_by_hand(local_fleet, "a", ns, v="hacked")
    core_api(local_fleet).delete_namespaced_config_map("b", ns)

    items = check_drift(conn, bundle, "1" * 64, manifests, options())
    assert drift_state(items) is BundleState.MODIFIED
    found = {i.ref.name: i for i in items}
    assert found["a"].reason == "modified" and found["a"].fields == ["/data/v"]
    assert found["b"].reason == "missing"
    assert str(found["a"]) == f"ConfigMap {ns}/a: modified (/data/v)"

    fix = options(correctDrift={"enabled": True, "force": True})
    result = sync_unit(conn, bundle, "1" * 64, "c1", manifests, fix)
    assert result.state is BundleState.READY, result.message
    actions = {o.ref.name: o.action for o in result.objects}
    assert actions == {"a": Action.CORRECTED, "b": Action.CREATED}
    assert core_api(local_fleet).read_namespaced_config_map("a", ns).data == {"v": "1"}
    assert check_drift(conn, bundle, "1" * 64, manifests, options()) == []
    again = sync_unit(conn, bundle, "1" * 64, "c1", manifests, fix)
    assert again.writes == 0  # drift check is dry runs only when nothing drifted


def test_correct_drift_without_force_takes_the_field_back(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    """Issue 8 case 8: correctDrift means Git's value back, whoever took the field;
    `force` is only for recreating objects (immutable fields)."""
    bundle, ns = unique("noforce"), unique("ns")
    manifests = [configmap("a", ns, v="1")]
    sync_unit(conn, bundle, "1" * 64, "c1", manifests, options())
    edit_by_hand(local_fleet, "a", ns, v="hacked")
    result = sync_unit(
        conn, bundle, "1" * 64, "c1", manifests, options(correctDrift={"enabled": True})
    )
    assert result.state is BundleState.READY, result.message
    assert [o.action for o in result.objects] == [Action.CORRECTED]
    assert core_api(local_fleet).read_namespaced_config_map("a", ns).data == {"v": "1"}


def test_without_correct_drift_a_sync_leaves_edits_alone(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("leave"), unique("ns")
    manifests = [configmap("a", ns, v="1")]
    sync_unit(conn, bundle, "1" * 64, "c1", manifests, options())
    edit_by_hand(local_fleet, "a", ns, v="hacked")
    result = sync_unit(conn, bundle, "1" * 64, "c1", manifests, options())
    assert result.writes == 0
    assert core_api(local_fleet).read_namespaced_config_map("a", ns).data == {"v": "hacked"}


def test_compare_patches_ignore_fields(conn: ClusterConnection, local_fleet: LocalFleet) -> None:
    bundle, ns = unique("ignore"), unique("ns")
    manifests = [deployment("web", ns, replicas=1)]
    sync_unit(conn, bundle, "1" * 64, "c1", manifests, options(waitTimeoutSeconds=1))
    apps_api(local_fleet).patch_namespaced_deployment_scale(
        "web", ns, {"spec": {"replicas": 3}}, field_manager="hpa"
    )
    items = check_drift(conn, bundle, "1" * 64, manifests, options())
    assert [i.fields for i in items] == [["/spec/replicas"]]
    ignore = options(
        diff={
            "comparePatches": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "namespace": ns,
                    "jsonPointers": ["/spec/replicas"],
                }
            ]
        }
    )
    assert check_drift(conn, bundle, "1" * 64, manifests, ignore) == []
    ops = options(diff={"comparePatches": [{"kind": "Deployment", "operations": [
        {"op": "remove", "path": "/spec/replicas"}]}]})  # fmt: skip
    assert check_drift(conn, bundle, "1" * 64, manifests, ops) == []
    assert ObjectRef("apps/v1", "Deployment", ns, "web") == items[0].ref
