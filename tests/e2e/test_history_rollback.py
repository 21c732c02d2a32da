"""The revision history in the cluster and rollbacks from it, on a real cluster.

Each revision is a Secret in fleet-system (`fleet.engine.history`); a rollback applies a
stored revision again through the sync path (`fleet.engine.rollback`): the live objects
must be exactly the old revision's, object by object, with what the newer one added pruned
and what it removed back, and without rendering anything.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fleet.engine import (
    RollbackRefused,
    list_revisions,
    mark_revision,
    previous_good,
    read_revision,
    rollback,
)
from fleet.engine.history import revision_name
from fleet.engine.inventory import INVENTORY_NAMESPACE, read_inventory, write_inventory
from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.engine.prune import remove
from fleet.engine.unit import sync_unit
from fleet.manifest import Manifest
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.engine_support import (
    configmap,
    connect,
    core_api,
    deployment,
    namespace,
    options,
    unique,
)
from tests.e2e.safe_support import SafeFleet, new_fleet
from tests.e2e.sync_support import fleet_env  # noqa: F401  (fixture)
from tests.support.servers import GitServer

CLUSTER = "prod-us"


@pytest.fixture
def conn(local_fleet: LocalFleet) -> Iterator[ClusterConnection]:
    made = connect(local_fleet, CLUSTER)
    yield made
    made.close()


@pytest.fixture
def ns(local_fleet: LocalFleet) -> Iterator[str]:
    name = unique("hist")
    yield name
    with contextlib.suppress(client.ApiException):
        core_api(local_fleet, CLUSTER).delete_namespace(name)


def secret(name: str, ns: str, **data: str) -> Manifest:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "Opaque",
        "data": encoded,
    }


def web(ns: str, image: str, replicas: int) -> Manifest:
    made = deployment("web", ns, replicas=replicas)
    made["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return made


def revision_one(ns: str) -> list[Manifest]:
    return [
        namespace(ns),
        configmap("settings", ns, color="blue", size="1"),
        secret("token", ns, token="one"),
        web(ns, "example/app:1.0", 1),
    ]


def revision_two(ns: str) -> list[Manifest]:
    """Changed values, the Secret removed, a ConfigMap added."""
    return [
        namespace(ns),
        configmap("settings", ns, color="red"),
        web(ns, "example/app:2.0", 2),
        configmap("extra", ns, added="in two"),
    ]


def ref_of(manifest: Manifest) -> ObjectRef:
    return ObjectRef.of(manifest)


def contains(live: Any, wanted: Any, path: str = "") -> list[str]:
    """Where `live` differs from `wanted` (every field `wanted` sets, lists item by item)."""
    if isinstance(wanted, dict):
        if not isinstance(live, dict):
            return [f"{path}: {live!r} is not an object"]
        return [d for k, v in wanted.items() for d in contains(live.get(k), v, f"{path}/{k}")]
    if isinstance(wanted, list):
        if not isinstance(live, list) or len(live) != len(wanted):
            return [f"{path}: {live!r} != {wanted!r}"]
        return [d for i, (a, b) in enumerate(zip(live, wanted, strict=True))
                for d in contains(a, b, f"{path}/{i}")]  # fmt: skip
    return [] if live == wanted else [f"{path}: {live!r} != {wanted!r}"]


def assert_live_is(conn: ClusterConnection, manifests: list[Manifest]) -> None:
    """Every object of `manifests` is live with exactly its data, spec and type."""
    for manifest in manifests:
        live = conn.get(ref_of(manifest))
        assert live is not None, f"{ref_of(manifest)} is missing"
        for key in ("data", "spec", "type"):
            if key in manifest:
                differs = contains(live.get(key), manifest[key], key)
                assert not differs, (ref_of(manifest), differs)
        if "data" in manifest:  # exactly: no key of another revision left over
            assert set(live.get("data") or {}) == set(manifest["data"]), ref_of(manifest)


def history_secrets(local_fleet: LocalFleet, bundle: str) -> list[client.V1Secret]:
    core = core_api(local_fleet, CLUSTER)
    found = core.list_namespaced_secret(
        INVENTORY_NAMESPACE,
        label_selector=f"fleet-gitops.io/history=true,fleet-gitops.io/bundle={bundle}",
    ).items
    return sorted(found, key=lambda s: int(s.metadata.labels["fleet-gitops.io/revision"]))


def test_rollback_puts_the_previous_revision_back_object_by_object(
    conn: ClusterConnection, local_fleet: LocalFleet, ns: str
) -> None:
    bundle, fleet = unique("roll"), unique("fleet")
    one, two = revision_one(ns), revision_two(ns)
    first = sync_unit(conn, bundle, "1" * 64, "c1", one, options(), fleet=fleet)
    assert first.state is BundleState.READY and first.revision == 1, first.message
    second = sync_unit(conn, bundle, "2" * 64, "c2", two, options(), fleet=fleet)
    assert second.state is BundleState.READY and second.revision == 2, second.message
    assert conn.get(ref_of(secret("token", ns))) is None  # removed by revision two

    result = rollback(conn, bundle, fleet, reason="error rate 7% > 5%", details={"ids": ["2"]})

    assert result.state is BundleState.READY, result.message
    assert result.revision == 1  # the old revision, not a new one
    assert_live_is(conn, one)
    assert conn.get(ref_of(configmap("extra", ns))) is None  # added by two: pruned
    inv = read_inventory(conn, bundle, fleet)
    assert inv.current is not None
    assert (inv.current.deployment_id, inv.current.commit) == ("1" * 64, "c1")
    revisions = list_revisions(conn, bundle, fleet)
    assert [(r.number, r.status) for r in revisions] == [(1, "ready"), (2, "rolledBack")]
    assert revisions[1].reason == "error rate 7% > 5%"
    assert revisions[1].details == {"ids": ["2"]}
    # the stored revision is the manifests as given, without fleet's labels
    stored = read_revision(conn, bundle, fleet, 1)
    assert stored.manifests == one and stored.commit == "c1"
    assert len(history_secrets(local_fleet, bundle)) == 2

    # a rolled-back revision is no "previous good" one: nothing left to roll back to
    with pytest.raises(RollbackRefused, match=f"bundle {bundle} on cluster {CLUSTER}"):
        rollback(conn, bundle, fleet, reason="again")


def test_history_is_bounded_by_the_limit(
    conn: ClusterConnection,
    local_fleet: LocalFleet,
    ns: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEET_HISTORY_LIMIT", "3")
    bundle = unique("bounded")
    for i in range(1, 13):
        manifests = [namespace(ns), configmap("settings", ns, i=str(i))]
        result = sync_unit(conn, bundle, f"{i:064d}", f"c{i}", manifests, options())
        assert result.state is BundleState.READY and result.revision == i, result.message
    kept = history_secrets(local_fleet, bundle)
    assert [s.metadata.name for s in kept] == [revision_name(bundle, None, n) for n in (10, 11, 12)]
    assert kept[0].type == "fleet-gitops.io/revision.v1"
    assert [r.number for r in list_revisions(conn, bundle, None)] == [10, 11, 12]

    removal = remove(conn, bundle)
    assert removal.state is not BundleState.ERR_APPLIED, removal.message
    assert history_secrets(local_fleet, bundle) == []  # a removed bundle keeps no history


def test_rollback_to_a_chosen_revision_and_what_runs_before_the_next(
    conn: ClusterConnection, ns: str
) -> None:
    bundle, fleet = unique("to"), unique("fleet")
    versions = {n: [namespace(ns), configmap("settings", ns, v=str(n))] for n in (1, 2, 3)}
    for n, manifests in versions.items():
        sync_unit(conn, bundle, str(n) * 64, f"c{n}", manifests, options(), fleet=fleet)

    with pytest.raises(
        RollbackRefused, match=f"bundle {bundle} on cluster {CLUSTER}: no revision 9"
    ):
        rollback(conn, bundle, fleet, to=9, reason="by hand")
    with pytest.raises(RollbackRefused, match="revision 3 is what runs there now"):
        rollback(conn, bundle, fleet, to=3, reason="by hand")

    result = rollback(conn, bundle, fleet, to=1, reason="by hand")
    assert result.state is BundleState.READY and result.revision == 1, result.message
    assert_live_is(conn, versions[1])
    statuses = {r.number: r.status for r in list_revisions(conn, bundle, fleet)}
    assert statuses == {1: "ready", 2: "ready", 3: "rolledBack"}

    # the next deployment's previous good revision is the one that ran just before it
    four = [namespace(ns), configmap("settings", ns, v="4")]
    assert sync_unit(conn, bundle, "4" * 64, "c4", four, options(), fleet=fleet).revision == 4
    revisions = list_revisions(conn, bundle, fleet)
    good = previous_good(revisions, "4" * 64)
    assert good is not None and good.number == 1


def test_a_revision_too_big_to_keep_is_recorded_but_not_rollbackable(
    conn: ClusterConnection, ns: str
) -> None:
    bundle = unique("big")
    # random text does not compress: three ConfigMaps of 600 kB are over a Secret's 1 MiB
    big = [namespace(ns)] + [
        configmap(f"blob{i}", ns, blob=secrets.token_urlsafe(450_000)) for i in range(3)
    ]
    first = sync_unit(conn, bundle, "b" * 64, "c1", big, options())
    assert first.state is BundleState.READY and first.revision == 1, first.message
    [kept] = list_revisions(conn, bundle, None)
    assert not kept.rollbackable and "too big to keep" in kept.not_rollbackable_reason
    small = [namespace(ns), configmap("small", ns, v="1")]
    assert sync_unit(conn, bundle, "s" * 64, "c2", small, options()).revision == 2

    with pytest.raises(
        RollbackRefused, match=r"revision 1 cannot be rolled back to: manifests too big"
    ):
        rollback(conn, bundle, None, reason="gate failed")
    assert conn.get(ref_of(configmap("small", ns))) is not None  # nothing was touched
    assert [r.status for r in list_revisions(conn, bundle, None)] == ["ready", "ready"]


def test_no_op_sync_writes_nothing_and_history_catches_up_once(
    conn: ClusterConnection, local_fleet: LocalFleet, ns: str
) -> None:
    bundle = unique("noop")
    manifests = revision_one(ns)
    first = sync_unit(conn, bundle, "n" * 64, "c1", manifests, options())
    assert first.state is BundleState.READY, first.message
    [before] = history_secrets(local_fleet, bundle)

    again = sync_unit(conn, bundle, "n" * 64, "c1", manifests, options())
    assert again.writes == 0 and again.revision == 1, again.objects
    assert again.requests <= first.requests
    [after] = history_secrets(local_fleet, bundle)
    assert after.metadata.resource_version == before.metadata.resource_version

    # an inventory from before history was kept (no number): the next sync records it once
    core_api(local_fleet, CLUSTER).delete_namespaced_secret(
        before.metadata.name, INVENTORY_NAMESPACE
    )
    inv = read_inventory(conn, bundle)
    assert inv.current is not None
    inv.revisions[-1] = dataclasses.replace(inv.current, history=0)
    inv.resource_version = ""
    write_inventory(conn, inv)
    caught_up = sync_unit(conn, bundle, "n" * 64, "c1", manifests, options())
    assert caught_up.writes == 2 and caught_up.revision == 1  # the revision, the inventory
    assert sync_unit(conn, bundle, "n" * 64, "c1", manifests, options()).writes == 0


def test_a_marked_revision_keeps_its_status_through_a_drift_pass(
    conn: ClusterConnection, ns: str
) -> None:
    bundle = unique("mark")
    manifests = [namespace(ns), configmap("settings", ns, v="1")]
    sync_unit(conn, bundle, "m" * 64, "c1", manifests, options())
    marked = mark_revision(conn, bundle, None, "m" * 64, "failed", "p99 latency\n800ms")
    assert marked is not None and (marked.status, marked.reason) == ("failed", "p99 latency 800ms")
    conn.delete(ref_of(configmap("settings", ns)))  # drift: the next pass re-creates it, same id
    again = sync_unit(conn, bundle, "m" * 64, "c1", manifests, options())
    assert again.state is BundleState.READY
    [kept] = list_revisions(conn, bundle, None)
    assert (kept.number, kept.status) == (1, "failed")
    assert mark_revision(conn, bundle, None, "x" * 64, "failed") is None  # no such id


# ------------------------------------------------------------ a Helm bundle, no renderer


def _chart(fleet: SafeFleet, version: str, greeting: str) -> None:
    fleet.tree.write(
        "apps/chart/fleet.yaml",
        f"defaultNamespace: {fleet.ns('chart')}\nhelm:\n  values:\n    greeting: {greeting}\n",
    )
    fleet.tree.write("apps/chart/Chart.yaml", f"apiVersion: v2\nname: app\nversion: {version}\n")
    fleet.tree.write(
        "apps/chart/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\n"
        "  labels:\n    helm.sh/chart: app-{{ .Chart.Version }}\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
        "  chart: {{ .Chart.Version | quote }}\n",
    )


@pytest.mark.usefixtures("fleet_env")
def test_rollback_of_a_helm_revision_needs_no_renderer(
    git_server: GitServer,
    local_fleet: LocalFleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet = new_fleet(git_server, local_fleet, tmp_path / "repo", prefix="hist")
    bundle, ns = "apps-chart", fleet.ns("chart")
    try:
        _chart(fleet, "0.1.0", "hello")
        fleet.commit("chart 0.1.0")
        assert fleet.sync().ok
        _chart(fleet, "0.2.0", "bonjour")
        fleet.commit("chart 0.2.0")
        assert fleet.sync().ok
        hello = ObjectRef("v1", "ConfigMap", ns, "hello")
        live = fleet.live(hello)
        assert live is not None and live["data"]["chart"] == "0.2.0"

        # chart 0.1.0 no longer resolves anywhere, and there is no helm to render it with
        fleet.remove("apps/chart")
        fleet.tree.write("README.md", "the chart is gone\n")
        fleet.commit("chart gone")
        monkeypatch.setenv("FLEET_HELM", str(tmp_path / "no-such-helm"))
        monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))

        result = rollback(fleet.conn, bundle, fleet.name, reason="canary failed")
        assert result.state is BundleState.READY, result.message
        live = fleet.live(hello)
        assert live is not None
        assert live["data"] == {"greeting": "hello", "chart": "0.1.0"}
        assert live["metadata"]["labels"]["helm.sh/chart"] == "app-0.1.0"
        statuses = [r.status for r in list_revisions(fleet.conn, bundle, fleet.name)]
        assert statuses == ["ready", "rolledBack"]
    finally:
        with contextlib.suppress(client.ApiException):
            fleet.core().delete_namespace(ns)
        fleet.conn.close()
