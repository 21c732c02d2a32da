"""`fleet.engine.fanout` and the apply tiers of `fleet.engine.sync_pass` (pure logic; the
requests themselves run against real API servers in the e2e engine tests)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from fleet.engine.apply import Desired
from fleet.engine.fanout import fan_out
from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.engine.sync_pass import tiers


def connection() -> ClusterConnection:
    return ClusterConnection("c", api_client=None)


def test_results_come_back_in_call_order_and_counters_are_added_back() -> None:
    conn = connection()
    started: list[float] = []
    lock = threading.Lock()

    def call(delay: float, value: int) -> Any:
        def run(fork: ClusterConnection) -> int:
            assert fork is not conn
            with lock:
                started.append(time.monotonic())
            time.sleep(delay)
            fork.requests += 2
            fork.writes += 1
            return value

        return run

    results = fan_out(conn, [call(0.3, 1), call(0.0, 2), call(0.1, 3)])
    assert results == [1, 2, 3]
    assert (conn.requests, conn.writes) == (6, 3)
    assert max(started) - min(started) < 0.25  # all three started before the first ended


def test_an_exception_is_raised_after_every_call_finished() -> None:
    conn = connection()
    finished: list[str] = []

    def fails(fork: ClusterConnection) -> None:
        raise RuntimeError("boom")

    def slow(fork: ClusterConnection) -> None:
        time.sleep(0.2)
        finished.append("slow")

    with pytest.raises(RuntimeError, match="boom"):
        fan_out(conn, [fails, slow])
    assert finished == ["slow"]


def test_one_call_runs_on_the_connection_itself() -> None:
    conn = connection()
    assert fan_out(conn, [lambda c: c is conn]) == [True]


def desired(kind: str, group: str = "") -> Desired:
    api = f"{group}/v1" if group else "v1"
    return Desired(ObjectRef(api, kind, "ns", kind.lower()), {}, "")


def test_referenced_kinds_go_first_each_tier_in_the_bundles_order() -> None:
    batch = [desired("Deployment", "apps"), desired("ConfigMap"), desired("Widget", "x.io"),
             desired("ServiceAccount"), desired("Service")]  # fmt: skip
    assert [[d.ref.kind for d in tier] for tier in tiers(batch)] == [
        ["ConfigMap", "ServiceAccount", "Service"],
        ["Deployment", "Widget"],
    ]
    assert tiers([desired("Job", "batch")]) == [[desired("Job", "batch")]]
