"""Planner benchmark: one tick for 1,000 clusters x 50 bundles with waves, gates, windows
and maxNew.

A script, not a test: prints figures and ratios, never fails on them. Run:

    python tests/bench/bench_planner.py [--clusters 1000] [--bundles 50] [--ticks 7]

The units are built in memory (targeting has its own benchmark). The rollout has 4 waves
(a canary list, a group, a selector, the rest), a verifier whose every wave passes (so the
figure is the planner's, not a metrics server's), two maintenance windows (one open,
one closed), a freeze and `maxNew`; every fifth bundle brings its own partitions instead
(per-bundle waves, with a partition gate and a delay). The clusters report a rollout in
the middle: each bundle's first waves done, a tenth of the next one applied and progressing,
the rest at the previous revision; 2% of the clusters are offline.

Figures, all measured in this run (median of `--ticks` ticks):

- baseline: the same units and reports planned as one wave, no gates, windows or maxNew
  (what the planner cost before progressive delivery);
- progressive: the full rollout above; the ratio says what waves and their rules add.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fleet.rollout.planner import PASSED, Plan, WaveCheck, plan  # noqa: E402
from fleet.spec.bundle_options import BundleOptions  # noqa: E402
from fleet.spec.definition import Rollout  # noqa: E402
from fleet.states import ActualUnit, BundleState  # noqa: E402
from fleet.targeting.units import DeploymentUnit, UnitKey  # noqa: E402

REGIONS = ["eu", "us", "ap"]
ENVS = ["dev", "staging", "prod"]
NOW = 1_796_342_400.0  # 2026-12-03 00:00 UTC: the 23:00-04:00 window is open, 02:00 not

ROLLOUT = {
    "maxUnavailable": "25%",
    "maxNew": 40,
    "gates": [{"type": "approval", "name": "fleet"}],
    "waves": [
        {"name": "canary", "clusters": ["c0000", "c0001", "c0002"]},
        {"name": "staging", "group": "staging", "maxNew": 20},
        {"name": "eu", "selector": {"matchLabels": {"region": "eu"}}, "delay": "5m"},
    ],
    "windows": [
        {"group": "dev", "schedule": "0 23 * * *", "duration": "5h"},
        {"selector": {"matchLabels": {"region": "ap"}}, "schedule": "0 2 * * *", "duration": "1h"},
    ],
    "freezes": [{"clusters": ["c0007"], "reason": "migration"}],
}
PARTITIONS = {
    "maxUnavailable": 10,
    "partitions": [
        {"name": "one", "clusterName": "c0003"},
        {"name": "us", "clusterSelector": {"matchLabels": {"region": "us"}}},
        {
            "name": "gold",
            "clusterGroupSelector": {"matchLabels": {"tier": "gold"}},
            "gates": [{"type": "approval"}],
            "delay": "1m",
        },
    ],
}
GROUP_LABELS = {"staging": {"tier": "silver"}, "prod": {"tier": "gold"}}


def build_units(clusters: int, bundles: int, *, progressive: bool) -> list[DeploymentUnit]:
    plain = BundleOptions.model_validate({"rolloutStrategy": {"autoPartitionSize": 0}})
    partitioned = BundleOptions.model_validate({"rolloutStrategy": PARTITIONS})
    units = []
    for b in range(bundles):
        options = partitioned if progressive and b % 5 == 0 else plain
        for i in range(clusters):
            env, region = ENVS[i % 3], REGIONS[i % 5 % 3]
            units.append(
                DeploymentUnit(
                    f"b{b:02d}",
                    f"c{i:04d}",
                    options,
                    "v2",
                    None,
                    {"env": env, "region": region},
                    region,
                    frozenset({env}),
                    group_labels=GROUP_LABELS,
                )
            )
    return units


def reports(units: Sequence[DeploymentUnit], waves: Plan) -> dict[UnitKey, ActualUnit]:
    """Mid-rollout: the first waves done, a tenth of the next applied, the rest at v1."""
    order: dict[str, list[str]] = {}
    for key, wave in waves.unit_waves.items():
        names = order.setdefault(key[0], [])
        if wave not in names:
            names.append(wave)
    actual: dict[UnitKey, ActualUnit] = {}
    for n, unit in enumerate(units):
        names = order[unit.bundle]
        position = names.index(waves.unit_waves[unit.key])
        current = (len(names) - 1) // 2
        if position < current:
            actual[unit.key] = ActualUnit("v2", BundleState.READY)
        elif position == current and n % 10 == 0:
            actual[unit.key] = ActualUnit("v2", BundleState.NOT_READY)
        else:
            actual[unit.key] = ActualUnit("v1", BundleState.READY)
    return actual


class PassingVerifier:
    """A trivial `WaveVerifier`: every wave passes at once (the figure is the planner's)."""

    def held(self, bundle: str) -> str | None:
        return None

    def watch(
        self,
        bundle: str,
        wave: str,
        units: Sequence[DeploymentUnit],
        actual: Mapping[UnitKey, ActualUnit],
        now: float,
    ) -> str | None:
        return None

    def verify(
        self, bundle: str, wave: str, units: Sequence[DeploymentUnit], now: float
    ) -> WaveCheck:
        return PASSED


def timed(tick: Callable[[], Plan], ticks: int) -> tuple[float, Plan]:
    times, result = [], tick()
    for _ in range(ticks):
        started = time.perf_counter()
        result = tick()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--bundles", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=7)
    args = parser.parse_args()

    rollout = Rollout.model_validate(ROLLOUT)
    units = build_units(args.clusters, args.bundles, progressive=True)
    flat = build_units(args.clusters, args.bundles, progressive=False)
    actual = reports(units, plan(units, {}, rollout, now=NOW))
    offline = [f"c{i:04d}" for i in range(0, args.clusters, 50)]

    base_s, base = timed(lambda: plan(flat, actual, None, now=NOW), args.ticks)
    prog_s, prog = timed(
        lambda: plan(
            units, actual, rollout, now=NOW, verifier=PassingVerifier(), offline=offline,
            completed_at={(u.bundle, "canary"): NOW - 3600 for u in units[:: args.clusters]},
        ),
        args.ticks,
    )  # fmt: skip
    total = len(units)
    print(f"units: {total:,} ({args.clusters:,} clusters x {args.bundles} bundles)")
    print(f"baseline (one wave, no rules): {base_s * 1000:7.1f} ms per tick "
          f"({len(base.dispatch):,} dispatched)")  # fmt: skip
    waves = {(b, w) for b, w in ((k[0], v) for k, v in prog.unit_waves.items())}
    print(f"progressive ({len(waves)} bundle waves, verifier, windows, maxNew): "
          f"{prog_s * 1000:7.1f} ms per tick ({len(prog.dispatch):,} dispatched, "
          f"{len(prog.waiting):,} waiting)")  # fmt: skip
    print(f"ratio progressive / baseline: {prog_s / base_s:.2f}x")
    print(f"per unit: {prog_s / total * 1e6:.2f} us")


if __name__ == "__main__":
    main()
