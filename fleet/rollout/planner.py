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
- **Waves are per bundle** (Rancher Fleet rolls out each bundle by its partitions): the
  definition's `rollout.waves` in order; a cluster belongs to the first wave that selects
  it; clusters in no wave form an implicit last wave `(rest)`. Without waves all clusters
  are one wave `(all)`. A bundle's units in a wave are dispatched only when every unit of
  that bundle in the earlier waves is at its desired id and available, and the
  `WaveVerifier` (progressive delivery: bake times, gates such as Prometheus queries,
  `fleet.rollout.tracker`) passed each earlier wave. A wave it fails (by health, or a
  gate) is in `Plan.failed`, and the bundle's later waves wait for good; a bundle it
  holds (paused, revision rolled back) dispatches nothing.
- **maxUnavailable** (per wave, else `rollout.maxUnavailable`, else 100%) limits how many
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
- **Removals**: a (bundle, cluster) in `actual` with no desired unit. Not gated by waves;
  `keep_resources` comes from `ActualUnit` (the caller fills it in from the bundle's
  options or from what it recorded at deploy time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fleet.gates.model import GateVerdict
from fleet.spec.definition import Rollout, Wave
from fleet.states import ActualUnit, BundleState
from fleet.targeting.dependencies import dependencies
from fleet.targeting.selectors import compile_selector
from fleet.targeting.units import DeploymentUnit, UnitKey

ALL_WAVE = "(all)"
REST_WAVE = "(rest)"
DEFAULT_MAX_UNAVAILABLE = "100%"


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A unit to sync now, and why (`not deployed`, `changed`, `retry`, `correct drift`)."""

    unit: DeploymentUnit
    reason: str
    wave: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """A unit that needs syncing but may not be dispatched yet; `reason` is one line."""

    unit: DeploymentUnit
    reason: str
    wave: str


@dataclass(frozen=True, slots=True)
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
    waves: dict[str, str] = field(default_factory=dict)  # cluster -> wave name
    failed: list[WaveFailure] = field(default_factory=list)

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


@dataclass(frozen=True, slots=True)
class _WaveInfo:
    index: int
    name: str
    max_unavailable: int | str


def assign_waves(units: Sequence[DeploymentUnit], rollout: Rollout | None) -> dict[str, _WaveInfo]:
    """cluster -> its wave (first wave that selects it; else the implicit last wave)."""
    default: int | str = DEFAULT_MAX_UNAVAILABLE
    if rollout is not None and rollout.max_unavailable is not None:
        default = rollout.max_unavailable
    waves = rollout.waves if rollout is not None else []
    if not waves:
        return {u.cluster: _WaveInfo(0, ALL_WAVE, default) for u in units}
    matchers = [(i, w, _wave_matcher(w)) for i, w in enumerate(waves)]
    rest = _WaveInfo(len(waves), REST_WAVE, default)
    out: dict[str, _WaveInfo] = {}
    for unit in units:
        if unit.cluster in out:
            continue
        out[unit.cluster] = rest
        for index, wave, matches in matchers:
            if matches(unit):
                limit = wave.max_unavailable if wave.max_unavailable is not None else default
                out[unit.cluster] = _WaveInfo(index, wave.name, limit)
                break
    return out


def _wave_matcher(wave: Wave) -> Callable[[DeploymentUnit], bool]:
    if wave.clusters is not None:
        names = frozenset(wave.clusters)
        return lambda unit: unit.cluster in names
    if wave.group is not None:
        group = wave.group
        return lambda unit: group in unit.groups
    assert wave.selector is not None
    selector = compile_selector(wave.selector)
    return lambda unit: selector.matches(unit.labels)


def resolve_max_unavailable(value: int | str, total: int) -> int:
    """An int, or "N%" of `total` rounded down; at least 1 so a rollout can progress."""
    if isinstance(value, str) and value.endswith("%"):
        count = int(value[:-1]) * total // 100
    else:
        count = int(value)
    return max(count, 1)


def dispatch_reason(
    unit: DeploymentUnit, actual: ActualUnit | None, *, drift_check: bool = False
) -> str | None:
    """Why `unit` must be synced now, or None when the cluster already runs it."""
    if actual is None:
        return "not deployed"
    if actual.deployment_id != unit.deployment_id:
        return "changed"
    if actual.state is BundleState.ERR_APPLIED:
        return "retry after ErrApplied"
    drift = unit.options.correct_drift
    if drift is not None and drift.enabled:
        if actual.state is BundleState.MODIFIED:
            return "correct drift"
        if drift_check and actual.state is BundleState.READY:
            return "check drift"
    return None


def plan(
    units: Sequence[DeploymentUnit],
    actual: Mapping[UnitKey, ActualUnit],
    rollout: Rollout | None,
    *,
    now: float,
    verifier: WaveVerifier | None = None,
    drift_check: bool = False,
) -> Plan:
    """What may be dispatched now; see the module docstring for the rules."""
    result = Plan()
    waves = assign_waves(units, rollout)
    result.waves = {cluster: info.name for cluster, info in waves.items()}
    desired = {(u.bundle, u.cluster): u for u in units}
    by_cluster: dict[str, list[DeploymentUnit]] = {}
    by_bundle: dict[str, list[DeploymentUnit]] = {}
    for unit in units:
        by_cluster.setdefault(unit.cluster, []).append(unit)
        by_bundle.setdefault(unit.bundle, []).append(unit)

    for bundle, bundle_units in by_bundle.items():
        grouped: dict[int, list[DeploymentUnit]] = {}
        for unit in bundle_units:
            grouped.setdefault(waves[unit.cluster].index, []).append(unit)
        held = verifier.held(bundle) if verifier is not None else None
        after: str | None = None  # what holds the waves after the ones planned so far
        for index in sorted(grouped):
            wave_units = grouped[index]
            info = waves[wave_units[0].cluster]
            hold = held or (f"wave {info.name} {after}" if after else None)
            _plan_wave(result, wave_units, info, actual, desired, by_cluster, hold, drift_check)
            if held is None and after is None:
                after = _after_wave(result, bundle, info, wave_units, actual, verifier, now)

    for key, record in actual.items():
        if key not in desired:
            result.removals.append(Removal(key[0], key[1], record.keep_resources))
    return result


def _plan_wave(
    result: Plan,
    wave_units: list[DeploymentUnit],
    info: _WaveInfo,
    actual: Mapping[UnitKey, ActualUnit],
    desired: Mapping[UnitKey, DeploymentUnit],
    by_cluster: Mapping[str, list[DeploymentUnit]],
    hold: str | None,
    drift_check: bool,
) -> None:
    limit = resolve_max_unavailable(info.max_unavailable, len(wave_units))
    unavailable = sum(1 for u in wave_units if _unavailable(actual.get((u.bundle, u.cluster))))
    for unit in wave_units:
        record = actual.get((unit.bundle, unit.cluster))
        reason = dispatch_reason(unit, record, drift_check=drift_check)
        if reason is None:
            assert record is not None
            if record.available:
                result.in_sync.append(unit)
            else:
                result.progressing.append(Progressing(unit, record.state, info.name))
            continue
        wait = None
        if unit.options.paused:
            wait = "paused"
        elif hold is not None:
            wait = hold
        else:
            wait = _dependency_wait(unit, actual, desired, by_cluster[unit.cluster])
        was_unavailable = _unavailable(record)
        if wait is None and reason != "check drift" and not was_unavailable:
            if unavailable >= limit:
                wait = f"maxUnavailable {limit} reached in wave {info.name}"
            else:
                unavailable += 1
        if wait is not None:
            result.waiting.append(Waiting(unit, wait, info.name))
        else:
            result.dispatch.append(Dispatch(unit, reason, info.name))


def _unavailable(record: ActualUnit | None) -> bool:
    return record is not None and not record.available


def _complete(unit: DeploymentUnit, actual: Mapping[UnitKey, ActualUnit]) -> bool:
    record = actual.get((unit.bundle, unit.cluster))
    return record is not None and record.deployment_id == unit.deployment_id and record.available


def _describe(unit: DeploymentUnit, actual: Mapping[UnitKey, ActualUnit]) -> str:
    record = actual.get((unit.bundle, unit.cluster))
    if record is None:
        return "not deployed"
    if record.deployment_id != unit.deployment_id:
        return BundleState.OUT_OF_SYNC.value
    return record.state.value


def _laggards(units: list[DeploymentUnit], actual: Mapping[UnitKey, ActualUnit]) -> str:
    shown = ", ".join(f"{u.cluster}: {_describe(u, actual)}" for u in units[:3])
    return shown + (f", +{len(units) - 3} more" if len(units) > 3 else "")


def _after_wave(
    result: Plan,
    bundle: str,
    info: _WaveInfo,
    wave_units: list[DeploymentUnit],
    actual: Mapping[UnitKey, ActualUnit],
    verifier: WaveVerifier | None,
    now: float,
) -> str | None:
    """What holds the waves after this one: None when it is complete and verified."""
    laggards = [u for u in wave_units if not _complete(u, actual)]
    if laggards:
        failure = verifier.watch(bundle, info.name, wave_units, actual, now) if verifier else None
        if failure is not None:
            result.failed.append(WaveFailure(bundle, info.name, failure))
            return f"waits for wave {info.name}, which failed: {failure}"
        return f"waits for wave {info.name} ({_laggards(laggards, actual)})"
    if verifier is None:
        return None
    check = verifier.verify(bundle, info.name, wave_units, now)
    if check.verdict is GateVerdict.PASSED:
        return None
    if check.verdict is GateVerdict.PENDING:
        return f"gate: {check.message}"
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
