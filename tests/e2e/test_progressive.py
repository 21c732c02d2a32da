"""Progressive delivery in `fleet sync`, on five real clusters and a real Prometheus.

The waves: canary, then eu (two clusters, maxUnavailable 1), then us (two, maxUnavailable
1). The canary's gate is an error-rate query against the test bed's Prometheus, which
scrapes an exporter whose error share per cluster the test sets. Each test has its own
fleet (cluster names with a suffix), so the error rates of two tests never mix.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.cli import main
from fleet.engine.kube import ObjectRef
from fleet.runtime.embedded import sync_fleet
from tests.e2e.progressive_support import (
    ProgressiveFleet,
    five_clusters,  # noqa: F401  (fixture)
    new_progressive,
    prometheus_gate,
    wait_error_rate,
)
from tests.support.exporter import Exporter
from tests.support.prometheus import PrometheusServer
from tests.support.servers import GitServer


@pytest.fixture
def fleet(
    git_server: GitServer,
    five_clusters: dict[str, Path],  # noqa: F811
    exporter: Exporter,
    prometheus: PrometheusServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ProgressiveFleet]:
    monkeypatch.setenv("FLEET_MAX_WAIT_SECONDS", "8")  # a pod that never schedules: 8 s
    made = new_progressive(git_server, five_clusters, exporter, prometheus, tmp_path, monkeypatch)
    yield made
    made.close()


def waves(prometheus: PrometheusServer, fleet: ProgressiveFleet, **canary: Any) -> dict[str, Any]:
    return {
        "autoRollback": True,
        "waves": [
            {"name": "canary", "clusters": [fleet.name("canary")],
             "gates": [prometheus_gate(prometheus)], **canary},
            {"name": "eu", "selector": {"matchLabels": {"region": "eu"}}, "maxUnavailable": 1},
            {"name": "us", "selector": {"matchLabels": {"region": "us"}}, "maxUnavailable": 1},
        ],
    }  # fmt: skip


def sync(fleet: ProgressiveFleet) -> tuple[Any, list[tuple[float, str]]]:
    lines: list[tuple[float, str]] = []
    report = sync_fleet(
        fleet.tree.remote_url, progress=lambda s: lines.append((time.monotonic(), s))
    )
    return report, lines


def spans(lines: list[tuple[float, str]]) -> dict[str, tuple[float, float]]:
    """cluster -> (start, end) of its apps-web sync, from the progress lines."""
    found: dict[str, list[float]] = {}
    for at, line in lines:
        head, _, rest = line.partition(": ")
        cluster, _, bundle = head.partition("/")
        if bundle != "apps-web":
            continue
        if rest.startswith("syncing"):
            found[cluster] = [at, at]
        elif cluster in found and "writes" in rest:
            found[cluster][1] = at
    return {c: (s, e) for c, (s, e) in found.items()}


def forget_rollouts(fleet: ProgressiveFleet) -> None:
    """Delete the rollout records (`fleet-system/<fleet>.rollout`) from every cluster."""
    for cluster in fleet.names:
        ref = ObjectRef("v1", "ConfigMap", "fleet-system", f"prog-{fleet.sfx}.rollout")
        fleet.conn(cluster).delete(ref)
        assert fleet.conn(cluster).get(ref) is None


def prometheus_env(prometheus: PrometheusServer) -> dict[str, Any]:
    return {"metricProviders": [{"name": "prom", "address": prometheus.url}]}


def test_a_good_commit_walks_the_waves_in_order(
    fleet: ProgressiveFleet, prometheus: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.write_definition(waves(prometheus, fleet), **prometheus_env(prometheus))
    fleet.app("v1")
    fleet.commit("v1")
    report, _ = sync(fleet)
    assert report.ok, [(u.cluster, u.state, u.message) for u in report.status.units]

    fleet.app("v2")
    fleet.commit("v2")
    report, lines = sync(fleet)
    assert report.ok, [(u.cluster, u.state, u.message) for u in report.status.units]
    assert all(fleet.version(c) == "v2" for c in fleet.names)
    found = spans(lines)
    canary, eu, us = fleet.name("canary"), [fleet.names[1], fleet.names[2]], fleet.names[3:]
    # in order: every eu sync starts after the canary's passed its gate, us after eu
    assert all(found[c][0] >= found[canary][1] for c in eu), found
    assert all(found[u][0] >= max(found[c][1] for c in eu) for u in us), found
    # maxUnavailable 1: the two clusters of a wave never updated at the same time
    for a, b in (eu, us):
        assert found[a][1] <= found[b][0] or found[b][1] <= found[a][0], found
    assert any("wave.passed wave canary" in line for _, line in lines), lines

    code = main(["rollout", "status", "apps-web", "--repo", fleet.tree.remote_url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "succeeded" in out and "gate error-rate (prometheus): passed" in out, out
    # what CI waits on: decided, and succeeded
    code = main(
        ["rollout", "wait", "apps-web", "--timeout", "10s", "--repo", fleet.tree.remote_url]
    )
    assert code == 0, capsys.readouterr()


def test_a_bad_error_rate_on_the_canary_stops_there_and_is_rolled_back(
    fleet: ProgressiveFleet, prometheus: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.write_definition(waves(prometheus, fleet), **prometheus_env(prometheus))
    fleet.app("v1")
    fleet.commit("v1")
    assert sync(fleet)[0].ok
    canary = fleet.name("canary")
    before = {c: (fleet.live(c, "ConfigMap", "web-config"), fleet.live(c, "Deployment", "web"))
              for c in fleet.names}  # fmt: skip

    fleet.exporter.set(canary, error_rate=0.2)
    wait_error_rate(prometheus, canary, 0.19, 0.21)
    fleet.app("v2")
    fleet.commit("v2: breaks the canary's error rate")
    report, lines = sync(fleet)

    assert not report.ok
    # the canary got v2, its gate failed, and it runs v1 again: the same manifests as before
    assert any(c == canary for c in spans(lines)), lines
    assert fleet.version(canary) == "v1"
    cm, deploy = (
        fleet.live(canary, "ConfigMap", "web-config"),
        fleet.live(canary, "Deployment", "web"),
    )
    assert cm is not None and deploy is not None
    assert cm["data"] == before[canary][0]["data"]  # type: ignore[index]
    assert deploy["spec"]["template"] == before[canary][1]["spec"]["template"]  # type: ignore[index]
    # the other waves never saw v2
    assert set(spans(lines)) == {canary}, spans(lines)
    assert all(fleet.version(c) == "v1" for c in fleet.names)
    assert any("rollout.rolledBack" in line for _, line in lines), lines

    code = main(["rollout", "status", "apps-web", "--repo", fleet.tree.remote_url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "rolledBack" in out and "gate error-rate (prometheus): failed" in out, out
    assert f"error-rate: 0.2 on {canary} (max 0.05)" in out, out
    assert f"rolled back on: {canary}" in out, out
    code = main(
        ["rollout", "wait", "apps-web", "--timeout", "10s", "--repo", fleet.tree.remote_url]
    )
    assert code == 1, capsys.readouterr()

    # not retried while the commit stays: the next sync dispatches nothing
    again, lines = sync(fleet)
    assert not spans(lines), lines
    held = [u.message for u in again.status.units if u.cluster == canary]
    assert held and "was rolled back" in held[0], held

    # nor when the records are lost, with the canary's metrics good again: the clusters'
    # revision history says v2 was rolled back
    fleet.exporter.set(canary, error_rate=0.0)
    wait_error_rate(prometheus, canary, 0.0, 0.001)
    forget_rollouts(fleet)
    again, lines = sync(fleet)
    assert not spans(lines), lines
    assert all("was rolled back (wave canary: gate error-rate: 0.2 on" in u.message
               for u in again.status.units), again.status.units  # fmt: skip
    assert all(fleet.version(c) == "v1" for c in fleet.names)

    # a new commit that fixes it goes through
    fleet.app("v3")
    fleet.commit("v3: fixed")
    fixed, _ = sync(fleet)
    assert fixed.ok, [(u.cluster, u.state, u.message) for u in fixed.status.units]
    assert all(fleet.version(c) == "v3" for c in fleet.names)


def test_a_deployment_that_never_becomes_ready_is_rolled_back_by_health_alone(
    fleet: ProgressiveFleet, prometheus: PrometheusServer
) -> None:
    rollout = waves(prometheus, fleet)
    rollout["waves"][0]["gates"] = []  # health only
    fleet.write_definition(rollout)
    fleet.app("v1")
    fleet.commit("v1")
    assert sync(fleet)[0].ok
    fleet.app("v2", ready=False)
    fleet.commit("v2: pods that never schedule")
    report, lines = sync(fleet)
    assert not report.ok
    canary = fleet.name("canary")
    assert fleet.version(canary) == "v1"
    assert set(spans(lines)) == {canary}, spans(lines)
    assert any("rollout.rolledBack" in line and "NotReady" in line for _, line in lines), lines


def test_manual_approval_holds_the_next_wave_until_approved(
    fleet: ProgressiveFleet, prometheus: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rollout = waves(prometheus, fleet)
    rollout["waves"][0]["gates"] = [{"type": "approval"}]
    fleet.write_definition(rollout)
    fleet.app("v1")
    fleet.commit("v1")
    report, lines = sync(fleet)
    assert not report.ok  # waits for a person: the run ends, nothing failed
    assert set(spans(lines)) == {fleet.name("canary")}
    waiting = {
        u.cluster: u.message for u in report.status.units if u.cluster != fleet.name("canary")
    }
    assert all("approve" in why for why in waiting.values()), waiting

    code = main(
        ["rollout", "approve", "apps-web", "--wave", "canary", "--repo", fleet.tree.remote_url]
    )
    assert code == 0, capsys.readouterr()
    report, lines = sync(fleet)
    assert report.ok, [(u.cluster, u.state, u.message) for u in report.status.units]
    assert set(spans(lines)) == set(fleet.names[1:])


def test_pause_holds_and_resume_lets_it_go(
    fleet: ProgressiveFleet, prometheus: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rollout = waves(prometheus, fleet)
    rollout["waves"][0]["gates"] = []
    fleet.write_definition(rollout)
    fleet.app("v1")
    fleet.commit("v1")
    assert sync(fleet)[0].ok
    url = fleet.tree.remote_url
    assert main(["rollout", "pause", "apps-web", "--reason", "incident 7", "--repo", url]) == 0
    fleet.app("v2")
    fleet.commit("v2")
    report, lines = sync(fleet)
    assert not spans(lines) and not report.ok
    assert all("incident 7" in u.message for u in report.status.units)
    assert main(["rollout", "resume", "apps-web", "--repo", url]) == 0
    report, _ = sync(fleet)
    assert report.ok
    assert all(fleet.version(c) == "v2" for c in fleet.names)

    # abort: the revision stops where it is (no rollback), until a commit changes the bundle
    rollout["waves"][0]["gates"] = [{"type": "approval"}]
    fleet.write_definition(rollout)
    fleet.app("v3")
    fleet.commit("v3 waits for an approval on the canary")
    sync(fleet)
    assert fleet.version(fleet.name("canary")) == "v3"
    assert main(["rollout", "abort", "apps-web", "--repo", url]) == 0
    assert main(["rollout", "approve", "apps-web", "--wave", "canary", "--repo", url]) == 0
    report, lines = sync(fleet)
    assert not spans(lines), lines  # aborted: approving does not let it go on
    assert all(fleet.version(c) == "v2" for c in fleet.names[1:])
    assert fleet.version(fleet.name("canary")) == "v3"  # nothing rolled back
    assert any("aborted" in u.message for u in report.status.units), report.status.units
    capsys.readouterr()


def test_rollback_by_hand_puts_the_previous_revision_back_everywhere_and_holds(
    fleet: ProgressiveFleet, prometheus: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rollout = waves(prometheus, fleet)
    rollout["waves"][0]["gates"] = []
    fleet.write_definition(rollout)
    shas = {}
    for version in ("v1", "v2"):
        fleet.app(version)
        shas[version] = fleet.commit(version)
        assert sync(fleet)[0].ok
    url = fleet.tree.remote_url
    code = main(["rollout", "rollback", "apps-web", "--reason", "bad config", "--repo", url])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert all(fleet.version(c) == "v1" for c in fleet.names)
    assert captured.out.count("rolled back to") == 5, captured.out
    report, lines = sync(fleet)
    assert not spans(lines), lines  # v2 is held, not rolled out again
    assert all("bad config" in u.message for u in report.status.units), report.status.units
    forget_rollouts(fleet)  # the control saying so is gone: the history still says it
    report, lines = sync(fleet)
    assert not spans(lines), lines
    assert all("rolled back (fleet rollout rollback: bad config" in u.message
               for u in report.status.units), report.status.units  # fmt: skip
    fleet.app("v3")
    fleet.commit("v3")
    assert sync(fleet)[0].ok
    assert all(fleet.version(c) == "v3" for c in fleet.names)
    # --to a commit: back to v1's on one cluster only (skipping v2)
    us2 = fleet.names[4]
    code = main(["rollout", "rollback", "apps-web", "--to", shas["v1"][:12], "-c", us2,
                 "--repo", url])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert fleet.version(us2) == "v1" and fleet.version(fleet.names[3]) == "v3"
