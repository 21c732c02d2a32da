"""Freezes and maintenance windows in `fleet sync`, on two real clusters of the test bed.

`a` is the test bed's prod-eu, `b` its dev-eu. The bundle is one ConfigMap that says its
version. Windows are cron schedules chosen relative to the current UTC time (one that
opened a minute ago for an hour, one that opens in an hour), so every assertion holds
whenever the test runs.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.runtime.embedded import SyncReport, sync_fleet
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.support.servers import GitServer, GitWorkTree

pytestmark = pytest.mark.timeout(300)
BEDS = {"a": "prod-eu", "b": "dev-eu"}


@dataclass
class CalendarFleet:
    tree: GitWorkTree
    sfx: str
    kubeconfigs: dict[str, Path]
    conns: dict[str, ClusterConnection] = field(default_factory=dict)

    def name(self, logical: str) -> str:
        return f"{logical}-{self.sfx}"

    @property
    def ns(self) -> str:
        return f"calendar-{self.sfx}"

    def commit(self, version: str, **rollout: Any) -> str:
        definition = {
            "apiVersion": "fleet-gitops.io/v1alpha1",
            "kind": "Fleet",
            "name": f"calendar-{self.sfx}",
            "clusters": [{"name": self.name(n), "labels": {"site": n}} for n in BEDS],
            "bundles": {"paths": ["apps/*"]},
            **({"rollout": rollout} if rollout else {}),
        }
        self.tree.write("fleet.yaml", yaml.safe_dump(definition, sort_keys=False))
        self.tree.write("apps/settings/fleet.yaml", yaml.safe_dump({"defaultNamespace": self.ns}))
        configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "settings", "namespace": self.ns},
                     "data": {"version": version}}  # fmt: skip
        self.tree.write("apps/settings/configmap.yaml", yaml.safe_dump(configmap))
        return self.tree.commit_and_push(f"{version} {rollout}")

    def sync(self) -> SyncReport:
        return sync_fleet(self.tree.remote_url)

    def version(self, logical: str) -> str | None:
        cluster = self.name(logical)
        if cluster not in self.conns:
            self.conns[cluster] = ClusterConnection.from_kubeconfig(
                self.kubeconfigs[cluster], name=cluster
            )
        found = self.conns[cluster].get(ObjectRef("v1", "ConfigMap", self.ns, "settings"))
        return None if found is None else str((found.get("data") or {}).get("version"))

    def versions(self) -> list[str | None]:
        return [self.version(n) for n in BEDS]

    def row(self, report: SyncReport, logical: str) -> tuple[BundleState, str]:
        found = next(r for r in report.status.units if r.cluster == self.name(logical))
        return found.state, found.message

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


@pytest.fixture
def fleet(
    local_fleet: LocalFleet, git_server: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CalendarFleet]:
    sfx = uuid.uuid4().hex[:6]
    creds = tmp_path / "credentials"
    creds.mkdir()
    kubeconfigs = {}
    for logical, bed in BEDS.items():
        target = creds / f"{logical}-{sfx}.kubeconfig"
        shutil.copy(local_fleet.clusters[bed].kubeconfig, target)
        kubeconfigs[f"{logical}-{sfx}"] = target
    monkeypatch.setenv("FLEET_CREDENTIALS_DIR", str(creds))
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "cache"))
    made = CalendarFleet(git_server.create_repo(f"cal-{sfx}", tmp_path / "repo"), sfx, kubeconfigs)
    yield made
    made.close()


def test_a_freeze_holds_its_cluster_until_it_leaves_git(fleet: CalendarFleet) -> None:
    fleet.commit("v1")
    assert fleet.sync().ok
    assert fleet.versions() == ["v1", "v1"]

    b = fleet.name("b")
    fleet.commit("v2", freezes=[{"clusters": [b], "reason": "quarter close"}])
    report = fleet.sync()
    assert not report.ok
    assert fleet.versions() == ["v2", "v1"]  # the others get the new revision
    assert fleet.row(report, "b") == (BundleState.PENDING, "frozen: quarter close")

    until = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fleet.commit("v3", freezes=[{"clusters": [b], "reason": "quarter close", "until": until}])
    report = fleet.sync()
    assert fleet.versions() == ["v3", "v1"]
    assert fleet.row(report, "b") == (
        BundleState.PENDING,
        f"frozen: quarter close (until {until})",
    )

    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fleet.commit("v4", freezes=[{"clusters": [b], "reason": "over", "until": past}])
    report = fleet.sync()  # a freeze past its `until` holds nothing
    assert report.ok, fleet.row(report, "b")
    assert fleet.versions() == ["v4", "v4"]

    fleet.commit("v5", freezes=[{"selector": {"matchLabels": {"site": "b"}}, "reason": "again"}])
    assert fleet.row(fleet.sync(), "b") == (BundleState.PENDING, "frozen: again")
    assert fleet.versions() == ["v5", "v4"]
    fleet.commit("v5")  # the freeze removed from Git: the held revision goes through
    report = fleet.sync()
    assert report.ok, fleet.row(report, "b")
    assert fleet.versions() == ["v5", "v5"]


def cron_at(when: datetime) -> str:
    """A daily cron schedule that fires at `when`'s hour and minute (UTC)."""
    return f"{when.minute} {when.hour} * * *"


def test_a_closed_maintenance_window_holds_its_cluster_and_an_open_one_lets_it_go(
    fleet: CalendarFleet,
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    opened, opens = now - timedelta(minutes=1), now + timedelta(hours=1)
    windows = [
        {"clusters": [fleet.name("a")], "schedule": cron_at(opened), "duration": "1h"},
        {"clusters": [fleet.name("b")], "schedule": cron_at(opens), "duration": "30m"},
    ]
    fleet.commit("v1", windows=windows)
    report = fleet.sync()
    assert not report.ok
    assert fleet.versions() == ["v1", None]  # a's window is open; b's opens in an hour
    assert fleet.row(report, "a")[0] is BundleState.READY
    assert fleet.row(report, "b") == (
        BundleState.PENDING,
        f"outside its maintenance window (next: {opens:%Y-%m-%d %H:%M} UTC)",
    )

    # b's window is open now too (it opened a minute ago): b starts the revision
    windows[1]["schedule"] = cron_at(opened)
    fleet.commit("v1", windows=windows)
    report = fleet.sync()
    assert report.ok, fleet.row(report, "b")
    assert fleet.versions() == ["v1", "v1"]
