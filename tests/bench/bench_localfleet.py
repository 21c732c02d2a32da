"""Local fleet benchmark: start N real clusters at once, print start-up seconds and memory.

A script, not a test. Run:  python tests/bench/bench_localfleet.py [--clusters 5]
Memory is read from /proc after start-up: RSS counts the binaries' shared pages once per
process, PSS splits them among the processes that share them (closer to the real cost).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "testbin"))

import localfleet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        fleet_dir = Path(tmp)
        clusters = [(f"bench-{i}", {"index": str(i)}) for i in range(args.clusters)]
        started = time.monotonic()
        try:
            localfleet.up(fleet_dir, clusters)
            elapsed = time.monotonic() - started
            time.sleep(5)  # let the controllers settle before reading memory
            report = localfleet.status(fleet_dir)
        finally:
            localfleet.down(fleet_dir)
    rss = [int(str(entry["rss_mib"])) for entry in report.values()]
    pss = [int(str(entry["pss_mib"])) for entry in report.values()]
    print(f"clusters:            {args.clusters}")
    print(f"start-up (all ready): {elapsed:.1f} s  ({elapsed / args.clusters:.1f} s per cluster)")
    print(f"memory per cluster:  RSS {sum(rss) // len(rss)} MiB, PSS {sum(pss) // len(pss)} MiB")
    print(f"memory, whole fleet: PSS {sum(pss)} MiB")


if __name__ == "__main__":
    main()
