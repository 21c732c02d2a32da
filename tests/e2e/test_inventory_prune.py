"""Inventory in the cluster, prune of what left a bundle, removal of a bundle."""

from __future__ import annotations

import pytest
from kubernetes.client.rest import ApiException

from fleet.engine.apply import Action
from fleet.engine.inventory import (
    COMPRESS_ABOVE,
    INVENTORY_NAMESPACE,
    MAX_REVISIONS,
    Inventory,
    InventoryEntry,
    InventoryUnreadable,
    inventory_name,
    read_inventory,
    record,
    write_inventory,
)
from fleet.engine.inventory import read_deployed as list_deployed
from fleet.engine.kube import ClusterConnection, Conflict, ObjectRef
from fleet.engine.labels import ANN_PRUNE
from fleet.engine.prune import remove_bundle
from fleet.engine.unit import sync_unit
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.engine_support import configmap, connect, core_api, namespace, options, unique


@pytest.fixture
def conn(local_fleet: LocalFleet) -> ClusterConnection:
    return connect(local_fleet, "prod-eu")


def exists(local_fleet: LocalFleet, name: str, ns: str) -> bool:
    try:
        core_api(local_fleet, "prod-eu").read_namespaced_config_map(name, ns)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def test_missing_inventory_is_empty(conn: ClusterConnection) -> None:
    inv = read_inventory(conn, unique("never-deployed"))
    assert not inv.exists and inv.objects == [] and inv.current is None


def test_object_that_left_the_bundle_is_pruned(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("prune"), unique("ns")
    sync_unit(conn, bundle, "1" * 64, "c1", [configmap("a", ns), configmap("b", ns)], options())
    result = sync_unit(conn, bundle, "2" * 64, "c2", [configmap("a", ns)], options())
    assert result.state is BundleState.READY, result.message
    assert result.pruned == [ObjectRef("v1", "ConfigMap", ns, "b")]
    assert not exists(local_fleet, "b", ns) and exists(local_fleet, "a", ns)
    assert read_inventory(conn, bundle).refs() == {
        ObjectRef("v1", "ConfigMap", ns, "a"),
        ObjectRef("v1", "Namespace", None, ns),  # created by fleet, recorded as such
    }


def test_prune_disabled_and_keep_resources_keep_objects(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("keep"), unique("ns")
    kept = configmap("kept", ns)
    kept["metadata"]["annotations"] = {ANN_PRUNE: "disabled"}
    flux = configmap("flux", ns)
    flux["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/prune": "disabled"}
    argo = configmap("argo", ns)
    argo["metadata"]["annotations"] = {
        "argocd.argoproj.io/sync-options": "Replace=true,Prune=false"
    }
    gone = configmap("gone", ns)
    sync_unit(conn, bundle, "1" * 64, "c1", [configmap("a", ns), kept, flux, argo, gone], options())
    result = sync_unit(conn, bundle, "2" * 64, "c2", [configmap("a", ns)], options())
    assert {o.ref.name: o.action for o in result.objects if o.ref.name != "a"} == {
        "kept": Action.KEPT,
        "flux": Action.KEPT,
        "argo": Action.KEPT,
        "gone": Action.PRUNED,
    }
    assert all(exists(local_fleet, name, ns) for name in ("kept", "flux", "argo"))
    assert not exists(local_fleet, "gone", ns)

    result = sync_unit(conn, bundle, "3" * 64, "c3", [], options(keepResources=True))
    assert exists(local_fleet, "a", ns)
    assert {o.ref.kind: o.action for o in result.objects} == {
        "ConfigMap": Action.KEPT,
        "Namespace": Action.KEPT,
    }
    assert read_inventory(conn, bundle).refs() == set()


def test_no_prune_after_an_apply_error(conn: ClusterConnection, local_fleet: LocalFleet) -> None:
    bundle, ns = unique("noprune"), unique("ns")
    sync_unit(conn, bundle, "1" * 64, "c1", [configmap("a", ns), configmap("b", ns)], options())
    broken = [configmap("a", ns), configmap("Bad_Name", ns)]
    result = sync_unit(conn, bundle, "2" * 64, "c2", broken, options())
    assert result.state is BundleState.ERR_APPLIED
    assert exists(local_fleet, "b", ns)
    assert ObjectRef("v1", "ConfigMap", ns, "b") in read_inventory(conn, bundle).refs()
    fixed = sync_unit(conn, bundle, "3" * 64, "c3", [configmap("a", ns)], options())
    assert fixed.pruned == [ObjectRef("v1", "ConfigMap", ns, "b")]


def test_unreadable_inventory_stops_everything(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("corrupt"), unique("ns")
    sync_unit(conn, bundle, "1" * 64, "c1", [configmap("a", ns), configmap("b", ns)], options())
    core = core_api(local_fleet, "prod-eu")
    core.patch_namespaced_config_map(
        inventory_name(bundle), INVENTORY_NAMESPACE, {"data": {"inventory.json": "{not json"}}
    )
    with pytest.raises(InventoryUnreadable):
        read_inventory(conn, bundle)
    writes = conn.writes
    result = sync_unit(conn, bundle, "2" * 64, "c2", [configmap("a", ns)], options())
    assert result.state is BundleState.ERR_APPLIED
    assert "corrupt" in result.message and "\n" not in result.message
    assert conn.writes == writes and exists(local_fleet, "b", ns)
    with pytest.raises(InventoryUnreadable):
        remove_bundle(conn, bundle)
    assert exists(local_fleet, "b", ns)


def test_remove_bundle_deletes_objects_and_inventory(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("remove"), unique("ns")
    sync_unit(conn, bundle, "1" * 64, "c1", [namespace(ns), configmap("a", ns)], options())
    assert bundle in list_deployed(conn)
    results = remove_bundle(conn, bundle)
    assert {o.ref.kind: o.action for o in results} == {
        "ConfigMap": Action.PRUNED,
        "Namespace": Action.PRUNED,  # in the bundle itself, so it goes with it
    }
    assert not read_inventory(conn, bundle).exists
    assert bundle not in list_deployed(conn)
    assert remove_bundle(conn, bundle) == []  # idempotent


def test_remove_bundle_with_keep_resources_only_drops_the_record(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("keepall"), unique("ns")
    sync_unit(conn, bundle, "1" * 64, "c1", [configmap("a", ns)], options())
    results = remove_bundle(conn, bundle, keep_resources=True)
    assert all(o.action is Action.KEPT for o in results)
    assert exists(local_fleet, "a", ns)
    assert not read_inventory(conn, bundle).exists


def test_revisions_are_capped_and_large_inventories_compressed(conn: ClusterConnection) -> None:
    bundle = unique("big")
    inv = Inventory(bundle)
    for i in range(MAX_REVISIONS + 3):
        new = record(inv, [], commit=f"c{i}", deployment_id=f"{i:064}", state="Ready", message="")
        assert new is not None
        inv = new
    assert len(inv.revisions) == MAX_REVISIONS
    assert inv.revisions[-1].commit == f"c{MAX_REVISIONS + 2}"
    last = inv.revisions[-1]
    same = record(inv, [], commit=last.commit, deployment_id=last.deployment_id, state="Ready",
                  message="")  # fmt: skip
    assert same is None

    entries = [
        InventoryEntry(
            ObjectRef("v1", "ConfigMap", "ns-with-a-long-name", f"object-{i:06}"), "f" * 64
        )
        for i in range(6000)
    ]
    inv.objects = entries
    assert len(inv.to_json()) > COMPRESS_ABOVE
    write_inventory(conn, inv)
    back = read_inventory(conn, bundle)
    assert back.objects == entries and back.revisions == inv.revisions
    ref = ObjectRef("v1", "ConfigMap", INVENTORY_NAMESPACE, inventory_name(bundle))
    stored = conn.get(ref)
    assert stored is not None and "inventory.json.gz" in stored["binaryData"]
    conn.delete(ref)


def test_an_inventory_from_before_fleet_names_is_moved_and_still_prunes(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    """A bundle deployed when inventories were `bundle-<name>` (stamped with the fleet):
    the next sync reads it there, prunes what left, and moves it to `<fleet>.bundle-<name>`."""
    bundle, ns, fleet = unique("legacy"), unique("ns"), unique("fleet")
    sync_unit(conn, bundle, "1" * 64, "c1", [configmap("a", ns), configmap("b", ns)], options())
    res = conn.resource("v1", "ConfigMap")
    conn.request(  # the owner stamp the old version wrote, on the old name
        "PATCH",
        res.object_path(INVENTORY_NAMESPACE, inventory_name(bundle)),
        body={"metadata": {"annotations": {"fleet-gitops.io/fleet": fleet}}},
        content_type="application/merge-patch+json",
    )
    result = sync_unit(conn, bundle, "2" * 64, "c2", [configmap("a", ns)], options(), fleet=fleet)
    assert result.state is BundleState.READY, result.message
    assert result.pruned == [ObjectRef("v1", "ConfigMap", ns, "b")]
    assert not exists(local_fleet, "b", ns)
    assert not read_inventory(conn, bundle).exists  # the old name is gone
    moved = read_inventory(conn, bundle, fleet)
    assert moved.exists and not moved.legacy
    assert ObjectRef("v1", "ConfigMap", ns, "a") in moved.refs()
    assert len(moved.revisions) == 2  # the history came along
    assert bundle in list_deployed(conn, fleet=fleet)


def test_removal_keeps_what_fleet_did_not_apply_and_the_namespace_it_created(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("foreign"), unique("ns")
    sync_unit(conn, bundle, "1" * 64, "c1", [configmap("a", ns)], options())
    core_api(local_fleet, "prod-eu").create_namespaced_config_map(
        ns, {"metadata": {"name": "someone-elses"}, "data": {"x": "1"}}
    )
    results = remove_bundle(conn, bundle)
    assert {(o.ref.kind, o.action) for o in results} == {
        ("ConfigMap", Action.PRUNED),
        ("Namespace", Action.KEPT),  # fleet created it only because "a" needed it
    }
    assert not exists(local_fleet, "a", ns) and exists(local_fleet, "someone-elses", ns)


def test_a_delete_is_guarded_by_the_uid_fleet_read(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    """The uid precondition: an object recreated since it was read is not deleted."""
    ns = unique("ns")
    core = core_api(local_fleet, "prod-eu")
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    with pytest.raises(Conflict):
        conn.delete(ObjectRef("v1", "ConfigMap", ns, "c"), uid="not-its-uid")
    assert exists(local_fleet, "c", ns)
