"""Costs that grow with change, not size: a pass with nothing to do at 100, 500, 1,000 units.

1. Embedded: `sync_fleet` again on an unchanged commit (`fleet sync` run twice), on real
   local clusters; a unit is one ConfigMap bundle on one cluster (1,000 units = 2 clusters x
   500 bundles by default: `--clusters`). The fleet grows in place from one count to the
   next (each new commit synced first, not timed). Per count: seconds and API requests of
   the no-op pass (median of `--passes`), its writes (0 when nothing changed), and the
   ratio to the first count. Then one bundle of the largest fleet changes: the same
   figures for that pass.
2. Distributed: one `Scheduler.tick` of `fleet serve` with nothing to do, against a real
   Redis, a real `git daemon` and the real Celery dispatcher on that Redis (no worker: the
   workers' side is played by writing to the state cache what their results and
   inventory reads write: every unit Ready at its desired id, every cluster read, every
   drift check recent). 10 clusters x 10/50/100 bundles; seconds and Redis commands per
   tick (median of `--passes`), tasks sent (0); then one bundle changes (the tick that
   polls, loads the commit and dispatches its units).

Figures and ratios only, never a verdict.

    python tests/bench/bench_noop.py [--units 100,500,1000] [--clusters 2] [--passes 3]
                                     [--skip-embedded] [--skip-distributed]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import benchlib
import redis

from fleet.plugin.manager import FleetPlugins
from fleet.runtime.embedded import SyncReport
from fleet.runtime.scheduler import Scheduler, SchedulerConfig
from fleet.runtime.state_cache import CachedUnit, StateCache, connect_redis
from fleet.runtime.tasks import CeleryDispatcher, TaskArgs
from fleet.source.git import GitSource
from fleet.states import BundleState
from tests.support.servers import GitWorkTree, RedisServer


@dataclass
class Point:
    label: str
    units: int
    seconds: float
    requests: int
    writes: int  # API writes (embedded) or tasks sent (distributed)


def write_configmaps(work: GitWorkTree, bundles: int, changed: int | None = None) -> None:
    for index in range(bundles):
        value = "two" if index == changed else "one"
        work.write(f"apps/cm{index}/cm.yaml", benchlib.configmap_bundle(f"cm{index}", value))


def print_curve(title: str, points: list[Point], what: str, writes: str) -> None:
    print(title)
    base = points[0]
    for p in points:
        ratio = p.seconds / base.seconds if base.seconds else 0.0
        print(f"  {p.label:<22} {p.units:>5} units  {p.seconds * 1000:>8.0f} ms  "
              f"({ratio:5.2f}x)  {p.requests:>6} {what} ({p.requests / base.requests:5.2f}x)  "
              f"{p.writes} {writes}")  # fmt: skip


# ---------------------------------------------------------------- embedded


def embedded(counts: list[int], clusters: int, passes: int) -> None:
    specs = benchlib.cluster_specs(clusters, prefix="noop")
    with benchlib.bed("noop", specs) as bed:
        work = bed.repo("noop")
        work.write("fleet.yaml", benchlib.fleet_yaml("noop", specs))
        url = bed.url("noop")
        points: list[Point] = []
        bundles = 0
        for units in counts:
            bundles = max(1, units // clusters)
            write_configmaps(work, bundles)
            took, first = benchlib.push_and_sync(work, url)
            print(f"  {bundles * clusters} units synced in {took:.1f} s ({benchlib.ready(first)}, "
                  f"{benchlib.load()})", flush=True)  # fmt: skip
            runs = [benchlib.timed_sync(url) for _ in range(passes)]
            points.append(_point("no-op pass", runs))
        write_configmaps(work, bundles, changed=0)
        took, changed = benchlib.push_and_sync(work, url)
        points.append(Point("1 bundle changed", changed.units, changed.seconds, changed.requests,
                            changed.writes))  # fmt: skip
        print_curve(
            f"embedded, {clusters} clusters x ConfigMap bundles ({benchlib.load()}):",
            points, "API requests", "writes",
        )  # fmt: skip


def _point(label: str, runs: list[tuple[float, SyncReport]]) -> Point:
    seconds = statistics.median(s for s, _ in runs)
    report = runs[-1][1]
    return Point(label, report.units, seconds, report.requests, report.writes)


# ---------------------------------------------------------------- distributed


class CountingDispatcher(CeleryDispatcher):
    """The real dispatcher (tasks published on the Redis broker), counting what it sends."""

    sent = 0

    def send(self, task: str, kwargs: TaskArgs, queue: str) -> str:
        self.sent += 1
        return super().send(task, kwargs, queue)


def commands(client: redis.Redis[str]) -> int:
    """Commands Redis has processed so far (the INFO call itself counts one)."""
    return int(client.info("stats")["total_commands_processed"])


def play_workers(scheduler: Scheduler, cache: StateCache) -> None:
    """What the workers would have written: every cluster read, every unit Ready at its
    desired id and drift-checked now, the claims of what was sent released."""
    desired, revision = scheduler.desired, scheduler.revision
    assert desired is not None and revision is not None
    for cluster in desired.clusters:
        cache.replace_cluster(cluster, {})
        cache.release("refresh", "*", cluster, "")
    for unit in desired.units:
        ready = CachedUnit(unit.deployment_id, BundleState.READY, revision.sha, by="bench")
        cache.record(unit.bundle, unit.cluster, ready)
        cache.release("apply", unit.bundle, unit.cluster, unit.deployment_id)
        cache.mark_drift_checked(unit.bundle, unit.cluster)


def timed_tick(scheduler: Scheduler, client: redis.Redis[str], sent: Callable[[], int]) -> Point:
    before_cmds, before_sent = commands(client), sent()
    started = time.perf_counter()
    scheduler.tick()
    seconds = time.perf_counter() - started
    cmds = commands(client) - before_cmds - 1
    units = len(scheduler.desired.units) if scheduler.desired else 0
    return Point("", units, seconds, cmds, sent() - before_sent)


def distributed(counts: list[int], passes: int) -> None:
    clusters = benchlib.cluster_specs(10, prefix="d")
    with benchlib.bed("noop-dist", []) as bed:
        server = RedisServer(bed.tmp / "redis")
        server.start()
        client = connect_redis(server.url)
        dispatcher = CountingDispatcher(server.url)
        try:
            points: list[Point] = []
            for units in counts:
                bundles = max(1, units // len(clusters))
                name = f"tick{units}"
                work = bed.repo(name)
                work.write("fleet.yaml", benchlib.fleet_yaml(name, clusters))
                write_configmaps(work, bundles)
                work.commit_and_push("bench")
                config = SchedulerConfig(poll_interval=3600)
                scheduler = Scheduler(GitSource(bed.url(name), "main"), client, dispatcher,
                                      plugins=FleetPlugins.load(), config=config)  # fmt: skip
                scheduler.tick()  # loads the commit, asks for the clusters' inventories
                play_workers(scheduler, StateCache(client, name))
                scheduler.tick()  # plans the cache as the workers left it
                ticks = [timed_tick(scheduler, client, lambda: dispatcher.sent)
                         for _ in range(passes)]  # fmt: skip
                mid = statistics.median(t.seconds for t in ticks)
                last = ticks[-1]
                points.append(Point("no-op tick", last.units, mid, last.requests,
                                    sum(t.writes for t in ticks)))  # fmt: skip
            write_configmaps(work, bundles, changed=0)
            work.commit_and_push("one bundle changes")
            scheduler.poller.next_poll_at = 0.0  # what a push webhook does
            changed = timed_tick(scheduler, client, lambda: dispatcher.sent)
            changed.label = "1 bundle changed"
            points.append(changed)
            print_curve(
                f"distributed scheduler tick, 10 clusters x ConfigMap bundles "
                f"({benchlib.load()}):",
                points, "Redis commands", "tasks sent",
            )  # fmt: skip
        finally:
            dispatcher.close()
            client.close()
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", default="100,500,1000", help="unit counts, comma-separated")
    parser.add_argument("--clusters", type=int, default=2, help="real clusters (embedded)")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--skip-distributed", action="store_true")
    args = parser.parse_args()
    counts = sorted({int(u) for u in args.units.split(",")})
    if not args.skip_embedded:
        embedded(counts, args.clusters, args.passes)
    if not args.skip_distributed:
        distributed(counts, args.passes)


if __name__ == "__main__":
    main()
