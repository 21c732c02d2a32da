"""Embedded sync with one cluster's API server down: the others converge, that one is
reported unreachable, and it converges once it is back. Uses its own two-cluster fleet so
the shared session clusters are never stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import localfleet
import pytest

from fleet.runtime.embedded import sync_fleet
from fleet.states import BundleState
from tests.support.servers import GitServer

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: outage
clusters:
  - name: up-a
    labels: {region: a}
  - name: down-b
    labels: {region: b}
bundles:
  paths: [bundles/*]
"""


@pytest.fixture(scope="module")
def outage_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    fleet_dir = tmp_path_factory.mktemp("outage-fleet")
    try:
        localfleet.up(fleet_dir, [("up-a", {"region": "a"}), ("down-b", {"region": "b"})])
    except localfleet.LocalFleetError as err:
        pytest.fail(f"outage fleet did not start: {err}", pytrace=False)
    try:
        yield fleet_dir
    finally:
        localfleet.down(fleet_dir)


def test_unreachable_cluster_is_reported_and_converges_when_back(
    outage_fleet: Path,
    git_server: GitServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEET_CREDENTIALS_DIR", str(outage_fleet))
    work = git_server.create_repo("outage", tmp_path / "work")
    work.write("fleet.yaml", DEFINITION)
    work.write(
        "bundles/settings/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
        "  namespace: default\ndata:\n  level: info\n",
    )
    work.commit_and_push("one bundle on two clusters")

    localfleet.stop_component(outage_fleet, "down-b", "kube-apiserver")
    report = sync_fleet(git_server.url("outage"), branch="main", retries=2, backoff=0.2)
    assert not report.ok
    assert "down-b" in report.unreachable
    rows = {(row.cluster, row.bundle): row for row in report.status.units}
    assert rows[("up-a", "bundles-settings")].state is BundleState.READY
    assert rows[("down-b", "bundles-settings")].state is BundleState.ERR_APPLIED
    assert "unreachable" in rows[("down-b", "bundles-settings")].message

    localfleet.start_component(outage_fleet, "down-b", "kube-apiserver")
    again = sync_fleet(git_server.url("outage"), branch="main", retries=3, backoff=0.5)
    assert again.ok, again.status.units
    assert not again.unreachable
    states = {(row.cluster, row.bundle): row.state for row in again.status.units}
    assert states == {
        ("up-a", "bundles-settings"): BundleState.READY,
        ("down-b", "bundles-settings"): BundleState.READY,
    }
