"""Server-side apply of a bundle to a real cluster: order, ownership, no-op, errors, dry run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.client.rest import ApiException

from fleet.engine.apply import Action, apply_one, bundle_label, prepare, resolve
from fleet.engine.identity import Owner
from fleet.engine.inventory import read_inventory
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, ObjectRef
from fleet.engine.labels import ANN_DEPLOYMENT, ANN_HASH, LABEL_BUNDLE
from fleet.engine.unit import sync_unit
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.engine_support import configmap, connect, core_api, namespace, options, unique


@pytest.fixture
def conn(local_fleet: LocalFleet) -> ClusterConnection:
    return connect(local_fleet, "dev-eu")


def test_first_sync_applies_everything_with_ownership(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns, implicit = unique("web"), unique("ns"), unique("implicit")
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": unique("reader")},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    # deliberately out of order: namespaced objects before their Namespace
    manifests = [
        configmap("settings", ns, color="blue"),
        configmap("other", implicit, size="2"),
        role,
        namespace(ns),
    ]
    result = sync_unit(conn, bundle, "d1" * 32, "c1", manifests, options())
    assert result.state is BundleState.READY, result.message
    assert result.count(Action.CREATED) == 4
    assert result.created_namespaces == [implicit]
    assert result.inventory_written

    core = core_api(local_fleet)
    live = core.read_namespaced_config_map("settings", ns)
    assert live.data == {"color": "blue"}
    assert live.metadata.labels[LABEL_BUNDLE] == bundle
    assert live.metadata.annotations[ANN_DEPLOYMENT] == "d1" * 32
    assert len(live.metadata.annotations[ANN_HASH]) == 64
    assert {m.manager for m in live.metadata.managed_fields} == {f"fleet/{bundle}"}
    assert core.read_namespace(implicit).metadata.labels[LABEL_BUNDLE] == bundle

    inv = read_inventory(conn, bundle)
    assert ObjectRef("v1", "ConfigMap", ns, "settings") in inv.refs()
    created = [e for e in inv.objects if e.created_namespace]
    assert [e.ref.name for e in created] == [implicit]
    assert inv.current is not None
    assert (inv.current.commit, inv.current.state) == ("c1", "Ready")


def test_second_sync_with_nothing_changed_writes_nothing(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("noop"), unique("ns")
    manifests = [namespace(ns), *(configmap(f"cm{i}", ns, i=str(i)) for i in range(5))]
    first = sync_unit(conn, bundle, "a" * 64, "c1", manifests, options())
    assert first.state is BundleState.READY, first.message
    core = core_api(local_fleet)
    before = {c.metadata.name: c.metadata.resource_version
              for c in core.list_namespaced_config_map(ns).items}  # fmt: skip

    writes_before = conn.writes
    second = sync_unit(conn, bundle, "a" * 64, "c1", manifests, options())
    assert second.state is BundleState.READY, second.message
    assert second.writes == 0 and conn.writes == writes_before
    assert second.count(Action.UNCHANGED) == 6
    assert not second.inventory_written
    after = {c.metadata.name: c.metadata.resource_version
             for c in core.list_namespaced_config_map(ns).items}  # fmt: skip
    assert after == before
    # reads only: the inventory, discovery is cached, one LIST per kind and namespace
    assert second.requests <= 5


def test_changed_object_is_the_only_one_rewritten(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("change"), unique("ns")
    manifests = [namespace(ns), configmap("a", ns, v="1"), configmap("b", ns, v="1")]
    sync_unit(conn, bundle, "1" * 64, "c1", manifests, options())
    core = core_api(local_fleet)
    rv_b = core.read_namespaced_config_map("b", ns).metadata.resource_version

    manifests[1] = configmap("a", ns, v="2")
    result = sync_unit(conn, bundle, "2" * 64, "c2", manifests, options())
    assert result.state is BundleState.READY, result.message
    assert result.count(Action.CONFIGURED) == 1
    assert result.writes == 3  # the object, the inventory and its history revision
    assert core.read_namespaced_config_map("a", ns).data == {"v": "2"}
    assert core.read_namespaced_config_map("b", ns).metadata.resource_version == rv_b
    inv = read_inventory(conn, bundle)
    assert [r.commit for r in inv.revisions] == ["c1", "c2"]


def test_object_deleted_by_hand_is_recreated(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("recreate"), unique("ns")
    manifests = [namespace(ns), configmap("a", ns, v="1")]
    sync_unit(conn, bundle, "1" * 64, "c1", manifests, options())
    core_api(local_fleet).delete_namespaced_config_map("a", ns)
    result = sync_unit(conn, bundle, "1" * 64, "c1", manifests, options())
    assert result.count(Action.CREATED) == 1
    assert core_api(local_fleet).read_namespaced_config_map("a", ns).data == {"v": "1"}


def test_long_bundle_name_gets_a_valid_label(conn: ClusterConnection) -> None:
    bundle = "Team_A/" + "very-long-path-segment/" * 5 + unique("x")
    ns = unique("ns")
    result = sync_unit(conn, bundle, "3" * 64, "c1", [configmap("a", ns, v="1")], options())
    assert result.state is BundleState.READY, result.message
    label = bundle_label(bundle)
    assert len(label) <= 63 and label != bundle
    assert bundle_label(bundle) == label  # deterministic
    second = sync_unit(conn, bundle, "3" * 64, "c1", [configmap("a", ns, v="1")], options())
    assert second.writes == 0


def test_crd_first_then_its_custom_resources(conn: ClusterConnection) -> None:
    suffix = unique("g").replace("-", "")
    group = f"{suffix}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    ns = unique("ns")
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": ns},
        "spec": {"size": 3},
    }
    bundle = unique("crd")
    result = sync_unit(conn, bundle, "4" * 64, "c1", [widget, crd], options())
    assert result.state is BundleState.READY, result.message
    assert [o.ref.kind for o in result.objects] == ["Widget", "CustomResourceDefinition"]
    assert all(o.action is Action.CREATED for o in result.objects)
    again = sync_unit(conn, bundle, "4" * 64, "c1", [widget, crd], options())
    assert again.writes == 0, again.objects


def test_invalid_object_is_errapplied_with_one_line_and_others_applied(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("invalid"), unique("ns")
    bad = configmap("Bad_Name", ns, v="1")
    result = sync_unit(conn, bundle, "5" * 64, "c1", [configmap("good", ns, v="1"), bad], options())
    assert result.state is BundleState.ERR_APPLIED
    assert "\n" not in result.message
    assert "ConfigMap" in result.message and "Bad_Name" in result.message
    assert core_api(local_fleet).read_namespaced_config_map("good", ns).data == {"v": "1"}


def test_unknown_kind_is_errapplied(conn: ClusterConnection) -> None:
    thing = {"apiVersion": "nope.example.com/v1", "kind": "Thing", "metadata": {"name": "t"}}
    result = sync_unit(conn, unique("unknown"), "6" * 64, "c1", [thing], options())
    assert result.state is BundleState.ERR_APPLIED
    assert "Thing" in result.message and "CustomResourceDefinition" in result.message


def test_conflict_names_the_other_manager_and_force_takes_over(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("conflict"), unique("ns")
    sync_unit(conn, bundle, "7" * 64, "c1", [configmap("shared", ns, owner="fleet")], options())
    core = core_api(local_fleet)
    body = core.read_namespaced_config_map("shared", ns)
    body.data = {"owner": "someone-else"}
    core.replace_namespaced_config_map("shared", ns, body, field_manager="kubectl-edit")

    changed = [configmap("shared", ns, owner="fleet-v2")]
    result = sync_unit(conn, bundle, "8" * 64, "c2", changed, options())
    assert result.state is BundleState.ERR_APPLIED
    assert "kubectl-edit" in result.message and ".data.owner" in result.message
    assert "\n" not in result.message

    forced = sync_unit(conn, bundle, "8" * 64, "c2", changed, options(helm={"force": True}))
    assert forced.state is BundleState.READY, forced.message
    assert core.read_namespaced_config_map("shared", ns).data == {"owner": "fleet-v2"}


def test_render_error_does_nothing(conn: ClusterConnection, local_fleet: LocalFleet) -> None:
    bundle, ns = unique("render"), unique("ns")
    sync_unit(conn, bundle, "9" * 64, "c1", [configmap("a", ns, v="1")], options())
    writes = conn.writes
    result = sync_unit(
        conn, bundle, "0" * 64, "c2", [], options(), render_error="chart/values.yaml:3: bad"
    )
    assert result.state is BundleState.ERR_APPLIED
    assert "render failed" in result.message and conn.writes == writes
    assert core_api(local_fleet).read_namespaced_config_map("a", ns).data == {"v": "1"}


def test_dry_run_writes_nothing_and_redacts_secrets(
    conn: ClusterConnection, local_fleet: LocalFleet
) -> None:
    bundle, ns = unique("dry"), unique("ns")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": ns},
        "stringData": {"password": "hunter2-do-not-print"},
    }
    manifests = [configmap("a", ns, v="1"), secret]
    writes = conn.writes
    result = sync_unit(conn, bundle, "b" * 64, "c1", manifests, options(), dry_run=True)
    assert conn.writes == writes and result.writes == 0
    assert result.state is BundleState.OUT_OF_SYNC
    assert "hunter2" not in result.diff and "aHVudGVyMi" not in result.diff
    assert "<redacted" in result.diff and "v: '1'" in result.diff
    with pytest.raises(ApiException) as err:
        core_api(local_fleet).read_namespace(ns)
    assert err.value.status == 404

    # applied for real, then a dry run of a changed Secret shows that it differs, not how
    sync_unit(conn, bundle, "b" * 64, "c1", manifests, options())
    secret["stringData"] = {"password": "changed-secret-value"}
    again = sync_unit(conn, bundle, "c" * 64, "c2", manifests, options(), dry_run=True)
    assert again.writes == 0
    assert "<redacted, desired value differs>" in again.diff
    assert "changed-secret-value" not in again.diff and "hunter2" not in again.diff
    assert "ConfigMap" not in again.diff  # unchanged objects have no diff
    same = sync_unit(conn, bundle, "b" * 64, "c1", [configmap("a", ns, v="1")], options(),
                     dry_run=True)  # fmt: skip
    assert same.state is BundleState.OUT_OF_SYNC  # the Secret would be pruned
    assert "Secret" in same.diff and "deleted" in same.diff


def test_unreachable_cluster_raises_for_a_retry(local_fleet: LocalFleet, tmp_path: Path) -> None:
    """A stopped API server: ClusterUnreachable (the worker retries), nothing else."""
    text = local_fleet.clusters["dev-eu"].kubeconfig.read_text()
    server = local_fleet.clusters["dev-eu"].server
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(text.replace(server, "https://127.0.0.1:9"))
    conn = ClusterConnection.from_kubeconfig(dead, name="dead")
    with pytest.raises(ClusterUnreachable) as err:
        sync_unit(conn, unique("x"), "1" * 64, "c1", [configmap("a", "default")], options())
    message = str(err.value)
    assert message.startswith("dead: ") and "will retry" in message and "\n" not in message
    assert "BEGIN" not in message and "token" not in message.lower()


def test_forbidden_is_errapplied_and_never_shows_credentials(
    local_fleet: LocalFleet, tmp_path: Path
) -> None:
    """A service account without any role: one line saying forbidden, no token in it."""
    core = core_api(local_fleet)
    ns = unique("sa")
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_service_account(ns, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", ns, {"spec": {"expirationSeconds": 600}}
    ).status.token
    kubeconfig = yaml.safe_load(local_fleet.clusters["dev-eu"].kubeconfig.read_text())
    for user in kubeconfig["users"]:
        user["user"] = {"token": token}
    path = tmp_path / "nobody.kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    conn = ClusterConnection.from_kubeconfig(path, name="dev-eu")
    result = sync_unit(conn, unique("x"), "1" * 64, "c1", [configmap("a", ns)], options())
    assert result.state is BundleState.ERR_APPLIED
    assert "forbidden" in result.message and "\n" not in result.message
    assert token not in result.message and result.writes == 0


def test_the_api_server_sees_two_bundles_write_one_object(local_fleet: LocalFleet) -> None:
    """Two workers creating one object at the same moment: the ownership check before the
    write cannot see the other's create, so the field managers per bundle must. The second
    unforced apply is a 409 that names both bundles."""
    conn = connect(local_fleet)
    ns = unique("race")
    core_api(local_fleet).create_namespace({"metadata": {"name": ns}})
    first, second = Owner("alpha", "f"), Owner("beta", "f")
    for owner, value in ((first, "alpha"), (second, "beta")):
        [item] = prepare([configmap("shared", ns, by=value)], owner, "1" * 64, "default")
        assert resolve(conn, item) == ""
        result = apply_one(conn, item, owner, exists=False, force=False)
        if owner is first:
            assert result.action is Action.CREATED, result.message
    assert result.action is Action.FAILED and result.state is BundleState.ERR_APPLIED
    assert f"ConfigMap {ns}/shared is rendered by bundles alpha and beta" in result.message
    live = core_api(local_fleet).read_namespaced_config_map("shared", ns)
    assert live.data == {"by": "alpha"} and live.metadata.labels[LABEL_BUNDLE] == "alpha"
