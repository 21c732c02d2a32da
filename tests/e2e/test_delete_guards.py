"""Issue 8, cases 8, 9 and 11 on a real cluster: correctDrift takes fields back, immutable
fields are recreated only on request, CRDs are not deleted without deleteCRDResources, and
an entry whose kind is gone is pruned as done."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from fleet.engine.apply import Action
from fleet.engine.inspection import inspect
from fleet.engine.inventory import read_inventory
from fleet.engine.kube import ClusterConnection, NotFound, ObjectRef
from fleet.engine.prune import remove
from fleet.engine.unit import sync_unit
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.engine_support import (
    apps_api,
    configmap,
    connect,
    crd_manifest,
    custom_object,
    deployment,
    namespace,
    options,
    unique,
)
from tests.support.audit import AuditLog

ID1, ID2 = "1" * 64, "2" * 64


@pytest.fixture
def conn(local_fleet: LocalFleet) -> ClusterConnection:
    return connect(local_fleet, "dev-eu")


@pytest.fixture
def audit(local_fleet: LocalFleet) -> AuditLog:
    """What the API server saw: DELETE requests, from its audit log."""
    return AuditLog(local_fleet.clusters["dev-eu"].kubeconfig, "dev-eu")


def uid(conn: ClusterConnection, ref: ObjectRef) -> str:
    live = conn.get(ref)
    assert live is not None, f"{ref} is gone"
    return str(live["metadata"]["uid"])


def replicas_managers(conn: ClusterConnection, ref: ObjectRef) -> set[str]:
    live = conn.get(ref)
    assert live is not None
    return {
        str(m.get("manager"))
        for m in live["metadata"].get("managedFields") or []
        if "f:replicas" in str(m.get("fieldsV1", {}).get("f:spec", {}))
    }


# ---------------------------------------------------------------- case 8: correctDrift


def test_correct_drift_takes_replicas_back_from_kubectl_scale(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("scale"), unique("ns")
    manifests = [deployment("web", ns, replicas=1)]
    fix = options(correctDrift={"enabled": True}, waitTimeoutSeconds=30)
    first = sync_unit(conn, bundle, ID1, "c1", manifests, fix)
    assert first.state is BundleState.READY, first.message
    ref = ObjectRef("apps/v1", "Deployment", ns, "web")
    before = uid(conn, ref)
    apps = apps_api(local_fleet)
    # what `kubectl scale` does: the scale subresource, its own field manager
    apps.patch_namespaced_deployment_scale(
        "web", ns, {"spec": {"replicas": 3}}, field_manager="kubectl-scale"
    )
    assert "kubectl-scale" in replicas_managers(conn, ref)

    result = sync_unit(conn, bundle, ID1, "c1", manifests, fix)
    assert result.state is BundleState.READY, result.message
    assert [(o.ref.name, o.action) for o in result.objects] == [("web", Action.CORRECTED)]
    assert "/spec/replicas" in result.objects[0].message
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 1
    assert uid(conn, ref) == before  # taken back in place, not recreated
    assert "kubectl-scale" not in replicas_managers(conn, ref)
    again = sync_unit(conn, bundle, ID1, "c1", manifests, fix)
    assert again.writes == 0  # corrected once: the next pass finds no drift


def test_without_correct_drift_a_scaled_deployment_stays_and_is_modified(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("noscale"), unique("ns")
    manifests = [deployment("web", ns, replicas=1)]
    plain = options(waitTimeoutSeconds=30)
    assert sync_unit(conn, bundle, ID1, "c1", manifests, plain).state is BundleState.READY
    apps = apps_api(local_fleet)
    apps.patch_namespaced_deployment_scale(
        "web", ns, {"spec": {"replicas": 3}}, field_manager="kubectl-scale"
    )
    result = sync_unit(conn, bundle, ID1, "c1", manifests, plain)
    assert result.writes == 0
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 3
    seen = inspect(conn, bundle, ID1, manifests, plain)  # what `fleet status` shows
    assert seen.state is BundleState.MODIFIED
    assert seen.message == f"Deployment {ns}/web: modified (/spec/replicas)"


# ---------------------------------------------------------------- case 9: immutable fields


def with_selector(manifest: dict[str, Any], **labels: str) -> dict[str, Any]:
    changed = copy.deepcopy(manifest)
    changed["spec"]["selector"]["matchLabels"].update(labels)
    changed["spec"]["template"]["metadata"]["labels"].update(labels)
    return changed


def job(name: str, ns: str, command: str, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "run", "image": "example/job:1", "args": [command]}],
                }
            },
        },
    }


def test_a_changed_selector_is_an_error_naming_the_field_until_force(
    conn: ClusterConnection, local_fleet: LocalFleet, audit: AuditLog
) -> None:
    bundle, ns = unique("selector"), unique("ns")
    v1 = deployment("web", ns)
    assert sync_unit(conn, bundle, ID1, "c1", [v1], options(waitTimeoutSeconds=30)).state in (
        BundleState.READY,
        BundleState.NOT_READY,
    )
    ref = ObjectRef("apps/v1", "Deployment", ns, "web")
    before = uid(conn, ref)
    v2 = with_selector(v1, tier="front")
    mark = audit.mark()

    refused = sync_unit(conn, bundle, ID2, "c2", [v2], options())
    assert refused.state is BundleState.ERR_APPLIED
    assert refused.message == (
        f"Deployment {ns}/web: immutable field spec.selector differs from Git; set "
        "helm.force: true in the bundle's fleet.yaml or annotate the object "
        'fleet-gitops.io/force: "true" to delete and recreate it'
    )
    assert uid(conn, ref) == before  # nothing deleted

    forced = options(helm={"force": True}, waitTimeoutSeconds=30)
    dry = sync_unit(conn, bundle, ID2, "c2", [v2], forced, dry_run=True)
    assert [o.action for o in dry.objects] == [Action.RECREATED]
    assert uid(conn, ref) == before  # a dry run deletes nothing
    assert audit.deletes(mark, namespace=ns) == []

    result = sync_unit(conn, bundle, ID2, "c2", [v2], forced)
    assert result.state is BundleState.READY, result.message
    assert [o.action for o in result.objects] == [Action.RECREATED]
    after = uid(conn, ref)
    assert after != before
    fleets = [d for d in audit.deletes(mark, namespace=ns) if d.resource == "deployments"]
    assert [(d.name, d.code) for d in fleets] == [("web", 200)]  # one delete, then a create
    live = apps_api(local_fleet).read_namespaced_deployment("web", ns)
    assert live.spec.selector.match_labels == {"app": "web", "tier": "front"}
    again = sync_unit(conn, bundle, ID2, "c2", [v2], forced)
    assert again.writes == 0 and uid(conn, ref) == after


def test_a_job_template_change_is_recreated_when_the_object_asks(conn: ClusterConnection) -> None:
    bundle, ns = unique("job"), unique("ns")
    first = sync_unit(conn, bundle, ID1, "c1", [job("migrate", ns, "v1")], options(), wait=False)
    assert first.objects[0].action is Action.CREATED, first.message
    ref = ObjectRef("batch/v1", "Job", ns, "migrate")
    before = uid(conn, ref)

    refused = sync_unit(conn, bundle, ID2, "c2", [job("migrate", ns, "v2")], options(), wait=False)
    assert refused.state is BundleState.ERR_APPLIED
    assert "immutable field spec.template" in refused.message
    assert 'fleet-gitops.io/force: "true"' in refused.message
    assert uid(conn, ref) == before

    v2 = job("migrate", ns, "v2", **{"fleet-gitops.io/force": "true"})
    result = sync_unit(conn, bundle, ID2, "c2", [v2], options(), wait=False)
    assert [o.action for o in result.objects] == [Action.RECREATED], result.message
    live = conn.get(ref)
    assert live is not None and live["metadata"]["uid"] != before
    assert live["spec"]["template"]["spec"]["containers"][0]["args"] == ["v2"]


def test_an_invalid_new_object_is_not_recreated(conn: ClusterConnection) -> None:
    """Force never deletes an object whose replacement the API server would refuse."""
    bundle, ns = unique("badnew"), unique("ns")
    v1 = deployment("web", ns)
    sync_unit(conn, bundle, ID1, "c1", [v1], options(), wait=False)
    ref = ObjectRef("apps/v1", "Deployment", ns, "web")
    before = uid(conn, ref)
    bad = with_selector(v1, tier="front")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}  # selector no longer matches
    result = sync_unit(conn, bundle, ID2, "c2", [bad], options(helm={"force": True}), wait=False)
    assert result.state is BundleState.ERR_APPLIED
    assert uid(conn, ref) == before


# ---------------------------------------------------------------- case 11: CRDs, kinds gone


def group_name() -> str:
    return f"{unique('g').replace('-', '')}.example.com"


def make_by_hand(conn: ClusterConnection, manifest: dict[str, Any]) -> None:
    conn.apply(manifest, force=False, field_manager="kubectl")


def test_a_crd_that_left_the_bundle_is_kept_with_every_object_of_its_kind(
    conn: ClusterConnection, audit: AuditLog
) -> None:
    bundle, ns, group = unique("crdkeep"), unique("ns"), group_name()
    crd = crd_manifest(group)
    v1 = [crd, custom_object(group, "ours", ns), configmap("cfg", ns, v="1")]
    assert sync_unit(conn, bundle, ID1, "c1", v1, options()).state is BundleState.READY
    make_by_hand(conn, custom_object(group, "theirs", ns))
    crd_ref = ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", None,
                        f"widgets.{group}")  # fmt: skip

    mark = audit.mark()
    result = sync_unit(conn, bundle, ID2, "c2", [configmap("cfg", ns, v="1")], options())
    assert result.state is BundleState.READY, result.message
    deleted = [d.resource for d in audit.deletes(mark)]
    assert deleted == ["widgets"]  # the bundle's own Widget; never the CRD
    outcome = {o.ref.kind: o for o in result.objects}
    assert outcome["Widget"].action is Action.PRUNED  # the bundle's own object goes
    kept = outcome["CustomResourceDefinition"]
    assert kept.action is Action.KEPT
    assert kept.message == (
        f"CustomResourceDefinition widgets.{group} kept: deleting it would delete every "
        "Widget in the cluster (1 exists now); set deleteCRDResources: true in the bundle's "
        "fleet.yaml to let fleet delete it"
    )
    assert conn.get(crd_ref) is not None
    assert conn.get(ObjectRef(f"{group}/v1", "Widget", ns, "theirs")) is not None
    assert crd_ref not in read_inventory(conn, bundle).refs()  # left as it is, unmanaged


def test_with_delete_crd_resources_the_crd_is_pruned(conn: ClusterConnection) -> None:
    bundle, ns, group = unique("crddel"), unique("ns"), group_name()
    opt_in = options(deleteCRDResources=True)
    v1 = [crd_manifest(group), configmap("cfg", ns, v="1")]
    assert sync_unit(conn, bundle, ID1, "c1", v1, opt_in).state is BundleState.READY
    result = sync_unit(conn, bundle, ID2, "c2", [configmap("cfg", ns, v="1")], opt_in)
    assert [(o.ref.kind, o.action) for o in result.objects if o.ref.kind != "ConfigMap"] == [
        ("CustomResourceDefinition", Action.PRUNED)
    ]
    crd_ref = ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", None,
                        f"widgets.{group}")  # fmt: skip
    live = conn.get(crd_ref)
    assert live is None or live["metadata"].get("deletionTimestamp")


def test_removing_a_bundle_keeps_its_crd_unless_it_opted_in(conn: ClusterConnection) -> None:
    ns = unique("ns")
    make_by_hand(conn, namespace(ns))
    for opt_in in (False, True):
        bundle, group = unique("crdrm"), group_name()
        opts = options(deleteCRDResources=opt_in)
        deployed = sync_unit(conn, bundle, ID1, "c1", [crd_manifest(group)], opts, fleet="f-crd")
        assert deployed.state is BundleState.READY and deployed.owner_stamped
        make_by_hand(conn, custom_object(group, "theirs", ns))
        removed = remove(conn, bundle, fleet="f-crd")  # left Git: options from the stamp
        assert removed.state is BundleState.READY, removed.message
        crd_ref = ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", None,
                            f"widgets.{group}")  # fmt: skip
        assert [o.action for o in removed.objects] == [Action.PRUNED if opt_in else Action.KEPT]
        assert not read_inventory(conn, bundle).exists
        live = conn.get(crd_ref)
        if opt_in:
            assert live is None or live["metadata"].get("deletionTimestamp")
        else:
            assert live is not None and not live["metadata"].get("deletionTimestamp")
            assert conn.get(ObjectRef(f"{group}/v1", "Widget", ns, "theirs")) is not None


def wait_kind_gone(conn: ClusterConnection, group: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn.request("GET", f"/apis/{group}/v1")
        except NotFound:
            conn.invalidate()
            return
        time.sleep(0.2)
    pytest.fail(f"{group}/v1 still served after its CRD was deleted")


def test_pruning_an_object_whose_kind_is_gone_counts_as_done(conn: ClusterConnection) -> None:
    schema, bundle, ns, group = unique("schema"), unique("gone"), unique("ns"), group_name()
    assert sync_unit(conn, schema, ID1, "c1", [crd_manifest(group)], options()).state is (
        BundleState.READY
    )
    v1 = [custom_object(group, "w", ns), configmap("cfg", ns, v="1")]
    assert sync_unit(conn, bundle, ID1, "c1", v1, options()).state is BundleState.READY
    crd_ref = ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", None,
                        f"widgets.{group}")  # fmt: skip
    conn.delete(crd_ref)  # by hand: the kind and its objects are gone
    wait_kind_gone(conn, group)

    result = sync_unit(conn, bundle, ID2, "c2", [configmap("cfg", ns, v="1")], options())
    assert result.state is BundleState.READY, result.message
    gone = [o for o in result.objects if o.ref.kind == "Widget"]
    assert [(o.action, o.message) for o in gone] == [
        (Action.PRUNED, f"already gone: the cluster serves no Widget ({group}) any more")
    ]
    listed = read_inventory(conn, bundle).objects
    assert [e.ref.kind for e in listed if not e.created_namespace] == ["ConfigMap"]
    again = sync_unit(conn, bundle, ID2, "c2", [configmap("cfg", ns, v="1")], options())
    assert again.state is BundleState.READY and again.writes == 0


def test_an_object_recorded_at_a_version_no_longer_served_is_pruned_at_another(
    conn: ClusterConnection,
) -> None:
    """The kind is still there under another version: the object is found and deleted,
    not forgotten (and not an error)."""
    schema, bundle, ns, group = unique("schema"), unique("moved"), unique("ns"), group_name()
    crd = crd_manifest(group)
    assert sync_unit(conn, schema, ID1, "c1", [crd], options()).state is BundleState.READY
    v1 = [custom_object(group, "w", ns), configmap("cfg", ns, v="1")]
    assert sync_unit(conn, bundle, ID1, "c1", v1, options()).state is BundleState.READY
    both = copy.deepcopy(crd)
    old, new = both["spec"]["versions"][0], copy.deepcopy(both["spec"]["versions"][0])
    old["served"], old["storage"], new["name"] = False, False, "v2"
    both["spec"]["versions"] = [old, new]
    assert sync_unit(conn, schema, ID2, "c2", [both], options()).state is BundleState.READY
    wait_kind_gone(conn, group)  # v1 is no longer served

    result = sync_unit(conn, bundle, ID2, "c2", [configmap("cfg", ns, v="1")], options())
    assert result.state is BundleState.READY, result.message
    pruned = [o for o in result.objects if o.ref.kind == "Widget"]
    assert [(o.action, o.message) for o in pruned] == [(Action.PRUNED, "")]
    assert conn.get(ObjectRef(f"{group}/v2", "Widget", ns, "w")) is None
