"""Pacing a bundle's rollout: maxNew, per-wave delay, maxUnavailablePartitions (pure).

The planner keeps no state, so each rule is computed from what the caller hands it:

- **maxNew** caps the units *started but not yet available* at a new revision: a unit
  the cluster runs at its desired id that is not available yet (applied, health pending,
  or failed), plus the units dispatched this tick to start a new revision ("not
  deployed" or "changed"). A wave's own `maxNew` caps that wave; the bundle's
  (`rolloutStrategy.maxNew`, else `rollout.maxNew`) caps the bundle across its waves, as
  Rancher's maxNew is per bundle. Rancher counts BundleDeployments *created* per
  reconcile (default 50); a level-triggered planner has no "per reconcile", so fleet
  counts what is in flight, and has no default (unlimited): pacing is asked for. Retries
  and drift corrections are not new revisions and are not counted or capped.
- **delay**: a wave with `delay` starts its new revisions only `delay` seconds after the
  previous wave of the bundle passed. When it passed comes from the caller
  (`completed_at[(bundle, wave)]`, epoch seconds; the gate tracker records it); with no
  time recorded the wave waits, saying so.
- **maxUnavailablePartitions** (Rancher: the rollout stops once more than this many
  partitions are unavailable; default 0): a wave not complete (some unit not at its id
  and available, offline units its policy skips aside) is an unavailable partition. The
  next waves start while at most that many earlier waves are incomplete, so 0 (the
  default) is strict wave-by-wave order. A wave with gates, a bake time or autoRollback
  (a wave that is verified, and can fail and roll back) is never tolerated this way: its
  verification is what lets the next wave start.
"""

from __future__ import annotations

from collections.abc import Mapping

from fleet.rollout.waves import BundleWaves, WavePlan
from fleet.states import ActualUnit
from fleet.targeting.units import UnitKey

NEW_REVISION = frozenset({"not deployed", "changed"})


def in_flight(wave: WavePlan, actual: Mapping[UnitKey, ActualUnit]) -> int:
    """Units of `wave` at their desired id and not available yet (started, not done)."""
    count = 0
    for unit in wave.units:
        record = actual.get((unit.bundle, unit.cluster))
        if record is not None and record.deployment_id == unit.deployment_id:
            count += not record.available
    return count


class NewBudget:
    """maxNew for one bundle: the bundle's cap and the current wave's, counted together."""

    def __init__(self, layout: BundleWaves, actual: Mapping[UnitKey, ActualUnit]) -> None:
        self.bundle_cap = layout.max_new
        capped = self.bundle_cap is not None or any(w.max_new is not None for w in layout.waves)
        # counted only when something caps them: most bundles have no maxNew
        self.wave_counts = {w.index: in_flight(w, actual) if capped else 0 for w in layout.waves}
        self.bundle_count = sum(self.wave_counts.values())

    def full(self, wave: WavePlan) -> str | None:
        """Why `wave` may not start one more new revision now, or None."""
        if wave.max_new is not None and self.wave_counts[wave.index] >= wave.max_new:
            return f"maxNew {wave.max_new} reached in wave {wave.name}"
        if self.bundle_cap is not None and self.bundle_count >= self.bundle_cap:
            return f"maxNew {self.bundle_cap} reached for the bundle"
        return None

    def take(self, wave: WavePlan) -> None:
        self.wave_counts[wave.index] += 1
        self.bundle_count += 1


def delay_hold(
    bundle: str,
    wave: WavePlan,
    previous: WavePlan | None,
    completed_at: Mapping[tuple[str, str], float],
    now: float,
) -> str | None:
    """Why `wave` may not start new revisions yet because of its `delay`, or None."""
    if not wave.delay or previous is None:
        return None
    passed = completed_at.get((bundle, previous.name))
    if passed is None:
        return f"wave {wave.name} starts {_span(wave.delay)} after wave {previous.name} passed"
    left = passed + wave.delay - now
    if left <= 0:
        return None
    wait = _span(wave.delay)
    return f"wave {wave.name} starts {wait} after wave {previous.name} ({_span(left)} left)"


class PartitionTolerance:
    """maxUnavailablePartitions for one bundle: incomplete earlier waves it still allows."""

    def __init__(self, layout: BundleWaves) -> None:
        self.allowed = layout.max_unavailable_partitions
        self.incomplete = 0

    def tolerate(self, wave: WavePlan) -> bool:
        """`wave` is incomplete: may later waves go on anyway? (counts it if so)"""
        if wave.gates or wave.bake or wave.auto_rollback or self.incomplete >= self.allowed:
            return False
        self.incomplete += 1
        return True


def _span(seconds: float) -> str:
    total = max(int(seconds + 0.999), 1)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts)
