"""Offline clusters under each wave policy (`wait`, `skip`, `unavailable`) in `fleet sync`.

Three real clusters: `a` (the test bed's prod-eu) and `gone` (a cluster of its own,
started for this module, whose kube-apiserver the tests stop and start again) form wave
`one`; `b` (the test bed's dev-eu) is wave `two`. The bundle is one ConfigMap that says
its version, so a sync is quick and what each cluster runs is read back live. Each test
has its own fleet (names with a suffix) so the clusters' inventories never mix.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import localfleet
import pytest
import yaml

from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.rollout.planner import OFFLINE_SKIPPED, OFFLINE_UNAVAILABLE
from fleet.runtime.embedded import SyncReport, sync_fleet
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.support.servers import GitServer, GitWorkTree

pytestmark = pytest.mark.timeout(300)
BUNDLE = "apps-settings"


@pytest.fixture(scope="module")
def gone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cluster of this module's own (the shared ones are never stopped): its fleet dir."""
    fleet_dir = tmp_path_factory.mktemp("offline-fleet")
    try:
        localfleet.up(fleet_dir, [("gone", {"region": "eu"})])
    except localfleet.LocalFleetError as err:
        pytest.fail(f"the offline test's cluster did not start: {err}", pytrace=False)
    try:
        yield fleet_dir
    finally:
        localfleet.down(fleet_dir)


@dataclass
class OfflineFleet:
    tree: GitWorkTree
    sfx: str
    kubeconfigs: dict[str, Path]
    gone_dir: Path
    conns: dict[str, ClusterConnection] = field(default_factory=dict)

    def name(self, logical: str) -> str:
        return f"{logical}-{self.sfx}"

    @property
    def ns(self) -> str:
        return f"offline-{self.sfx}"

    def commit(self, version: str, **wave_one: Any) -> str:
        one = {"name": "one", "clusters": [self.name("a"), self.name("gone")], **wave_one}
        two = {"name": "two", "clusters": [self.name("b")]}
        definition = {
            "apiVersion": "fleet-gitops.io/v1alpha1",
            "kind": "Fleet",
            "name": f"offline-{self.sfx}",
            "clusters": [{"name": self.name(n), "labels": {"region": "eu"}}
                         for n in ("a", "gone", "b")],
            "bundles": {"paths": ["apps/*"]},
            "rollout": {"waves": [one, two]},
        }  # fmt: skip
        self.tree.write("fleet.yaml", yaml.safe_dump(definition, sort_keys=False))
        self.tree.write("apps/settings/fleet.yaml", yaml.safe_dump({"defaultNamespace": self.ns}))
        configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "settings", "namespace": self.ns},
                     "data": {"version": version}}  # fmt: skip
        self.tree.write("apps/settings/configmap.yaml", yaml.safe_dump(configmap))
        return self.tree.commit_and_push(version)

    def sync(self) -> SyncReport:
        return sync_fleet(self.tree.remote_url, retries=1, backoff=0.2)

    def version(self, logical: str) -> str | None:
        cluster = self.name(logical)
        if cluster not in self.conns:
            self.conns[cluster] = ClusterConnection.from_kubeconfig(
                self.kubeconfigs[cluster], name=cluster
            )
        found = self.conns[cluster].get(ObjectRef("v1", "ConfigMap", self.ns, "settings"))
        return None if found is None else str((found.get("data") or {}).get("version"))

    @contextmanager
    def offline(self) -> Iterator[None]:
        """`gone` unreachable (its kube-apiserver stopped) inside the block, back after."""
        localfleet.stop_component(self.gone_dir, "gone", "kube-apiserver")
        try:
            yield
        finally:
            self.back()

    def back(self) -> None:
        state = localfleet.load_state(self.gone_dir)["gone"]["pids"]
        record = state["kube-apiserver"]  # type: ignore[index]
        if not localfleet.pid_alive(int(record["pid"]), record.get("start")):
            localfleet.start_component(self.gone_dir, "gone", "kube-apiserver")

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


@pytest.fixture
def fleet(
    local_fleet: LocalFleet,
    gone_cluster: Path,
    git_server: GitServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[OfflineFleet]:
    sfx = uuid.uuid4().hex[:6]
    creds = tmp_path / "credentials"
    creds.mkdir()
    beds = {"a": local_fleet.clusters["prod-eu"].kubeconfig, "b": local_fleet.clusters[
        "dev-eu"].kubeconfig, "gone": gone_cluster / "gone.kubeconfig"}  # fmt: skip
    kubeconfigs = {}
    for logical, source in beds.items():
        target = creds / f"{logical}-{sfx}.kubeconfig"
        shutil.copy(source, target)
        kubeconfigs[f"{logical}-{sfx}"] = target
    monkeypatch.setenv("FLEET_CREDENTIALS_DIR", str(creds))
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "cache"))
    tree = git_server.create_repo(f"offline-{sfx}", tmp_path / "repo")
    made = OfflineFleet(tree, sfx, kubeconfigs, gone_cluster)
    yield made
    made.back()
    made.close()


def rows(fleet: OfflineFleet, report: SyncReport) -> dict[str, tuple[BundleState, str]]:
    """logical cluster -> (state, message) of the bundle's row in the sync's report."""
    found = {row.cluster: (row.state, row.message) for row in report.status.units}
    return {n: found[fleet.name(n)] for n in ("a", "gone", "b")}


def test_wait_holds_the_next_wave_and_says_the_cluster_is_offline(fleet: OfflineFleet) -> None:
    fleet.commit("v1", offline="wait")
    with fleet.offline():
        report = fleet.sync()
    assert not report.ok
    assert fleet.name("gone") in report.unreachable
    found = rows(fleet, report)
    assert found["a"][0] is BundleState.READY
    assert found["gone"][0] is BundleState.ERR_APPLIED and "unreachable" in found["gone"][1]
    # wave two waits for the offline cluster of wave one, and says so
    assert found["b"] == (
        BundleState.PENDING,
        f"wave two waits for wave one ({fleet.name('gone')}: offline)",
    )
    assert (fleet.version("a"), fleet.version("b")) == ("v1", None)

    again = fleet.sync()  # the cluster is back: wave one completes, then wave two
    assert again.ok, rows(fleet, again)
    assert [fleet.version(n) for n in ("a", "gone", "b")] == ["v1", "v1", "v1"]


def test_skip_lets_the_next_wave_go_and_deploys_the_cluster_when_back(
    fleet: OfflineFleet,
) -> None:
    fleet.commit("v1", offline="skip")
    assert fleet.sync().ok  # every cluster up: v1 everywhere
    fleet.commit("v2", offline="skip")
    with fleet.offline():
        report = fleet.sync()
    assert not report.ok  # one cluster did not get it
    found = rows(fleet, report)
    assert found["a"][0] is BundleState.READY
    assert found["b"][0] is BundleState.READY  # the next wave went
    state, message = found["gone"]
    assert state is BundleState.ERR_APPLIED
    assert message.startswith("cluster unreachable: ") and message.endswith(f"; {OFFLINE_SKIPPED}")
    assert report.waiting[(BUNDLE, fleet.name("gone"))] == OFFLINE_SKIPPED
    assert [fleet.version(n) for n in ("a", "gone", "b")] == ["v2", "v1", "v2"]

    back = fleet.sync()  # the cluster is back: it gets the revision its wave skipped
    assert back.ok, rows(fleet, back)
    assert fleet.version("gone") == "v2"
    assert [key for key in back.results] == [(BUNDLE, fleet.name("gone"))]  # nothing else


def test_unavailable_uses_a_place_of_max_unavailable(fleet: OfflineFleet) -> None:
    fleet.commit("v1", offline="unavailable", maxUnavailable=1)
    with fleet.offline():
        held = fleet.sync()
        # the offline cluster is the one unavailable unit wave one allows: nothing starts
        found = rows(fleet, held)
        assert found["a"] == (BundleState.PENDING, "maxUnavailable 1 reached in wave one")
        assert found["b"][0] is BundleState.PENDING
        assert found["b"][1].startswith("wave two waits for wave one (")
        assert (fleet.version("a"), fleet.version("b")) == (None, None)
        assert not held.results

        fleet.commit("v1", offline="unavailable", maxUnavailable=2)
        report = fleet.sync()
    # one more place: a goes, and the wave is complete without the offline cluster
    found = rows(fleet, report)
    assert found["a"][0] is BundleState.READY
    assert found["b"][0] is BundleState.READY
    assert found["gone"][1].endswith(f"; {OFFLINE_UNAVAILABLE}")
    assert [fleet.version(n) for n in ("a", "gone", "b")] == ["v1", None, "v1"]
