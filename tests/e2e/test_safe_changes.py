"""Ordinary Git refactors never delete what Git still wants (embedded `fleet sync`).

Each test is a case of issue 8 on a real cluster: a renamed bundle, an object moved between
bundles (both orders), an apiVersion change, a dropped Namespace manifest, two bundles
rendering one object, two fleets on one cluster, objects created before fleet. Every "not
deleted" is checked three ways: the same uid, the content, and no DELETE request in the
API server's audit log. The distributed runtime's side is tests/e2e/test_safe_changes_dist.py.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from fleet.cli import main
from fleet.engine.inventory import read_deployed, read_inventory
from fleet.engine.kube import ObjectRef
from fleet.engine.labels import LABEL_BUNDLE
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.safe_support import (
    SafeFleet,
    configmap,
    describe,
    namespace,
    new_fleet,
    ready,
)
from tests.e2e.sync_support import fleet_env  # noqa: F401  (fixture)
from tests.support.servers import GitServer

pytestmark = pytest.mark.usefixtures("fleet_env")


@pytest.fixture
def fleet(git_server: GitServer, local_fleet: LocalFleet, tmp_path: Path) -> Iterator[SafeFleet]:
    made = new_fleet(git_server, local_fleet, tmp_path / "repo")
    yield made
    core = made.core()
    for ns in ("data", "shop", "pay", "legacy", "crd"):
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(made.ns(ns))
    made.conn.close()


def cm(ns: str, name: str) -> ObjectRef:
    return ObjectRef("v1", "ConfigMap", ns, name)


def ns_ref(name: str) -> ObjectRef:
    return ObjectRef("v1", "Namespace", None, name)


# ---------------------------------------------------------------- case 1: renames and moves


def test_renaming_a_bundle_hands_its_objects_over(fleet: SafeFleet) -> None:
    data = fleet.ns("data")
    fleet.write("apps/data/ns.yaml", namespace(data))
    fleet.write("apps/data/cm.yaml", configmap("settings", data, v="1"))
    fleet.write("apps/data/more.yaml", configmap("more", data, v="2"))
    fleet.commit("data bundle")
    first = fleet.sync()
    assert first.ok and ready(first), describe(first)
    before = {ref: fleet.uid(ref) for ref in (ns_ref(data), cm(data, "settings"), cm(data, "more"))}
    # something in the namespace that fleet never managed (a PVC's data, a Secret)
    fleet.core().create_namespaced_secret(
        data, client.V1Secret(metadata=client.V1ObjectMeta(name="hand-made"))
    )

    fleet.move("apps/data", "apps/store")  # the bundle is now apps-store
    fleet.commit("rename the bundle")
    mark = fleet.audit.mark()
    report = fleet.sync()

    assert report.ok and ready(report), describe(report)
    assert fleet.deletes(mark, data) == []
    assert {ref: fleet.uid(ref) for ref in before} == before
    assert fleet.core().read_namespaced_secret("hand-made", data).metadata.name == "hand-made"
    live = fleet.live(cm(data, "settings"))
    assert live is not None and live["metadata"]["labels"][LABEL_BUNDLE] == "apps-store"
    # the old inventory is gone, the new one holds the objects
    assert not read_inventory(fleet.conn, "apps-data", fleet.name).exists
    assert cm(data, "settings") in read_inventory(fleet.conn, "apps-store", fleet.name).refs()
    assert set(read_deployed(fleet.conn, fleet=fleet.name)) == {"apps-store"}
    # a field manager per bundle: the old one no longer owns any field
    managers = {m["manager"] for m in live["metadata"].get("managedFields") or []}
    assert f"fleet/{fleet.name}/apps-store" in managers
    assert f"fleet/{fleet.name}/apps-data" not in managers

    again = fleet.sync()  # and it settles: nothing more to write
    assert again.ok and again.writes == 0, describe(again)


@pytest.mark.parametrize(("source", "target"), [("a-first", "z-last"), ("z-last", "a-first")])
def test_an_object_moved_between_bundles_keeps_its_uid(
    fleet: SafeFleet, source: str, target: str
) -> None:
    shop = fleet.ns("shop")
    fleet.write("apps/a-first/fleet.yaml", {"defaultNamespace": shop})
    fleet.write("apps/z-last/fleet.yaml", {"defaultNamespace": shop})
    fleet.write(f"apps/{source}/cm.yaml", configmap("moving", shop, v="1"))
    fleet.write(f"apps/{source}/stay.yaml", configmap(f"stay-{source}", shop, v="1"))
    fleet.write(f"apps/{target}/stay.yaml", configmap(f"stay-{target}", shop, v="1"))
    fleet.commit("two bundles")
    assert fleet.sync().ok
    uid = fleet.uid(cm(shop, "moving"))

    fleet.move(f"apps/{source}/cm.yaml", f"apps/{target}/cm.yaml")
    fleet.write(f"apps/{target}/cm.yaml", configmap("moving", shop, v="2"))  # and changed
    fleet.commit("move one object")
    mark = fleet.audit.mark()
    report = fleet.sync()

    assert report.ok and ready(report), describe(report)
    assert fleet.deletes(mark, shop) == []
    assert fleet.uid(cm(shop, "moving")) == uid
    live = fleet.live(cm(shop, "moving"))
    assert live is not None and live["data"] == {"v": "2"}
    assert live["metadata"]["labels"][LABEL_BUNDLE] == f"apps-{target}"
    assert cm(shop, "moving") not in read_inventory(fleet.conn, f"apps-{source}", fleet.name).refs()
    assert cm(shop, "moving") in read_inventory(fleet.conn, f"apps-{target}", fleet.name).refs()
    assert fleet.sync().writes == 0


# ---------------------------------------------------------------- case 2: apiVersion


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.safe.example.com"},
    "spec": {
        "group": "safe.example.com",
        "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": version,
                "served": True,
                "storage": version == "v1",
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                        },
                    }
                },
            }
            for version in ("v1", "v2")
        ],
    },
}


def gadget(version: str, ns: str, size: int) -> dict[str, object]:
    return {
        "apiVersion": f"safe.example.com/{version}",
        "kind": "Gadget",
        "metadata": {"name": "g", "namespace": ns},
        "spec": {"size": size},
    }


def hpa(version: str, ns: str) -> dict[str, object]:
    spec: dict[str, object] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": 3,
    }
    if version == "v1":
        spec["targetCPUUtilizationPercentage"] = 80
    else:
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
    return {
        "apiVersion": f"autoscaling/{version}",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": ns},
        "spec": spec,
    }


@pytest.fixture
def gadget_crd(fleet: SafeFleet) -> Iterator[None]:
    yield
    ext = client.ApiextensionsV1Api(client.ApiClient(fleet.core().api_client.configuration))
    with contextlib.suppress(client.ApiException):
        ext.delete_custom_resource_definition("gadgets.safe.example.com")


@pytest.mark.usefixtures("gadget_crd")
def test_changing_a_manifests_api_version_does_not_prune_it(fleet: SafeFleet) -> None:
    ns = fleet.ns("crd")
    fleet.write("apps/crd/crd.yaml", CRD)  # the CRD is cluster-wide: one fleet owns it
    fleet.write(
        "apps/gadgets/fleet.yaml", {"defaultNamespace": ns, "dependsOn": [{"name": "apps-crd"}]}
    )
    fleet.write("apps/gadgets/g.yaml", gadget("v1", ns, 1))
    fleet.write("apps/gadgets/hpa.yaml", hpa("v1", ns))
    fleet.commit("v1")
    first = fleet.sync()
    assert first.ok, describe(first)
    g_ref = ObjectRef("safe.example.com/v2", "Gadget", ns, "g")
    h_ref = ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", ns, "web")
    before = (fleet.uid(g_ref), fleet.uid(h_ref))
    assert None not in before

    fleet.write("apps/gadgets/g.yaml", gadget("v2", ns, 2))
    fleet.write("apps/gadgets/hpa.yaml", hpa("v2", ns))
    fleet.commit("v2")
    mark = fleet.audit.mark()
    report = fleet.sync()

    assert report.ok, describe(report)
    assert fleet.deletes(mark, ns) == []
    assert (fleet.uid(g_ref), fleet.uid(h_ref)) == before
    live = fleet.live(g_ref)
    assert live is not None and live["spec"] == {"size": 2}
    refs = read_inventory(fleet.conn, "apps-gadgets", fleet.name).refs()
    assert g_ref in refs and h_ref in refs  # recorded as applied now


# ---------------------------------------------------------------- case 3: namespaces


def test_dropping_a_namespace_manifest_keeps_the_namespace_its_objects_live_in(
    fleet: SafeFleet,
) -> None:
    pay = fleet.ns("pay")
    fleet.write("apps/pay/ns.yaml", namespace(pay))
    fleet.write("apps/pay/cm.yaml", configmap("settings", pay, v="1"))
    fleet.commit("namespace and a config map")
    assert fleet.sync().ok
    fleet.core().create_namespaced_secret(
        pay, client.V1Secret(metadata=client.V1ObjectMeta(name="someone-elses"))
    )
    uid = fleet.uid(ns_ref(pay))

    fleet.remove("apps/pay/ns.yaml")
    fleet.commit("the namespace manifest goes, the config map stays")
    mark = fleet.audit.mark()
    report = fleet.sync()

    assert report.ok, describe(report)
    assert fleet.deletes(mark, pay) == []
    assert fleet.uid(ns_ref(pay)) == uid
    assert fleet.uid(cm(pay, "settings")) is not None
    assert fleet.core().read_namespaced_secret("someone-elses", pay) is not None
    kept = [o for o in fleet.synced(report, "apps-pay").objects if o.ref == ns_ref(pay)]
    assert kept and kept[0].action.value == "kept" and "live in it" in kept[0].message
    assert fleet.sync().writes == 0  # stable, not re-decided with a write every pass

    # once nothing the fleet wants lives in it, the namespace left Git for good: pruned
    fleet.write("apps/pay/cm.yaml", configmap("settings", fleet.ns("shop"), v="1"))
    fleet.write("apps/pay/fleet.yaml", {"defaultNamespace": fleet.ns("shop")})
    fleet.commit("the config map moves elsewhere")
    mark = fleet.audit.mark()
    assert fleet.sync().ok
    assert [d.name for d in fleet.deletes(mark, pay) if d.resource == "namespaces"] == [pay]


def test_a_namespace_another_bundle_uses_survives_its_bundles_removal(fleet: SafeFleet) -> None:
    shop = fleet.ns("shop")
    fleet.write("apps/infra/ns.yaml", namespace(shop))
    fleet.write("apps/web/cm.yaml", configmap("web", shop, v="1"))
    fleet.commit("infra declares the namespace, web lives in it")
    assert fleet.sync().ok
    uid = fleet.uid(ns_ref(shop))

    fleet.remove("apps/infra")
    fleet.commit("infra leaves Git")
    mark = fleet.audit.mark()
    report = fleet.sync()

    assert report.ok, describe(report)
    assert fleet.deletes(mark, shop) == []
    assert fleet.uid(ns_ref(shop)) == uid and fleet.uid(cm(shop, "web")) is not None
    assert set(read_deployed(fleet.conn, fleet=fleet.name)) == {"apps-web"}


# ---------------------------------------------------------------- case 4: two bundles, one object


def test_two_bundles_rendering_one_object_is_an_error_and_the_first_keeps_it(
    fleet: SafeFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = fleet.ns("shop")
    fleet.write("apps/alpha/cm.yaml", configmap("shared", shop, owner="alpha"))
    fleet.commit("alpha")
    assert fleet.sync().ok
    uid = fleet.uid(cm(shop, "shared"))
    fleet.write("apps/beta/cm.yaml", configmap("shared", shop, owner="beta"))
    fleet.write("apps/beta/own.yaml", configmap("beta-own", shop, v="1"))
    fleet.commit("beta renders the same object")

    code = main(["sync", fleet.tree.remote_url, "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    rows = {u["bundle"]: u for u in json.loads(out)["units"]}
    assert rows["apps-beta"]["state"] == "ErrApplied"
    assert (
        f"ConfigMap {shop}/shared is rendered by bundles apps-alpha and apps-beta"
        in (rows["apps-beta"]["message"])
    )

    mark = fleet.audit.mark()
    report = fleet.sync()  # every pass: the same error, nothing overwritten
    beta = fleet.result(report, "apps-beta")
    assert beta.state is BundleState.ERR_APPLIED
    assert (
        f"ConfigMap {shop}/shared is rendered by bundles apps-alpha and apps-beta" in beta.message
    )
    assert fleet.result(report, "apps-alpha").state is BundleState.READY
    live = fleet.live(cm(shop, "shared"))
    assert (
        live is not None
        and live["data"] == {"owner": "alpha"}
        and fleet.uid(cm(shop, "shared")) == uid
    )
    assert live["metadata"]["labels"][LABEL_BUNDLE] == "apps-alpha"
    assert fleet.uid(cm(shop, "beta-own")) is not None  # beta's other objects are applied
    assert fleet.deletes(mark, shop) == []

    # alpha leaves Git: the object beta wants is not deleted, beta takes it over
    fleet.remove("apps/alpha")
    fleet.commit("alpha goes")
    mark = fleet.audit.mark()
    report = fleet.sync()
    assert report.ok and ready(report), describe(report)
    assert fleet.deletes(mark, shop) == []
    assert fleet.uid(cm(shop, "shared")) == uid
    live = fleet.live(cm(shop, "shared"))
    assert live is not None and live["data"] == {"owner": "beta"}
    assert live["metadata"]["labels"][LABEL_BUNDLE] == "apps-beta"


def test_two_bundles_creating_one_object_in_the_same_commit(fleet: SafeFleet) -> None:
    shop = fleet.ns("shop")
    fleet.write("apps/one/cm.yaml", configmap("twice", shop, by="one"))
    fleet.write("apps/two/cm.yaml", configmap("twice", shop, by="two"))
    fleet.commit("both at once")
    report = fleet.sync()
    assert not report.ok
    states = {b: fleet.result(report, b).state for b in ("apps-one", "apps-two")}
    assert sorted(states.values()) == sorted([BundleState.READY, BundleState.ERR_APPLIED])
    winner = next(b for b, s in states.items() if s is BundleState.READY)
    loser = next(b for b, s in states.items() if s is not BundleState.READY)
    assert "apps-one and apps-two" in fleet.result(report, loser).message or (
        "apps-two and apps-one" in fleet.result(report, loser).message
    )
    live = fleet.live(cm(shop, "twice"))
    assert live is not None and live["data"] == {"by": winner.removeprefix("apps-")}
    again = fleet.sync()
    assert again.writes == 0  # the loser never overwrote it, and says the same


# ---------------------------------------------------------------- case 5: two fleets


def test_two_fleets_with_a_same_named_bundle_share_a_cluster(
    fleet: SafeFleet, git_server: GitServer, local_fleet: LocalFleet, tmp_path: Path
) -> None:
    other = new_fleet(git_server, local_fleet, tmp_path / "other", prefix="other")
    try:
        mine, theirs = fleet.ns("shop"), fleet.ns("pay")
        fleet.write("apps/web/cm.yaml", configmap("web", mine, fleet="one"))
        other.write("apps/web/cm.yaml", configmap("web", theirs, fleet="two"))
        fleet.commit("fleet one")
        other.commit("fleet two")
        assert fleet.sync().ok and other.sync().ok
        their_uid = other.uid(cm(theirs, "web"))
        mine_inv = read_inventory(fleet.conn, "apps-web", fleet.name).refs()
        theirs_inv = read_inventory(fleet.conn, "apps-web", other.name).refs()
        assert mine_inv == {cm(mine, "web"), ns_ref(mine)}  # and the namespace it created
        assert theirs_inv == {cm(theirs, "web"), ns_ref(theirs)}

        # the first fleet drops its bundle: the other fleet's same-named bundle is untouched
        fleet.remove("apps/web")
        fleet.write("apps/else/cm.yaml", configmap("else", mine, v="1"))
        fleet.commit("fleet one drops web")
        mark = fleet.audit.mark()
        report = fleet.sync()
        assert report.ok, describe(report)
        assert fleet.uid(cm(mine, "web")) is None  # its own object is removed
        assert [d.name for d in fleet.deletes(mark, mine, theirs)] == ["web"]
        assert other.uid(cm(theirs, "web")) == their_uid
        assert read_inventory(fleet.conn, "apps-web", other.name).exists
        assert other.sync().writes == 0

        # and an object of the other fleet is never taken, whatever this fleet renders
        fleet.write("apps/grab/cm.yaml", configmap("web", theirs, fleet="one"))
        fleet.commit("fleet one renders fleet two's object")
        grab = fleet.sync()
        assert not grab.ok
        message = fleet.result(grab, "apps-grab").message
        assert f"ConfigMap {theirs}/web belongs to bundle apps-web of fleet {other.name}" in message
        live = other.live(cm(theirs, "web"))
        assert live is not None and live["data"] == {"fleet": "two"}
    finally:
        other.conn.close()


# ---------------------------------------------------------------- case 7: objects from before fleet


def test_an_object_fleet_did_not_create_is_not_adopted_without_take_ownership(
    fleet: SafeFleet,
) -> None:
    legacy = fleet.ns("legacy")
    core = fleet.core()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=legacy)))
    core.create_namespaced_config_map(
        legacy,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="existing"), data={"by": "kubectl"}),
    )
    uid = fleet.uid(cm(legacy, "existing"))
    fleet.write("apps/legacy/cm.yaml", configmap("existing", legacy, by="fleet"))
    fleet.commit("render an existing object")

    report = fleet.sync()
    assert not report.ok
    message = fleet.result(report, "apps-legacy").message
    assert f"ConfigMap {legacy}/existing already exists and fleet did not create it" in message
    assert "helm.takeOwnership" in message
    live = fleet.live(cm(legacy, "existing"))
    assert live is not None and live["data"] == {"by": "kubectl"}

    fleet.write("apps/legacy/fleet.yaml", {"helm": {"takeOwnership": True}})
    fleet.commit("adopt it")
    report = fleet.sync()
    assert report.ok, describe(report)
    assert fleet.uid(cm(legacy, "existing")) == uid
    live = fleet.live(cm(legacy, "existing"))
    assert live is not None and live["data"] == {"by": "fleet"}
    assert live["metadata"]["labels"][LABEL_BUNDLE] == "apps-legacy"

    # adopted means owned: removing the bundle now removes it
    fleet.remove("apps/legacy")
    fleet.write("apps/other/cm.yaml", configmap("other", legacy, v="1"))
    fleet.commit("the bundle leaves Git")
    assert fleet.sync().ok
    assert fleet.uid(cm(legacy, "existing")) is None
