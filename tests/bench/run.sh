#!/usr/bin/env bash
# `make bench`: every benchmark, printing figures and ratios (never pass/fail; the machines
# are shared and noisy, so read the numbers, don't assert on them).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
py=${PYTHON:-python}

echo "== targeting: 1,000 clusters x 50 bundles"
$py tests/bench/bench_targeting.py

echo
echo "== render dedupe: 1,000 clusters, renders performed vs. units"
$py tests/bench/bench_render.py

echo
echo "== planner: one tick, 1,000 clusters x 50 bundles, waves, gates, windows, maxNew"
$py tests/bench/bench_planner.py

echo
echo "== fleet plan: 1,000 clusters x 50 bundles, one values file changes"
$py tests/bench/bench_plan.py

echo
echo "== local fleet start-up: 5 clusters"
$py tests/bench/bench_localfleet.py --clusters 5

echo
echo "== sync on local clusters: commit-to-converged, no-op pass, apply throughput"
$py tests/bench/bench_sync.py

echo
echo "== many bundles on one cluster: one at a time (baseline) vs. concurrently"
$py tests/bench/bench_cluster_concurrency.py --bundles 40

echo
echo "== CLI start-up: fleet --help, fleet version, fleet validate (fresh interpreter each run)"
$py tests/bench/bench_cli.py
