"""The planner: which deployment units may be dispatched now (pure and level-triggered).

Every tick the caller hands it the desired units (targeting), what the clusters report
(`actual`: (bundle, cluster) -> `ActualUnit`, read from the inventories in embedded mode
or from a cache in distributed mode; the planner does not care) and the rollout of the
definition. It answers with a `Plan`: units to dispatch, units that wait (each with a
one-line reason), units in progress, units in sync and bundles to remove. Calling it again
with fresher `actual` is always safe: nothing is remembered between ticks.

Rules, decided here where the issue was silent:

- **Dispatch** when the cluster does not run the unit's deployment id (or has no record of
  it), or runs it with state ErrApplied (retry). A unit at its id whose state is Modified is
  dispatched when its bundle has `correctDrift.enabled`; with `drift_check=True` every
  in-sync unit with `correctDrift.enabled` is dispatched for a drift pass (writes only if
  something drifted). A unit at its id that is NotReady/WaitApplied is *progressing*: not
  dispatched again, counted as unavailable.
- **Available** means Ready or Modified (applied and healthy; drift is reported, it does
  not block a rollout). Everything else a cluster reports is unavailable.
- **Waves are per bundle** (`fleet.rollout.waves`, which has the full precedence rules):
  the bundle's `rolloutStrategy.partitions` (they win over the definition's waves for
  that bundle), else the definition's `rollout.waves`, else Rancher's auto-partitions
  (a bundle on at least `autoPartitionThreshold`, default 200, clusters is cut into waves
  `auto-1`.. of `autoPartitionSize`, default 25%, by cluster name), else one wave
  `(all)`. A cluster belongs to the first wave or partition that selects it; clusters in
  none form an implicit last wave `(rest)`. A bundle's units in a wave are dispatched
  only when every unit of that bundle in the earlier waves is at its desired id and
  available, and the `WaveVerifier` (progressive delivery: bake times, gates such as
  Prometheus queries, `fleet.rollout.tracker`) passed each earlier wave. A wave it fails
  (by health, or a gate) is in `Plan.failed`, and the bundle's later waves wait for good;
  a bundle it holds (paused, revision rolled back) dispatches nothing. Unlike Rancher,
  where a partition holds the next one only once more than its maxUnavailable clusters
  are unavailable (so with the default 100% partitions never wait for each other), a
  fleet wave is complete only when all its units are Ready at the new id: that is the
  health gate the issue asks for.
- **maxUnavailablePartitions** (the bundle's; Rancher stops the rollout once more than
  this many partitions are unavailable, default 0): an incomplete wave is an unavailable
  partition, and later waves start while at most that many earlier waves are incomplete;
  0 is wave by wave. A wave with gates, a bake time or autoRollback is never passed over
  this way (`fleet.rollout.pacing`).
- **Offline clusters** (`offline=`, the clusters the runtime cannot reach now) follow the
  wave's policy (wave/partition, else the bundle's `rolloutStrategy.offline`, else
  `rollout.offline`): `wait` (default) changes nothing, the wave waits for the cluster
  (the next wave's units say "waits for wave W (<cluster>: offline)");
  `skip`: the wave completes without it, its unit waits "offline (skipped by the wave's
  offline policy)" and is deployed when it is back; `unavailable`: the same, and the
  cluster uses one place of the wave's maxUnavailable budget while it is offline.
- **Maintenance windows and freezes** (`fleet.rollout.windows`): a unit that would start
  a *new revision* (not deployed, or its id changed) waits while a freeze selects its
  cluster ("frozen: <reason>") or while the cluster has windows and none is open
  ("outside its maintenance window (next: ...)"). Retries and drift corrections of the
  revision it runs are not held.
- **Pacing** (`fleet.rollout.pacing`): `maxNew` caps the units started at a new revision
  and not available yet (a wave's own cap per wave; the bundle's or the definition's per
  bundle); a wave's `delay` holds its new revisions until that long after the previous
  wave passed, as told by `completed_at[(bundle, wave)]` (the tracker records it; with
  no time the wave waits). `Plan.waves_done` lists the (bundle, wave) pairs complete now.
- **maxUnavailable** (per wave or partition, else the bundle's
  `rolloutStrategy.maxUnavailable`, else `rollout.maxUnavailable`, else 100%) limits how many
  of a bundle's units in a wave are unavailable at once, dispatched units included. A
  percentage is of the bundle's units in the wave, rounded down, at least 1 (so a rollout
  can always progress; Kubernetes rounds the same way). Re-dispatching a unit that is
  already unavailable (an ErrApplied retry) does not use more of the budget; a cluster that
  never ran the bundle is not counted until it is dispatched.
- **dependsOn** (bundle options `dependsOn`, by `name` or by `selector` over the bundle
  labels) is per cluster: a unit waits until every bundle it depends on is available on
  that cluster at its desired id. A dependency that is not deployed to that cluster is
  waited for (and says so), as in Rancher Fleet.
- **paused** bundles are not dispatched (they keep what they run).
- **Deferred** bundles (`deferred=`: bundle -> why, the ones whose pinned images or chart
  could not be resolved now because a registry is down, `fleet.desired`) are planned but
  neither dispatched nor removed: every unit waits with that reason, the clusters keep
  what they run, and their waves are not verified (nothing of them is rolling out).
- **Removals**: a (bundle, cluster) in `actual` with no desired unit. Not gated by waves;
  `keep_resources` comes from `ActualUnit` (the caller fills it in from the bundle's
  options or from what it recorded at deploy time).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fleet.gates.model import GateVerdict
from fleet.rollout.pacing import NEW_REVISION, NewBudget, PartitionTolerance, delay_hold
from fleet.rollout.waves import (
    ALL_WAVE,
    DEFAULT_MAX_UNAVAILABLE,
    REST_WAVE,
    BundleWaves,
    DefinitionWaves,
    WavePlan,
    plan_waves,
    resolve_count,
)
from fleet.rollout.windows import RolloutCalendar
from fleet.spec.definition import Rollout
from fleet.states import ActualUnit, BundleState
from fleet.targeting.dependencies import dependencies
from fleet.targeting.units import DeploymentUnit, UnitKey

# module constants: an Enum member looked up on its class costs a call in Python 3.11
READY, MODIFIED, ERR_APPLIED = BundleState.READY, BundleState.MODIFIED, BundleState.ERR_APPLIED
__all__ = [
    "ALL_WAVE",
    "DEFAULT_MAX_UNAVAILABLE",
    "PASSED",
    "REST_WAVE",
    "ActualUnit",
    "BundleWaves",
    "Dispatch",
    "Plan",
    "Progressing",
    "Removal",
    "Waiting",
    "WaveCheck",
    "WaveFailure",
    "WavePlan",
    "WaveVerifier",
    "dispatch_reason",
    "plan",
    "resolve_max_unavailable",
]
OFFLINE_SKIPPED = "offline (skipped by the wave's offline policy)"
OFFLINE_UNAVAILABLE = "offline (counted as unavailable by the wave's offline policy)"


@dataclass(slots=True)  # not frozen: a frozen __init__ costs 5x, and a tick makes 50,000
class Dispatch:
    """A unit to sync now, and why (`not deployed`, `changed`, `retry`, `correct drift`)."""

    unit: DeploymentUnit
    reason: str
    wave: str


@dataclass(slots=True)  # not frozen: a frozen __init__ costs 5x, and a tick makes 50,000
class Waiting:
    """A unit that needs syncing but may not be dispatched yet; `reason` is one line."""

    unit: DeploymentUnit
    reason: str
    wave: str


@dataclass(slots=True)  # not frozen: a frozen __init__ costs 5x, and a tick makes 50,000
class Progressing:
    """A unit at its desired id that is not available yet (health pending, in flight)."""

    unit: DeploymentUnit
    state: BundleState
    wave: str


@dataclass(frozen=True, slots=True)
class Removal:
    """A bundle a cluster runs that Git no longer wants there."""

    bundle: str
    cluster: str
    keep_resources: bool = False


@dataclass
class Plan:
    dispatch: list[Dispatch] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    progressing: list[Progressing] = field(default_factory=list)
    in_sync: list[DeploymentUnit] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    # cluster -> its wave among the definition's `rollout.waves` (the fleet-wide view); a
    # bundle with partitions or auto-partitions has its own: `unit_waves`
    waves: dict[str, str] = field(default_factory=dict)
    unit_waves: dict[UnitKey, str] = field(default_factory=dict)  # (bundle, cluster) -> wave
    bundle_waves: dict[str, BundleWaves] = field(default_factory=dict)  # each bundle's waves
    waves_done: list[tuple[str, str]] = field(default_factory=list)  # (bundle, wave) complete
    failed: list[WaveFailure] = field(default_factory=list)

    def wave_of(self, unit: DeploymentUnit) -> str:
        """The unit's wave in this plan ("" when the unit was not planned)."""
        return self.unit_waves.get(unit.key, "")

    @property
    def converged(self) -> bool:
        """Nothing to dispatch, wait for, watch or remove: every unit is in sync."""
        return not (self.dispatch or self.waiting or self.progressing or self.removals)


@dataclass(frozen=True, slots=True)
class WaveCheck:
    """A verifier's answer for a complete wave: passed, pending (with why), failed or
    inconclusive (with the measured values)."""

    verdict: GateVerdict
    message: str = ""


PASSED = WaveCheck(GateVerdict.PASSED)


@dataclass(frozen=True, slots=True)
class WaveFailure:
    """A wave the verifier failed (by health or a gate): the bundle's rollout halts."""

    bundle: str
    wave: str
    message: str


class WaveVerifier(Protocol):
    """Progressive delivery's side of the plan (`fleet.rollout.tracker.RolloutTracker`).

    `held`: a reason the bundle's units that need a sync must wait (paused, revision
    rejected, rollout failed), or None. `watch`: for the first wave of a bundle that is not
    complete, a failure by health, or None. `verify`: for a complete wave, whether the next
    wave may start (passed), must wait (pending, with why) or never will (failed or
    inconclusive, with the measured values).
    """

    def held(self, bundle: str) -> str | None: ...

    def watch(
        self,
        bundle: str,
        wave: str,
        units: Sequence[DeploymentUnit],
        actual: Mapping[UnitKey, ActualUnit],
        now: float,
    ) -> str | None: ...

    def verify(
        self, bundle: str, wave: str, units: Sequence[DeploymentUnit], now: float
    ) -> WaveCheck: ...


def resolve_max_unavailable(value: int | str, total: int) -> int:
    """An int, or "N%" of `total` rounded down; at least 1 so a rollout can progress."""
    return resolve_count(value, total)


CHECKS = ("check drift", "check pull secrets")  # syncs of a unit at its id: no budget
PULL_CHECKED = (BundleState.READY, BundleState.NOT_READY)


def dispatch_reason(
    unit: DeploymentUnit, actual: ActualUnit | None, *, drift_check: bool = False
) -> str | None:
    """Why `unit` must be synced now, or None when the cluster already runs it."""
    if actual is None:
        return "not deployed"
    if actual.deployment_id != unit.deployment_id:
        return "changed"
    if actual.state is ERR_APPLIED:
        return "retry after ErrApplied"
    drift = unit.options.correct_drift
    if drift is not None and drift.enabled:
        if actual.state is MODIFIED:
            return "correct drift"
        if drift_check and actual.state is READY:
            return "check drift"
    if drift_check and actual.state in PULL_CHECKED and makes_pull_secrets(unit):
        # the credential is in no deployment id: a sync (its no-op path reads the Secrets'
        # metadata only) is what notices a new one (`fleet.engine.pull_secrets`); NotReady
        # too, as a stale credential is what keeps Pods from pulling
        return "check pull secrets"
    return None


def makes_pull_secrets(unit: DeploymentUnit) -> bool:
    """Does the unit ask for pull Secrets (`images.pullSecrets`)?"""
    images = unit.options.images
    return images is not None and bool(images.pull_secrets)


def plan(
    units: Sequence[DeploymentUnit],
    actual: Mapping[UnitKey, ActualUnit],
    rollout: Rollout | None,
    *,
    now: float,
    verifier: WaveVerifier | None = None,
    drift_check: bool = False,
    offline: Collection[str] = (),
    completed_at: Mapping[tuple[str, str], float] | None = None,
    deferred: Mapping[str, str] | None = None,
) -> Plan:
    """What may be dispatched now; see the module docstring for the rules.

    `offline`: the clusters that cannot be reached now (each wave's offline policy says
    what that means). `completed_at`: (bundle, wave) -> when that wave passed (epoch
    seconds), for the next wave's `delay`. `deferred`: bundle -> why it cannot be
    rolled out now (its units wait, nothing is removed).
    """
    result = Plan()
    definition = DefinitionWaves(rollout)
    layouts = plan_waves(units, rollout, definition)
    result.bundle_waves = layouts
    result.waves = definition.names(units)
    tick = _Tick(units, actual, frozenset(offline), RolloutCalendar(rollout, now), drift_check)

    for bundle, layout in layouts.items():
        why = deferred.get(bundle) if deferred else None
        if why is not None:
            _defer(result, layout, why)
            continue
        held = verifier.held(bundle) if verifier is not None else None
        after: str | None = None  # what holds the waves after the ones planned so far
        news = NewBudget(layout, actual)
        tolerance = PartitionTolerance(layout)
        previous: WavePlan | None = None
        for info in layout.waves:
            hold = held or (f"wave {info.name} {after}" if after else None)
            paced = delay_hold(bundle, info, previous, completed_at or {}, now)
            laggards = _plan_wave(result, info, tick, hold, paced, news)
            if not laggards:
                result.waves_done.append((bundle, info.name))
            if held is None and after is None:
                after = _after_wave(result, bundle, info, laggards, tick, verifier, tolerance, now)
            previous = info

    planned = result.unit_waves  # every desired unit's key
    for key, record in actual.items():
        if key not in planned:
            result.removals.append(Removal(key[0], key[1], record.keep_resources))
    return result


def _defer(result: Plan, layout: BundleWaves, why: str) -> None:
    """Every unit of a deferred bundle waits with `why`; being planned, none is removed."""
    for info in layout.waves:
        for unit in info.units:
            result.unit_waves[(unit.bundle, unit.cluster)] = info.name
            result.waiting.append(Waiting(unit, why, info.name))


class _Tick:
    """What every wave of one plan reads: the reports, who is offline, the calendar, and
    (built on first use, for dependsOn only) the desired units by key and by cluster."""

    def __init__(
        self,
        units: Sequence[DeploymentUnit],
        actual: Mapping[UnitKey, ActualUnit],
        offline: frozenset[str],
        calendar: RolloutCalendar,
        drift_check: bool,
    ) -> None:
        self.units, self.actual, self.offline = units, actual, offline
        self.calendar, self.drift_check = calendar, drift_check
        self._desired: dict[UnitKey, DeploymentUnit] | None = None
        self._by_cluster: dict[str, list[DeploymentUnit]] = {}

    def dependency_wait(self, unit: DeploymentUnit) -> str | None:
        if not unit.options.depends_on:
            return None
        if self._desired is None:
            self._desired = {(u.bundle, u.cluster): u for u in self.units}
            for u in self.units:
                self._by_cluster.setdefault(u.cluster, []).append(u)
        same_cluster = self._by_cluster[unit.cluster]
        return _dependency_wait(unit, self.actual, self._desired, same_cluster)


def _plan_wave(
    result: Plan,
    info: WavePlan,
    tick: _Tick,
    hold: str | None,
    paced: str | None,
    news: NewBudget,
) -> list[DeploymentUnit]:
    """Sort one wave's units into dispatch/waiting/progressing/in sync; return the units
    that keep the wave from being complete (not at their id and available, offline units
    the wave's policy does not wait for aside).

    `hold` stops every dispatch of the wave (an earlier wave or a gate); `paced` stops
    only new revisions (the wave's delay); windows, freezes, maxNew and the offline policy
    are checked per unit. This is the planner's inner loop (every unit, every tick): the
    common case, a unit in sync, takes the first branch.
    """
    actual, offline, name = tick.actual, tick.offline, info.name
    wave_units = info.units
    limit = resolve_count(info.max_unavailable, len(wave_units))
    not_waited = offline if info.offline != "wait" else frozenset()
    counted = offline if info.offline == "unavailable" else frozenset()
    unavailable = -1  # counted when a unit first needs the budget: a held wave never does
    calendar = None if tick.calendar.empty else tick.calendar
    unit_waves, in_sync, laggards = result.unit_waves, result.in_sync, []
    waiting, drift_check = result.waiting, tick.drift_check
    budget_full = f"maxUnavailable {limit} reached in wave {name}"
    for unit in wave_units:
        key = (unit.bundle, unit.cluster)
        unit_waves[key] = name
        record = actual.get(key)
        if record is None:
            reason: str | None = "not deployed"
        elif record.deployment_id != unit.deployment_id:
            reason = "changed"
        elif record.state is READY and not (
            drift_check and (unit.options.correct_drift or makes_pull_secrets(unit))
        ):
            in_sync.append(unit)  # the common case: nothing to do
            continue
        else:
            reason = dispatch_reason(unit, record, drift_check=drift_check)
        complete = (  # at its id and available: a drift check to come does not undo that
            record is not None and record.deployment_id == unit.deployment_id and record.available
        )
        if not complete and unit.cluster not in not_waited:
            laggards.append(unit)
        if reason is None:
            assert record is not None
            if record.available:
                in_sync.append(unit)
            else:
                result.progressing.append(Progressing(unit, record.state, name))
            continue
        if unit.options.paused:
            waiting.append(Waiting(unit, "paused", name))
            continue
        if hold is not None:  # every unit of a held wave: no further checks
            waiting.append(Waiting(unit, hold, name))
            continue
        new = reason in NEW_REVISION
        wait = None
        if unit.cluster in not_waited:
            wait = OFFLINE_SKIPPED if info.offline == "skip" else OFFLINE_UNAVAILABLE
        elif new and paced is not None:
            wait = paced
        elif new and calendar is not None:
            wait = calendar.hold(unit)
        if wait is None:
            wait = tick.dependency_wait(unit)
        uses_budget = reason not in CHECKS and not _unavailable(record)
        if unavailable < 0:
            unavailable = _count_unavailable(wave_units, actual, counted)
        if wait is None and uses_budget and unavailable >= limit:
            wait = budget_full
        if wait is None and new:
            wait = news.full(info)
        if wait is not None:
            waiting.append(Waiting(unit, wait, name))
            continue
        if uses_budget:
            unavailable += 1
        if new:
            news.take(info)
        result.dispatch.append(Dispatch(unit, reason, name))
    return laggards


def _count_unavailable(
    units: Sequence[DeploymentUnit],
    actual: Mapping[UnitKey, ActualUnit],
    counted_offline: frozenset[str],
) -> int:
    """Units of a wave that use its maxUnavailable budget now (offline ones its policy
    counts included)."""
    count = 0
    for u in units:
        record = actual.get((u.bundle, u.cluster))
        if u.cluster in counted_offline or (record is not None and not record.available):
            count += 1
    return count


def _unavailable(record: ActualUnit | None) -> bool:
    return record is not None and not record.available


def _complete(unit: DeploymentUnit, actual: Mapping[UnitKey, ActualUnit]) -> bool:
    record = actual.get((unit.bundle, unit.cluster))
    return record is not None and record.deployment_id == unit.deployment_id and record.available


def _describe(
    unit: DeploymentUnit, actual: Mapping[UnitKey, ActualUnit], offline: Collection[str] = ()
) -> str:
    if unit.cluster in offline:  # what it runs is unknown (or last known): say why it lags
        return "offline"
    record = actual.get((unit.bundle, unit.cluster))
    if record is None:
        return "not deployed"
    if record.deployment_id != unit.deployment_id:
        return BundleState.OUT_OF_SYNC.value
    return record.state.value


def _laggards(
    units: list[DeploymentUnit], actual: Mapping[UnitKey, ActualUnit], offline: Collection[str]
) -> str:
    shown = ", ".join(f"{u.cluster}: {_describe(u, actual, offline)}" for u in units[:3])
    return shown + (f", +{len(units) - 3} more" if len(units) > 3 else "")


def _after_wave(
    result: Plan,
    bundle: str,
    info: WavePlan,
    laggards: list[DeploymentUnit],
    tick: _Tick,
    verifier: WaveVerifier | None,
    tolerance: PartitionTolerance,
    now: float,
) -> str | None:
    """What holds the waves after this one: None when it is complete and verified (or
    incomplete and maxUnavailablePartitions still lets the next waves go)."""
    actual = tick.actual
    if laggards:
        failure = verifier.watch(bundle, info.name, info.units, actual, now) if verifier else None
        if failure is not None:
            result.failed.append(WaveFailure(bundle, info.name, failure))
            return f"waits for wave {info.name}, which failed: {failure}"
        if tolerance.tolerate(info):
            return None
        return f"waits for wave {info.name} ({_laggards(laggards, actual, tick.offline)})"
    if verifier is None:
        return None
    check = verifier.verify(bundle, info.name, info.units, now)
    if check.verdict is GateVerdict.PASSED:
        return None
    if check.verdict is GateVerdict.PENDING:
        return f"waits for the gates of wave {info.name}: {check.message}"
    result.failed.append(WaveFailure(bundle, info.name, check.message))
    return f"waits for wave {info.name}, which {check.verdict.value}: {check.message}"


def _dependency_wait(
    unit: DeploymentUnit,
    actual: Mapping[UnitKey, ActualUnit],
    desired: Mapping[UnitKey, DeploymentUnit],
    same_cluster: Sequence[DeploymentUnit],
) -> str | None:
    if not unit.options.depends_on:
        return None
    deps, missing = dependencies(unit, same_cluster)
    if missing:
        return f"depends on {missing[0]} (not deployed to this cluster)"
    for dep in deps:
        if not _complete(desired[(dep.bundle, dep.cluster)], actual):
            return f"depends on {dep.bundle} ({_describe(dep, actual)})"
    return None
