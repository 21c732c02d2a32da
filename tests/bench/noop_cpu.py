"""The no-op cost for bench_flux.py: CPU seconds over a window with nothing changing.

Each side deploys the same N bundles into fresh namespaces, settles, then runs for the
window with the same intervals: Flux (defaults) with GitRepository and Kustomization
`interval` = the benchmark's interval (a Git poll and a drift-correcting reconcile of every
Kustomization each interval); fleet as `fleet serve` + one `fleet worker` on Redis with
--poll-interval and --drift-interval = the same interval (a Git poll and a drift check of
every unit each interval, the scheduler's default 2 s tick). CPU is utime + stime of each
process and its reaped children (/proc/<pid>/stat): Flux's two controllers; fleet's serve,
worker and redis-server (its state store). The API server's CPU over the same window is
reported beside each. Optionally also `fleet sync` run every interval (cron-style: a new
interpreter each time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import manyapps
from fluxpeer import FluxApi, Variant, cpu_seconds

from tests.support.servers import RedisServer

if TYPE_CHECKING:
    from bench_flux import Bed

SETTLE = 5.0  # seconds after Ready before the window opens


def window_cpu(
    window: float,
    cpu: Callable[[], float],
    interval: float = 0.0,
    tick: Callable[[], float] | None = None,
) -> float:
    """CPU seconds over `window`: `cpu()` after minus before, plus what `tick()` (run every
    `interval` seconds from the start, if given) reports it used."""
    start = time.monotonic()
    before, spent = cpu(), 0.0
    for index in range(math.ceil(window / interval) if tick is not None else 0):
        time.sleep(max(0.0, start + index * interval - time.monotonic()))
        assert tick is not None
        spent += tick()
    time.sleep(max(0.0, start + window - time.monotonic()))
    return cpu() - before + spent


def flux(
    bed: Bed, api: FluxApi, variant: Variant, bundles: int, window: float, interval: float
) -> tuple[float, float]:
    """(CPU seconds of Flux's controllers, of the API server) over the window."""
    name = f"noop-flux-n{bundles}"
    bed.run_flux(variant)
    work = bed.new_repo(name)
    manyapps.write_repo(work.path, name, bundles)
    sha = work.commit_and_push("bundles")
    paths = [manyapps.bundle_path(i) for i in range(bundles)]
    api.create_round(name, bed.url(name), paths, interval=f"{int(interval)}s")
    api.wait_ready(name, bundles, sha, timeout=600 + 5 * bundles)
    time.sleep(SETTLE)
    controllers = bed.flux
    assert controllers is not None
    pids = [proc.pid for proc in controllers.procs.values()]
    api_before = bed.apiserver_cpu()
    used = window_cpu(window, lambda: sum(cpu_seconds(pid) for pid in pids))
    api_used = bed.apiserver_cpu() - api_before
    api.suspend_round(name, bundles)
    bed.stop_flux()
    return used, api_used


def fleet_serve(bed: Bed, bundles: int, window: float, interval: float) -> tuple[float, float]:
    """(CPU seconds of fleet serve + worker + redis-server, of the API server)."""
    from tests.e2e.dist_support import distributed

    name = f"noop-serve-n{bundles}"
    work = bed.new_repo(name)
    manyapps.write_repo(work.path, name, bundles)
    sha = work.commit_and_push("bundles")
    redis = RedisServer(bed.tmp / "redis")
    redis.start()
    try:
        logs = bed.tmp / "logs" / name
        with distributed(bed.url(name), logs, redis.url, bed.fleet_dir) as dist:
            region = manyapps.CLUSTER_LABELS["region"]
            dist.start_worker(region, region)
            seconds = str(int(interval))
            dist.start_serve("--tick", "2", "--poll-interval", seconds, "--drift-interval", seconds)
            dist.wait_converged(sha, timeout=600 + 5 * bundles)
            time.sleep(SETTLE)
            procs = [dist.serve, *dist.workers.values()]
            pids = [p.proc.pid for p in procs if p is not None and p.proc is not None]
            assert redis.proc is not None
            pids.append(redis.proc.pid)
            api_before = bed.apiserver_cpu()
            used = window_cpu(window, lambda: sum(cpu_seconds(pid) for pid in pids))
            api_used = bed.apiserver_cpu() - api_before
            recent = drift_checked_since(redis.url, time.time() - interval - 10)
            print(f"  (fleet: {recent}/{bundles} units drift-checked in the last interval)")
    finally:
        redis.stop()
    return used, api_used


def drift_checked_since(url: str, since: float) -> int:
    """Units whose last drift check (the scheduler's `drift-checked` hash) is after `since`:
    proof that the window really had fleet's drift passes in it."""
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return sum(
            1
            for key in client.scan_iter("fleet:*drift-checked")
            for at in client.hvals(key)
            if float(at) >= since
        )
    finally:
        client.close()


def fleet_cron(bed: Bed, bundles: int, window: float, interval: float) -> tuple[float, float]:
    """(CPU seconds of `fleet sync` every interval, of the API server)."""
    name = f"noop-sync-n{bundles}"
    work = bed.new_repo(name)
    manyapps.write_repo(work.path, name, bundles)
    work.commit_and_push("bundles")
    code, _ = bed.fleet_sync(name)
    if code != 0:
        raise RuntimeError(f"fleet sync {name} exited {code}")

    def one_sync() -> float:
        code, used = bed.fleet_sync(name)
        if code != 0:
            raise RuntimeError(f"no-op fleet sync {name} exited {code}")
        return used

    time.sleep(SETTLE)
    api_before = bed.apiserver_cpu()
    used = window_cpu(window, lambda: 0.0, interval, one_sync)
    return used, bed.apiserver_cpu() - api_before
