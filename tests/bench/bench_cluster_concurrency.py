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
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "testbin"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

import localfleet  # noqa: E402
import manyapps  # noqa: E402

from fleet import config  # noqa: E402
from fleet.runtime.embedded import sync_fleet  # noqa: E402
from tests.support.servers import GitServer  # noqa: E402


def run_round(server: GitServer, tmp: Path, name: str, bundles: int, concurrency: int) -> float:
    work = server.create_repo(name, tmp / name)
    manyapps.write_repo(work.path, name, bundles)
    pushed = time.perf_counter()
    work.commit_and_push("bundles")
    report = sync_fleet(server.url(name), branch="main", cluster_concurrency=concurrency)
    took = time.perf_counter() - pushed
    state = "all Ready" if report.ok else "NOT all Ready"
    print(f"  {name}: cluster concurrency {concurrency}: {took:.1f} s ({report.units} units, "
          f"{state})", flush=True)  # fmt: skip
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)  # the fake node holds 1,000 pods
    args = parser.parse_args()
    default = config.DEFAULT_CLUSTER_CONCURRENCY
    with tempfile.TemporaryDirectory(prefix="fleet-bench-conc-") as tmp_text:
        tmp = Path(tmp_text)
        fleet_dir = tmp / "clusters"
        localfleet.up(fleet_dir, [(manyapps.CLUSTER, manyapps.CLUSTER_LABELS)])
        server = GitServer(tmp / "git" / "repos")
        server.start()
        try:
            os.environ["FLEET_CREDENTIALS_DIR"] = str(fleet_dir)
            os.environ["FLEET_CACHE_DIR"] = str(tmp / "cache")
            one: list[float] = []
            many: list[float] = []
            for index in range(args.rounds):  # alternate which goes first
                order = [(1, one), (default, many)]
                for concurrency, sink in order if index % 2 == 0 else order[::-1]:
                    name = f"c{concurrency}-r{index}"
                    sink.append(run_round(server, tmp, name, args.bundles, concurrency))
            base, new = statistics.median(one), statistics.median(many)
            print(
                f"{args.bundles} bundles on one cluster, commit-to-Ready (median of "
                f"{args.rounds}): one at a time {base:.1f} s, cluster concurrency {default} "
                f"{new:.1f} s, speed-up {base / new:.1f}x"
            )
        finally:
            server.stop()
            localfleet.down(fleet_dir)


if __name__ == "__main__":
    main()
