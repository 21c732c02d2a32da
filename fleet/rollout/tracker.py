"""The rollout tracker: verifies each wave of each bundle before the next one starts.

The planner (`fleet.rollout.planner`) stays pure: it asks a `WaveVerifier` three questions
and the tracker answers them from what it remembers (`fleet.rollout.record`), the gates of
the commit (`GateSet`, built once per commit by `build_gates`) and the operators'
`Controls`:

- `held(bundle)`: may the bundle's units that need a sync be dispatched at all? Not while
  it is paused, while its current revision was rejected (rolled back, or aborted: held
  until a commit changes the bundle), or while its rollout failed or halted and nobody
  resumed it.
- `watch(bundle, wave, units, actual, now)`, for the first wave of the bundle that is not
  complete yet: has it failed by health? A *verified* wave (one with gates, a bake time or
  `autoRollback`) fails when one of its units reports ErrApplied or NotReady at the new
  revision (the engine reports NotReady only after its health wait ran out), or when a
  unit that was Ready when verification started is not any more (health must stay good
  during the bake). A wave without any of those keeps today's behaviour: it waits.
- `verify(bundle, wave, units, now)`, for a wave whose units are all Ready at the
  revision: the wave's verification, from the moment it became Ready: the bake time must
  pass and every gate must pass; a failed gate fails the wave, an inconclusive one halts
  the rollout (nothing is rolled back; `fleet rollout resume` verifies again). A gate is
  asked again only from its `next_check` on; its answer and memory are kept.

A failed wave of a bundle with `autoRollback` is queued in `rollbacks`; the runtime puts
the previous revision back on the wave's clusters that run the failed one (the exact
manifests, from the cluster's history: `fleet.engine.rollback`) and calls
`rolled_back`. The failed revision is then rejected: the planner holds it everywhere
(later waves never see it) until a new commit changes the bundle.

Every verdict the tracker reaches is also an event (`wave.passed`, `wave.failed`,
`rollout.succeeded`/`failed`/`rolledBack`): `drain_events` hands them to the runtime.
The tracker changes only its records; `dirty` says which ones a store must write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fleet.gates.config import ConfiguredGate, GateSet, WaveSettings, wave_settings
from fleet.gates.model import GateContext, GateResult, GateTarget, GateVerdict
from fleet.rollout import record as rec
from fleet.rollout.planner import PASSED, WaveCheck
from fleet.rollout.rebuild import reject_rolled_back
from fleet.rollout.record import (
    BundleRollout,
    Controls,
    GateRecord,
    WaveRecord,
    bundle_revisions,
)
from fleet.rollout.waves import BundleWaves
from fleet.states import ActualUnit, BundleState
from fleet.targeting.units import DeploymentUnit, UnitKey

log = logging.getLogger(__name__)

HEALTH_FAILED = (BundleState.ERR_APPLIED, BundleState.NOT_READY)


SettingsSource = Callable[[str, str], WaveSettings]  # (bundle, wave) -> settings


def settings_source(waves: Mapping[str, BundleWaves], gates: GateSet) -> SettingsSource:
    """(bundle, wave) -> how it is verified, from the commit's per-bundle waves
    (`fleet.rollout.waves.plan_waves`: partitions, definition waves or auto partitions,
    with what each resolved) and its built gates."""
    cache: dict[tuple[str, str], WaveSettings] = {}
    none = WaveSettings()

    def settings(bundle: str, wave: str) -> WaveSettings:
        found = cache.get((bundle, wave))
        if found is None:
            plan = waves.get(bundle)
            spec = next((w for w in plan.waves if w.name == wave), None) if plan else None
            found = none if spec is None else wave_settings(
                gates, spec.gates, spec.bake, spec.auto_rollback)  # fmt: skip
            cache[(bundle, wave)] = found
        return found

    return settings


@dataclass(frozen=True, slots=True)
class RollbackDue:
    """Put `bundle` back to its previous revision on `clusters` (wave `wave` failed)."""

    bundle: str
    wave: str
    clusters: tuple[str, ...]
    reason: str
    revision: str


@dataclass(frozen=True, slots=True)
class TrackerEvent:
    """A verdict to report: `kind` is an event type (`wave.passed`, `rollout.rolledBack`)."""

    kind: str
    bundle: str
    wave: str
    message: str
    revision: str
    clusters: tuple[str, ...] = ()


@dataclass
class RolloutTracker:
    """See the module docstring. `records` and `controls` are by bundle; `fleet`,
    `commit` and `units` are the commit being rolled out; `env` holds the operator's
    secrets for the gates (FLEET_GATE_*, FLEET_METRICS_*); `history` what the
    clusters' revision history says was rolled back (`fleet.rollout.rebuild`)."""

    fleet: str
    commit: str
    units: Sequence[DeploymentUnit]
    settings: SettingsSource
    records: dict[str, BundleRollout] = field(default_factory=dict)
    controls: Mapping[str, Controls] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    namespaces: Mapping[UnitKey, str] = field(default_factory=dict)
    layout: Mapping[str, BundleWaves] = field(default_factory=dict)  # for waves' delays
    # False when units are applied without waiting for health (`fleet sync --no-wait`):
    # NotReady then only means "not waited for", never a failed wave
    health_failures: bool = True
    history: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # rolled back
    rollbacks: list[RollbackDue] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    events: list[TrackerEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.revisions = bundle_revisions(self.units)
        self._labels = {u.cluster: u.labels for u in self.units}

    # ------------------------------------------------------------------ records

    def begin(self, now: float) -> None:
        """Start (or go on with) each bundle's rollout record for the commit's revision,
        then reject again what the clusters' history says was rolled back (`history`:
        bundle -> revision -> why, `fleet.rollout.rebuild`).

        A new record is not written by itself (`dirty`): it is once something happens to
        it (a wave Ready, a verdict, a rejection from the history), so a run that could
        do nothing (every unit locked by another writer) writes nothing."""
        started: set[str] = set()
        for bundle, revision in self.revisions.items():
            found = self.records.get(bundle)
            control = self.controls.get(bundle, Controls())
            if found is None:
                self.records[bundle] = BundleRollout(bundle, revision, self.commit, now)
                started.add(bundle)
            elif found.revision != revision:
                self.records[bundle] = found.restart(revision, self.commit, now)
                started.add(bundle)
            elif found.outcome in (rec.FAILED, rec.HALTED) and _resumed(found, control):
                fresh = found.restart(revision, self.commit, now)
                fresh.previous = found.previous
                self.records[bundle] = fresh  # verified again from the start
                started.add(bundle)
        self.dirty |= reject_rolled_back(self.records, self.revisions, self.history,
                                         started, now)  # fmt: skip

    def record(self, bundle: str) -> BundleRollout | None:
        return self.records.get(bundle)

    # ------------------------------------------------------------------ WaveVerifier

    def held(self, bundle: str) -> str | None:
        return hold_reason(
            self.records.get(bundle),
            self.controls.get(bundle, Controls()),
            self.revisions.get(bundle, ""),
        )

    def watch(
        self,
        bundle: str,
        wave: str,
        units: Sequence[DeploymentUnit],
        actual: Mapping[UnitKey, ActualUnit],
        now: float,
    ) -> str | None:
        """A failure by health of the wave being deployed, or None (see module doc)."""
        settings = self.settings(bundle, wave)
        found = self.records.get(bundle)
        if not settings.verified or found is None or found.finished or not self.health_failures:
            return None
        record = found.wave(wave)
        if record.verdict != GateVerdict.PENDING.value:
            return None  # decided already (a passed wave that regresses is the engine's)
        problem = _health_problem(units, actual, after_ready=record.ready_at is not None)
        if problem is None:
            return None
        self._fail(found, record, settings, problem, [u.cluster for u in units], now)
        return problem

    def verify(
        self, bundle: str, wave: str, units: Sequence[DeploymentUnit], now: float
    ) -> WaveCheck:
        """The verdict on a complete wave (see module doc)."""
        settings = self.settings(bundle, wave)
        found = self.records.get(bundle)
        if found is None:
            return PASSED
        record = found.wave(wave)
        if record.verdict == GateVerdict.PASSED.value:
            return PASSED
        if record.verdict in (GateVerdict.FAILED.value, GateVerdict.INCONCLUSIVE.value):
            return WaveCheck(GateVerdict(record.verdict), record.message)
        if not settings.verified:
            self._pass(found, record, now, "", quiet=True)
            return PASSED
        if record.ready_at is None:
            record.ready_at = now
            record.clusters = sorted(u.cluster for u in units)
            self.dirty.add(bundle)
        results = [self._ask(found, record, gate, units, now) for gate in settings.gates]
        return self._combine(found, record, settings, results, units, now)

    # ------------------------------------------------------------------ runtime side

    def rolled_back(self, due: RollbackDue, done: Sequence[str], failed: Mapping[str, str]) -> None:
        """The runtime put `done` back (and could not on `failed`: cluster -> why)."""
        found = self.records.get(due.bundle)
        if found is None:
            return
        wave = found.wave(due.wave)
        wave.rolled_back = sorted(set(wave.rolled_back) | set(done))
        if not failed:
            found.outcome = rec.ROLLED_BACK
            found.reject(due.revision, f"wave {due.wave}: {due.reason}")
            self._event("rollout.rolledBack", found, due.wave, due.reason, tuple(done))
        else:
            shown = "; ".join(f"{c}: {why}" for c, why in sorted(failed.items()))
            found.outcome = rec.FAILED
            found.message = f"{due.reason}; rollback failed on {shown}"
        self.dirty.add(due.bundle)

    def settle(self, complete: Callable[[str], bool], now: float) -> None:
        """Mark the rollouts whose every unit is done and every wave passed succeeded;
        `complete(bundle)`: every unit of the bundle runs the revision and is available."""
        for bundle, found in self.records.items():
            if found.finished or bundle not in self.revisions or not complete(bundle):
                continue
            if any(w.verdict != GateVerdict.PASSED.value for w in found.waves.values()):
                continue
            found.outcome, found.finished_at = rec.SUCCEEDED, now
            found.message = f"every wave passed ({', '.join(found.waves) or 'none'})"
            if any(self.settings(bundle, w).verified for w in found.waves):
                self._event("rollout.succeeded", found, "", found.message)
            self.dirty.add(bundle)

    def settle_with(self, actual: Mapping[UnitKey, ActualUnit], now: float) -> None:
        """`settle` with what the clusters run: one pass over the commit's units."""
        incomplete: set[str] = set()
        for unit in self.units:
            found = actual.get(unit.key)
            if found is None or found.deployment_id != unit.deployment_id or not found.available:
                incomplete.add(unit.bundle)
        self.settle(lambda bundle: bundle not in incomplete, now)

    def next_check(self, now: float) -> float | None:
        """The earliest time after `now` a pending, time-based check wants to run (None:
        nothing to wait for in-process: every pending gate waits for a person, or nothing
        pends)."""
        times: list[float] = []
        for found in self.records.values():
            if found.finished:
                continue
            for wave in found.waves.values():
                if wave.verdict != GateVerdict.PENDING.value or wave.ready_at is None:
                    continue
                settings = self.settings(found.bundle, wave.name)
                if settings.bake:
                    end = wave.ready_at + settings.bake
                    times.append(end)
                times += [g.next_check for g in wave.gates.values() if g.next_check is not None
                          and g.verdict == GateVerdict.PENDING.value]  # fmt: skip
        times += self._delays_ending()
        ahead = [t for t in times if t > now]
        return min(ahead) if ahead else None

    def _delays_ending(self) -> list[float]:
        """When a wave's `delay` after the previous wave's pass ends (still ahead)."""
        passed = self.completed_at()
        ends = []
        for bundle, layout in self.layout.items():
            for previous, wave in zip(layout.waves, layout.waves[1:], strict=False):
                at = passed.get((bundle, previous.name))
                if wave.delay and at is not None and (bundle, wave.name) not in passed:
                    ends.append(at + wave.delay)
        return ends

    def verifying(self) -> list[tuple[str, str]]:
        """(bundle, wave) pairs whose verification runs now (Ready, not decided)."""
        return [
            (found.bundle, wave.name)
            for found in self.records.values()
            if not found.finished
            for wave in found.waves.values()
            if wave.ready_at is not None and wave.verdict == GateVerdict.PENDING.value
        ]

    def completed_at(self) -> dict[tuple[str, str], float]:
        """(bundle, wave) -> when the wave passed, at the current revisions (the planner's
        `completed_at`, for the next wave's `delay`)."""
        return {
            (found.bundle, wave.name): wave.passed_at
            for found in self.records.values()
            if found.revision == self.revisions.get(found.bundle)
            for wave in found.waves.values()
            if wave.passed_at is not None
        }

    def drain_events(self) -> list[TrackerEvent]:
        out, self.events = self.events, []
        return out

    # ------------------------------------------------------------------ internals

    def _ask(
        self,
        found: BundleRollout,
        wave: WaveRecord,
        gate: ConfiguredGate,
        units: Sequence[DeploymentUnit],
        now: float,
    ) -> GateResult:
        kept = wave.gates.get(gate.name)
        if kept is None:
            kept = wave.gates[gate.name] = GateRecord(gate.name, gate.spec.type)
        if kept.verdict != GateVerdict.PENDING.value:
            return GateResult(GateVerdict(kept.verdict), kept.message)
        if kept.next_check is not None and now < kept.next_check:
            return GateResult.pending(kept.message, kept.next_check)
        control = self.controls.get(found.bundle, Controls())
        ctx = GateContext(
            fleet=self.fleet,
            bundle=found.bundle,
            wave=wave.name,
            revision=found.revision,
            commit=found.commit,
            targets=[self._target(u) for u in units],
            since=wave.ready_at or now,
            now=now,
            memory=kept.memory,
            approved=control.approves(found.revision, wave.name),
            env=self.env,
        )
        try:
            result = gate.gate.check(ctx)
        except Exception as err:  # a plugin's bug: say so, do not take the rollout down
            log.warning("gate %s of %s/%s raised %r", gate.name, found.bundle, wave.name, err)
            result = GateResult.inconclusive(f"gate raised {type(err).__name__}: {err}")
        kept.verdict, kept.message = result.verdict.value, result.message
        kept.next_check, kept.checked_at = result.next_check, now
        kept.memory = ctx.memory
        kept.measurements = [*kept.measurements, *result.measurements][-rec.MEASUREMENTS_KEPT :]
        self.dirty.add(found.bundle)
        return result

    def _combine(
        self,
        found: BundleRollout,
        wave: WaveRecord,
        settings: WaveSettings,
        results: list[GateResult],
        units: Sequence[DeploymentUnit],
        now: float,
    ) -> WaveCheck:
        names = [g.name for g in settings.gates]
        for name, result in zip(names, results, strict=True):
            if result.verdict in (GateVerdict.FAILED, GateVerdict.INCONCLUSIVE):
                message = f"gate {name}: {_without(name, result.message)}"
                clusters = [u.cluster for u in units]
                self._fail(found, wave, settings, message, clusters, now, result.verdict)
                return WaveCheck(result.verdict, message)
        waiting = [f"{n}: {_without(n, r.message)}" for n, r in zip(names, results, strict=True)
                   if r.verdict is GateVerdict.PENDING]  # fmt: skip
        ready_at = wave.ready_at if wave.ready_at is not None else now
        left = ready_at + settings.bake - now
        if left > 0:
            waiting.insert(0, f"bake {_seconds(left)} left of {_seconds(settings.bake)}")
        if waiting:
            wave.message = "; ".join(waiting)
            return WaveCheck(GateVerdict.PENDING, wave.message)
        passed = [f"{n}: {_without(n, r.message)}" for n, r in zip(names, results, strict=True)
                  if r.message]  # fmt: skip
        self._pass(found, wave, now, "; ".join(passed))
        return PASSED

    def _pass(
        self,
        found: BundleRollout,
        wave: WaveRecord,
        now: float,
        message: str,
        *,
        quiet: bool = False,
    ) -> None:
        """The wave passed; `quiet`: it had nothing to verify (no event: the fleet's own
        `rollout.succeeded` says it all)."""
        wave.verdict, wave.passed_at = GateVerdict.PASSED.value, now
        if wave.ready_at is None:
            wave.ready_at = now
        wave.message = message or "passed"
        self.dirty.add(found.bundle)
        if not quiet:
            self._event("wave.passed", found, wave.name, wave.message)

    def _fail(
        self,
        found: BundleRollout,
        wave: WaveRecord,
        settings: WaveSettings,
        message: str,
        clusters: list[str],
        now: float,
        verdict: GateVerdict = GateVerdict.FAILED,
    ) -> None:
        wave.verdict, wave.message = verdict.value, message
        found.failed_wave, found.message, found.finished_at = wave.name, message, now
        found.outcome = rec.HALTED if verdict is GateVerdict.INCONCLUSIVE else rec.FAILED
        self.dirty.add(found.bundle)
        self._event("wave.failed", found, wave.name, message, tuple(sorted(clusters)))
        if verdict is GateVerdict.FAILED and settings.auto_rollback:
            due = RollbackDue(found.bundle, wave.name, tuple(sorted(clusters)), message,
                              found.revision)  # fmt: skip
            self.rollbacks.append(due)
        else:
            self._event(f"rollout.{rec.FAILED}", found, wave.name, message)

    def _event(
        self,
        kind: str,
        found: BundleRollout,
        wave: str,
        message: str,
        clusters: tuple[str, ...] = (),
    ) -> None:
        self.events.append(TrackerEvent(kind, found.bundle, wave, message, found.revision,
                                        clusters))  # fmt: skip

    def _target(self, unit: DeploymentUnit) -> GateTarget:
        namespace = self.namespaces.get(unit.key) or unit.options.target_namespace or ""
        return GateTarget(unit.cluster, dict(unit.labels), namespace)


def hold_reason(found: BundleRollout | None, control: Controls, revision: str) -> str | None:
    """Why a bundle at `revision` dispatches nothing (see the module docstring's
    `held`), from its record and the operators' controls; None: it may go on."""
    if control.paused:
        why = f": {control.reason}" if control.reason else ""
        return f"paused by `fleet rollout pause`{why}"
    if revision in control.aborted:
        return f"revision {revision} aborted by `fleet rollout abort`; waiting for a new commit"
    if revision in control.rolled_back:
        return (
            f"revision {revision} was rolled back by `fleet rollout rollback` "
            f"({control.rolled_back[revision]}); waiting for a new commit"
        )
    if found is None:
        return None
    if revision in found.rejected:
        return (
            f"revision {revision} was rolled back ({found.rejected[revision]}); "
            "waiting for a new commit"
        )
    if found.revision == revision and found.outcome in (rec.FAILED, rec.HALTED):
        return (
            f"rollout {found.outcome} at wave {found.failed_wave}: {found.message}; "
            "`fleet rollout resume` verifies again"
        )
    return None


def _without(name: str, message: str) -> str:
    """A gate's message without its own name in front (the tracker says which gate)."""
    prefix = f"{name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _resumed(found: BundleRollout, control: Controls) -> bool:
    return control.resumed_at > (found.finished_at or 0.0)


def _health_problem(
    units: Sequence[DeploymentUnit], actual: Mapping[UnitKey, ActualUnit], *, after_ready: bool
) -> str | None:
    for unit in units:
        found = actual.get(unit.key)
        if found is None or found.deployment_id != unit.deployment_id:
            continue  # not deployed yet (or in flight): nothing to judge
        if found.state in HEALTH_FAILED or (after_ready and not found.available):
            detail = f": {found.message}" if found.message else ""
            during = " during verification" if after_ready else ""
            return f"{unit.cluster} is {found.state.value}{during}{detail}"
    return None


def _seconds(value: float) -> str:
    total = max(0, round(value))
    minutes, seconds = divmod(total, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
