"""fleet.runtime.cluster_pool: the bounds on what runs at once, with real threads."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from fleet.runtime.cluster_pool import ClusterPool, Job, run_all


class Meter:
    """Jobs that stay running a moment and record the most that ever ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.most_on: Counter[str] = Counter()
        self.most_clusters = 0
        self.order: list[str] = []

    def job(self, cluster: str, name: str) -> tuple[str, Job]:
        def run() -> None:
            with self.lock:
                self.now[cluster] += 1
                self.most_on[cluster] = max(self.most_on[cluster], self.now[cluster])
                active = sum(1 for n in self.now.values() if n)
                self.most_clusters = max(self.most_clusters, active)
            time.sleep(0.2)  # long enough for every admitted job to overlap
            with self.lock:
                self.now[cluster] -= 1
                self.order.append(name)

        return cluster, run


def test_run_all_keeps_both_bounds_and_runs_everything() -> None:
    meter = Meter()
    names = [f"{c}{i}" for c in "abc" for i in range(5)]
    run_all([meter.job(name[0], name) for name in names], clusters=2, per_cluster=3)
    assert sorted(meter.order) == names
    assert max(meter.most_on.values()) == 3  # reached, never passed
    assert meter.most_clusters == 2


def test_a_busy_cluster_takes_more_work_before_another_starts() -> None:
    with ClusterPool(clusters=1, per_cluster=2) as pool:
        release = threading.Event()

        def hold() -> None:
            release.wait(10)

        assert pool.start("a", hold)
        assert not pool.start("b", hold)  # one cluster at once
        assert pool.start("a", hold)
        assert not pool.start("a", hold)  # a's slots are full
        release.set()
        while pool.running:
            pool.wait_one()
        assert pool.start("b", lambda: None)


def test_wait_one_raises_what_a_job_raised() -> None:
    def broken() -> None:
        raise RuntimeError("a bug")

    with ClusterPool(clusters=1, per_cluster=1) as pool:
        assert pool.start("a", broken)
        with pytest.raises(RuntimeError, match="a bug"):
            pool.wait_one()
        assert not pool.running and pool.admit("a")


def test_wait_one_lingers_to_collect_jobs_that_finish_soon_after() -> None:
    """The first job ends at once, the second 0.5 s later: without linger one wait frees
    one slot, lingering 3 s frees both (and returns as soon as both ended)."""
    import time

    for linger, freed in ((0.0, 1), (3.0, 2)):
        with ClusterPool(1, 2) as pool:
            pool.start("a", lambda: None)
            pool.start("a", lambda: time.sleep(0.5))
            started = time.monotonic()
            pool.wait_one(linger)
            assert 2 - len(pool.running) == freed
            assert time.monotonic() - started < 2.5
            pool.wait_one()
