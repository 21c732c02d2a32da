"""Many bundles on one cluster: one at a time vs. concurrently (a script: figures, no verdict).

N bundles of plain manifests (a Deployment, a Service and a ConfigMap, each bundle in its
own namespace) on one local cluster, pushed to a real `git daemon`; seconds from the push
until `fleet sync` returns with every unit Ready, with `--cluster-concurrency 1` (the
baseline: what fleet did before, one unit after another) and with the default, measured in
the same run, alternating, each round into fresh namespaces (another fleet name). Prints
seconds per round, the medians and the speed-up.

    python tests/bench/bench_cluster_concurrency.py [--bundles 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics

import benchlib

from fleet import config


def run_round(bed: benchlib.Bed, name: str, bundles: int, concurrency: int) -> float:
    work = bed.repo(name)
    benchlib.write_web_fleet(work, name, bed.clusters, bundles)
    took, report = benchlib.push_and_sync(work, bed.url(name), cluster_concurrency=concurrency)
    print(f"  {name}: cluster concurrency {concurrency}: {took:.1f} s ({report.units} units, "
          f"{benchlib.ready(report)}, {benchlib.load()})", flush=True)  # fmt: skip
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    default = config.DEFAULT_CLUSTER_CONCURRENCY
    nodes = max(1, -(-2 * args.rounds * args.bundles // 100))
    with benchlib.bed("conc", [("one", {"env": "dev", "region": "eu"})], nodes=nodes) as bed:
        one: list[float] = []
        many: list[float] = []
        for index in range(args.rounds):  # alternate which goes first
            order = [(1, one), (default, many)]
            for concurrency, sink in order if index % 2 == 0 else order[::-1]:
                name = f"c{concurrency}-r{index}"
                sink.append(run_round(bed, name, args.bundles, concurrency))
        base, new = statistics.median(one), statistics.median(many)
        print(
            f"{args.bundles} bundles on one cluster, commit-to-Ready (median of "
            f"{args.rounds}): one at a time {base:.1f} s, cluster concurrency {default} "
            f"{new:.1f} s, speed-up {base / new:.1f}x"
        )


if __name__ == "__main__":
    main()
