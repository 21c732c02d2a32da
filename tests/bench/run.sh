#!/usr/bin/env bash
# `make bench`: every benchmark, printing figures and ratios (never pass/fail; the machines
# are shared and noisy, so read the numbers, don't assert on them). The defaults fit a few
# minutes; the big runs (README, Benchmarks) are the scripts' flags:
#   tests/bench/bench_latency.py --clusters 3 --trace
#   tests/bench/bench_scale.py --clusters 1,5,10,12 --distributed
#   tests/bench/bench_noop.py --units 100,500,1000 --clusters 2
# BENCH_SCALE_CLUSTERS=1,5,10 BENCH_SCALE_FLAGS=--distributed make bench: a bigger scale run.
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
echo "== remote-cluster latency: 40 bundles through a proxy adding 0, 25, 50 ms each way"
$py tests/bench/bench_latency.py --bundles 40 --clusters 1

echo
echo "== scale: commit-to-Ready and fleet's peak memory by cluster count, 50 bundles each"
# shellcheck disable=SC2086 # BENCH_SCALE_FLAGS is a list of flags
$py tests/bench/bench_scale.py --clusters "${BENCH_SCALE_CLUSTERS:-1,3}" --bundles 50 \
  ${BENCH_SCALE_FLAGS:-}

echo
echo "== costs that grow with change: no-op pass and idle scheduler tick at 100/500/1,000 units"
$py tests/bench/bench_noop.py --units 100,500,1000 --clusters 2 --passes 3

echo
echo "== CLI start-up: fleet --help, fleet version, fleet validate (fresh interpreter each run)"
$py tests/bench/bench_cli.py
