"""Remote-cluster latency: commit-to-Ready with the API servers 0, 25 and 50 ms away.

Real clusters are tens of milliseconds away and every round trip a sync makes in sequence
costs that much; the per-cluster work must overlap them so the growth stays small. Each
local cluster gets a TCP proxy in front (`tests.support.latency_proxy`: a fixed delay each
way, TLS passed through) and `fleet sync` reaches it through kubeconfigs that point at the
proxy; the 0 ms round goes through the proxy too, so the growth is the latency's alone.

N web bundles (a Deployment, a Service and a ConfigMap each, in a namespace of their own)
on 1-3 clusters, a fresh fleet per latency. Printed per latency: commit-to-Ready, the
growth vs. 0 ms, API requests per unit and per pass (the engine's counters), TCP
connections opened (the proxy's), and the round trips in sequence the growth amounts to:
(t(L) - t(0)) / 2L for the pass and for the mean unit. Figures, never a verdict.

    python tests/bench/bench_latency.py [--bundles 40] [--clusters 1] [--latencies 0,25,50]
                                        [--cluster-concurrency N]
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

import benchlib

from fleet import config
from tests.support.latency_proxy import LatencyProxy, Route


@dataclass
class Round:
    ms: int
    seconds: float
    unit_seconds: float
    units: int
    requests: int
    unit_requests: float
    connections: int
    state: str


def run_round(
    bed: benchlib.Bed,
    proxy: LatencyProxy,
    ms: int,
    ports: list[int],
    bundles: int,
    concurrency: int,
) -> Round:
    names = [name for name, _ in bed.clusters]
    creds = benchlib.retarget_kubeconfigs(
        bed.fleet_dir,
        bed.tmp / f"creds-{ms}ms",
        {name: f"https://127.0.0.1:{port}" for name, port in zip(names, ports, strict=True)},
    )
    os.environ["FLEET_CREDENTIALS_DIR"] = str(creds)
    fleet = f"lat{ms}"
    work = bed.repo(fleet)
    benchlib.write_web_fleet(work, fleet, bed.clusters, bundles)
    before = sum(proxy.counters()[i].connections for i in _indexes(proxy, ports))
    took, report = benchlib.push_and_sync(work, bed.url(fleet), cluster_concurrency=concurrency)
    after = sum(proxy.counters()[i].connections for i in _indexes(proxy, ports))
    results = list(report.results.values())
    unit_seconds = sum(r.seconds for r in results) / len(results) if results else 0.0
    row = Round(ms, took, unit_seconds, report.units, report.requests,
                benchlib.unit_requests(report), after - before, benchlib.ready(report))  # fmt: skip
    print(f"  {ms:>3} ms each way: {took:.1f} s commit-to-Ready, {row.units} units, "
          f"{row.state}, {row.requests} requests, {row.connections} connections "
          f"({benchlib.load()})", flush=True)  # fmt: skip
    return row


def _indexes(proxy: LatencyProxy, ports: list[int]) -> list[int]:
    return [proxy.ports.index(port) for port in ports]


def summary(rounds: list[Round], bundles: int, clusters: int, concurrency: int) -> None:
    base = rounds[0]
    print(f"{bundles} bundles x {clusters} clusters, cluster concurrency {concurrency}:")
    print("  latency  commit-to-Ready  growth vs 0 ms   unit mean  requests/unit  "
          "requests/pass  connections  sequential RTTs (pass / unit)")  # fmt: skip
    for r in rounds:
        rtt = 2 * r.ms / 1000
        grow = r.seconds - base.seconds
        unit_grow = r.unit_seconds - base.unit_seconds
        seq = f"{grow / rtt:5.1f} / {unit_grow / rtt:5.1f}" if rtt else "-"
        ratio = r.seconds / base.seconds
        print(f"  {r.ms:>4} ms  {r.seconds:>13.1f} s  {grow:+6.1f} s ({ratio:.2f}x)"
              f"  {r.unit_seconds:>7.2f} s  {r.unit_requests:>13.1f}  {r.requests:>13}"
              f"  {r.connections:>11}  {seq}")  # fmt: skip


def trace_one_unit(bed: benchlib.Bed, ms: int, ports: list[int]) -> None:
    """One bundle alone at `ms`: each request of the pass, when it started (ms after the
    first) and how long it took, so the chain of sequential round trips is visible."""
    names = [name for name, _ in bed.clusters][:1]
    creds = benchlib.retarget_kubeconfigs(
        bed.fleet_dir, bed.tmp / "creds-trace", {names[0]: f"https://127.0.0.1:{ports[0]}"}
    )
    os.environ["FLEET_CREDENTIALS_DIR"] = str(creds)
    work = bed.repo("trace")
    benchlib.write_web_fleet(work, "trace", bed.clusters[:1], 1)
    with benchlib.trace_requests() as seen:
        took, report = benchlib.push_and_sync(work, bed.url("trace"))
    print(f"one unit alone at {ms} ms each way: {took:.1f} s, {len(seen)} requests "
          f"({benchlib.ready(report)}); start +ms, took ms, request:")  # fmt: skip
    first = min((r.started for r in seen), default=0.0)
    for r in sorted(seen, key=lambda r: r.started):
        path = r.path if len(r.path) <= 90 else r.path[:87] + "..."
        print(f"  +{(r.started - first) * 1000:6.0f} {r.seconds * 1000:5.0f}  {r.method:<6} {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=40)
    parser.add_argument("--clusters", type=int, default=1)
    parser.add_argument("--latencies", default="0,25,50", help="ms each way, comma-separated")
    parser.add_argument(
        "--cluster-concurrency", type=int, default=config.DEFAULT_CLUSTER_CONCURRENCY,
        help="units applied at once on one cluster (fleet sync --cluster-concurrency)",
    )  # fmt: skip
    parser.add_argument(
        "--trace", action="store_true",
        help="also print every request of one unit alone at the highest latency",
    )  # fmt: skip
    args = parser.parse_args()
    latencies = sorted({int(ms) for ms in args.latencies.split(",")} | {0})
    nodes = max(1, math.ceil(args.bundles * len(latencies) / 100))  # 110 pods a node
    clusters = benchlib.cluster_specs(args.clusters, prefix="lat")
    with benchlib.bed("latency", clusters, nodes=nodes) as bed:
        upstream = [benchlib.server_port(bed.fleet_dir, name) for name, _ in clusters]
        routes = [Route(ms / 1000, "127.0.0.1", port) for ms in latencies for port in upstream]
        proxy = LatencyProxy(routes, bed.tmp)
        ports = proxy.start()
        try:
            rounds = []
            for index, ms in enumerate(latencies):
                mine = ports[index * len(upstream) : (index + 1) * len(upstream)]
                row = run_round(bed, proxy, ms, mine, args.bundles, args.cluster_concurrency)
                rounds.append(row)
            summary(rounds, args.bundles, args.clusters, args.cluster_concurrency)
            if args.trace:
                last = len(latencies) - 1
                trace_one_unit(bed, latencies[last], ports[last * len(upstream) :])
        finally:
            proxy.stop()


if __name__ == "__main__":
    main()
