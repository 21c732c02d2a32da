"""Scale: commit-to-Ready and fleet's peak memory for 1, 5, 10 (12+) clusters x 50 bundles.

As many real local clusters as the machine holds (`tests/testbin/localfleet.py`: etcd,
kube-apiserver, controller-manager, scheduler and kwok each), started once; then a fresh
fleet per cluster count, on the first N of them, each bundle a Deployment, a Service and
a ConfigMap in a namespace of its own. Per count:

- embedded: `fleet sync` in a child process, seconds from the push until it returns with
  every unit Ready, and its peak RSS (ru_maxrss of the child);
- distributed (`--distributed`): `fleet serve` + one `fleet worker` per region (eu, us) on
  a real Redis, seconds from the push (webhook) until /status says converged, and the peak
  RSS (VmHWM) of the scheduler and of each worker's processes.

The clusters' own memory is not fleet's and is not counted (printed once for scale). The
growth per cluster count is printed as a ratio to the first count. Figures, no verdict.

    python tests/bench/bench_scale.py [--clusters 1,5,10] [--bundles 50] [--distributed]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial

import benchlib
import localfleet

from tests.support.servers import RedisServer


@dataclass
class Row:
    mode: str
    clusters: int
    units: int
    seconds: float
    rss: str
    state: str


def embedded(bed: benchlib.Bed, count: int, bundles: int) -> Row:
    name = f"scale-e{count}"
    work = bed.repo(name)
    benchlib.write_web_fleet(work, name, bed.clusters[:count], bundles)
    pushed = time.perf_counter()
    work.commit_and_push("bench")
    log = open(bed.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet", "sync", bed.url(name), "-b", "main"],
        cwd=benchlib.ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - pushed
    log.close()
    state = "all Ready" if os.waitstatus_to_exitcode(status) == 0 else "NOT all Ready"
    rss = f"fleet sync {usage.ru_maxrss / 1024:.0f} MiB"
    return Row("embedded", count, count * bundles, took, rss, state)


def distributed(bed: benchlib.Bed, count: int, bundles: int, redis_url: str) -> Row:
    from tests.e2e.dist_support import distributed as start

    name = f"scale-d{count}"
    clusters = bed.clusters[:count]
    work = bed.repo(name)
    work.write("fleet.yaml", benchlib.fleet_yaml(name, clusters, paths=None))
    first = work.commit_and_push("clusters only")
    with start(work.remote_url, bed.tmp / f"{name}-logs", redis_url, bed.fleet_dir) as dist:
        for region in sorted({labels["region"] for _, labels in clusters}):
            dist.start_worker(region, region)
        serve = dist.start_serve("--poll-interval", "3600")
        dist.wait_converged(first, timeout=120)
        benchlib.write_web_fleet(work, name, clusters, bundles)
        pushed = time.perf_counter()
        sha = work.commit_and_push("bench")
        dist.push_webhook(sha)
        status = dist.wait_converged(sha, timeout=900)
        took = time.perf_counter() - pushed
        assert serve.proc is not None
        peaks = [f"serve {benchlib.vm_hwm_mib(serve.proc.pid):.0f} MiB"]
        for worker, proc in dist.workers.items():
            assert proc.proc is not None
            mine = benchlib.session_peaks_mib(proc.proc.pid)
            peaks.append(f"worker {worker} {max(mine, default=0):.0f} MiB ({len(mine)} proc)")
    units = len(status.get("units", []))
    return Row("distributed", count, units, took, ", ".join(peaks), "all Ready")


def cluster_rss_mib(bed: benchlib.Bed) -> int:
    report = localfleet.status(bed.fleet_dir)
    return sum(int(str(entry["rss_mib"])) for entry in report.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", default="1,5,10", help="cluster counts, comma-separated")
    parser.add_argument("--bundles", type=int, default=50)
    parser.add_argument("--distributed", action="store_true", help="also serve + workers")
    args = parser.parse_args()
    counts = sorted({int(c) for c in args.clusters.split(",")})
    modes = 2 if args.distributed else 1
    nodes = max(1, math.ceil(args.bundles * len(counts) * modes / 100))  # 110 pods a node
    with benchlib.bed("scale", benchlib.cluster_specs(max(counts)), nodes=nodes) as bed:
        print(f"  clusters' own RSS: {cluster_rss_mib(bed)} MiB for {max(counts)} "
              f"(not fleet's; not counted below)", flush=True)  # fmt: skip
        rows: list[Row] = []
        redis = RedisServer(bed.tmp / "redis") if args.distributed else None
        if redis is not None:
            redis.start()
        try:
            for count in counts:
                runs = [partial(embedded, bed, count, args.bundles)]
                if redis is not None:
                    runs.append(partial(distributed, bed, count, args.bundles, redis.url))
                for run in runs:
                    row = run()
                    rows.append(row)
                    print(f"  {row.mode} {row.clusters} clusters: {row.seconds:.1f} s, "
                          f"{row.units} units, {row.state}; peak {row.rss} "
                          f"({benchlib.load()})", flush=True)  # fmt: skip
        finally:
            if redis is not None:
                redis.stop()
        print(f"{args.bundles} bundles per cluster, commit-to-Ready (growth vs {counts[0]}):")
        for mode in ("embedded", "distributed"):
            mine = [r for r in rows if r.mode == mode]
            for r in mine:
                ratio = r.seconds / mine[0].seconds
                print(f"  {mode:<11} {r.clusters:>3} clusters {r.units:>5} units "
                      f"{r.seconds:>7.1f} s  {ratio:5.2f}x  peak {r.rss}")  # fmt: skip


if __name__ == "__main__":
    main()
