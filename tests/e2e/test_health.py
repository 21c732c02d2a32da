"""Health wait on a real cluster: kwok makes pods Running, an impossible pod stays Pending."""

from __future__ import annotations

import time

from fleet.engine.unit import sync_unit
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.engine_support import configmap, connect, deployment, options, unique


def test_deployment_becomes_ready(local_fleet: LocalFleet) -> None:
    conn = connect(local_fleet, "prod-us")
    bundle, ns = unique("health"), unique("ns")
    manifests = [deployment("web", ns, replicas=2), configmap("cfg", ns)]
    result = sync_unit(conn, bundle, "1" * 64, "c1", manifests, options(waitTimeoutSeconds=120))
    assert result.state is BundleState.READY, result.message
    again = sync_unit(conn, bundle, "1" * 64, "c1", manifests, options(waitTimeoutSeconds=120))
    assert again.state is BundleState.READY and again.writes == 0


def test_impossible_deployment_times_out_not_ready(local_fleet: LocalFleet) -> None:
    conn = connect(local_fleet, "prod-us")
    bundle, ns = unique("stuck"), unique("ns")
    stuck = deployment("stuck", ns, node_selector={"no-such-label": "anywhere"})
    start = time.monotonic()
    result = sync_unit(conn, bundle, "2" * 64, "c1", [stuck], options(waitTimeoutSeconds=4))
    took = time.monotonic() - start
    assert result.state is BundleState.NOT_READY
    assert f"Deployment {ns}/stuck" in result.message
    assert "0/1 replicas available" in result.message or "updated" in result.message
    assert 4 <= took < 30


def test_no_wait_reports_the_current_state(local_fleet: LocalFleet) -> None:
    conn = connect(local_fleet, "prod-us")
    bundle, ns = unique("nowait"), unique("ns")
    result = sync_unit(conn, bundle, "3" * 64, "c1", [deployment("web", ns)], options(), wait=False)
    assert result.state in (BundleState.NOT_READY, BundleState.READY)
    assert result.seconds < 10
