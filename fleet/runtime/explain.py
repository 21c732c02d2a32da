"""`fleet explain BUNDLE --cluster C`: why one unit is in its state, read-only.

Everything `fleet status`, `fleet rollout status` and `fleet events` know about one
(bundle, cluster), in one place and in their words:

- its row (`fleet.status.rows.unit_row`): state and message, the deployment id Git wants
  and the one the cluster runs, and the commit it runs;
- a live look when the cluster runs the desired id (`fleet.engine.inspect`): every
  object's verdict, the not-ready ones first;
- what the planner says it waits for (`fleet.rollout.planner.plan`'s `Waiting` reason:
  dependsOn, a wave, its gates, a window, a freeze, a pause, an offline cluster), planned
  with the clusters found down as offline and `RecordedVerdicts`: the rollout tracker's
  last verdicts, read, never asked again (no gate is queried, nothing is written);
- the bundle's rollout record, from the store `fleet rollout status` reads
  (`fleet.runtime.rollout_store`: Redis when FLEET_REDIS_URL is set, else the clusters);
- the last few events: distributed (`--redis URL` or FLEET_REDIS_URL set), from the fleet's
  Redis stream, the one `fleet events` reads: the unit's own events and those about its
  bundle, its cluster or the whole fleet (a commit detected, a wave, the cluster
  unreachable), which the stream keeps longer than Kubernetes keeps Events and holds
  even when the cluster is down; else (or when Redis does not answer, with a note) the
  Kubernetes Events fleet recorded for the unit in its cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from fleet import config, engine
from fleet.desired import load_desired
from fleet.engine.kube import ClusterConnection, KubeError
from fleet.errors import FleetError, UserError
from fleet.events.model import Event
from fleet.events.sinks import list_kube_events
from fleet.gates.model import GateVerdict
from fleet.plugin.manager import FleetPlugins
from fleet.rollout.planner import PASSED, WaveCheck, plan
from fleet.rollout.record import BundleRollout, Controls, revision_of
from fleet.rollout.tracker import hold_reason
from fleet.runtime.clusters import ClusterSet
from fleet.runtime.event_reader import EventFilter
from fleet.runtime.live_status import object_health
from fleet.runtime.rollout_store import ClusterRolloutStore, RedisRolloutStore, RolloutStore
from fleet.source.local import resolve_source
from fleet.states import ActualUnit
from fleet.status.model import ObjectHealth, UnitStatus
from fleet.status.rollouts import status_lines
from fleet.status.rows import needs_look, unit_row
from fleet.targeting.units import DeploymentUnit, UnitKey

DEFAULT_EVENTS = 5


@dataclass
class Explanation:
    """What `fleet explain` prints about one unit (see the module docstring)."""

    row: UnitStatus
    running_id: str  # the deployment id the cluster runs ('' when it runs nothing)
    waiting: str | None  # the planner's reason the unit waits, None when it does not
    next_step: str  # what the next `fleet sync` does with the unit, in one line
    objects: list[ObjectHealth] | None  # None: not looked at live (see `row.message`)
    rollout: list[str] = field(default_factory=list)  # `fleet rollout status` lines
    events: list[Event] = field(default_factory=list)  # oldest first
    events_from: str = "kubernetes"  # "stream" (the fleet's Redis stream) or "kubernetes"
    notes: list[str] = field(default_factory=list)  # what could not be read, and why


class RecordedVerdicts:
    """A `WaveVerifier` that only reads the tracker's last verdicts: a pause, a rollout
    failed or halted at the current revision, a wave failed, or one still verifying.
    A wave without a record passes (as the tracker would for an unverified wave)."""

    def __init__(
        self,
        records: Mapping[str, BundleRollout],
        controls: Mapping[str, Controls],
        units: Sequence[DeploymentUnit],
    ) -> None:
        self.records, self.controls = records, controls
        ids: dict[str, list[str]] = {}
        for unit in units:
            ids.setdefault(unit.bundle, []).append(unit.deployment_id)
        self.revisions = {bundle: revision_of(found) for bundle, found in ids.items()}

    def _current(self, bundle: str) -> BundleRollout | None:
        found = self.records.get(bundle)
        return found if found is not None and found.revision == self.revisions.get(bundle) else None

    def held(self, bundle: str) -> str | None:
        """The tracker's own rule (paused, aborted, rolled back, failed or halted)."""
        control = self.controls.get(bundle, Controls())
        return hold_reason(self.records.get(bundle), control, self.revisions.get(bundle, ""))

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
        found = self._current(bundle)
        if found is None or wave not in found.waves:
            return PASSED
        record = found.waves[wave]
        if record.verdict == GateVerdict.PENDING.value and record.ready_at is None:
            return PASSED  # not verified yet: the tracker decides on the next sync
        return WaveCheck(GateVerdict(record.verdict), record.message or "verifying")


def redis_url_of(given: str | None) -> str | None:
    """`--redis URL`, else FLEET_REDIS_URL when set: the distributed mode's Redis."""
    settings = config.current()
    return given or (settings.redis_url if settings.redis_configured else None)


def _store(clusters: ClusterSet, fleet: str, redis_url: str | None) -> RolloutStore | None:
    if redis_url is not None:
        from fleet.runtime.state_cache import connect_redis

        return RedisRolloutStore(connect_redis(redis_url), fleet)
    conns = [link.conn for link in clusters.links.values() if link.conn is not None
             and link.down is None]  # fmt: skip
    return ClusterRolloutStore(conns, fleet) if conns else None


def concerns(unit_key: UnitKey) -> Callable[[Event], bool]:
    """The events about the unit, its bundle (waves, rollouts), its cluster (unreachable,
    recovered) or the whole fleet (commits): what explains the unit's state."""
    bundle, cluster = unit_key
    return lambda e: e.bundle in (None, bundle) and e.cluster in (None, cluster)


def stream_events(
    redis_url: str, fleet: str, unit_key: UnitKey, count: int
) -> tuple[list[Event], str | None]:
    """The last `count` events of the fleet's Redis stream that concern the unit, oldest
    first; or none and why (Redis named by host:port only, never its password)."""
    import redis

    from fleet.runtime.event_reader import last_redis, redis_failure, redis_fleet

    try:
        return last_redis(redis_fleet(redis_url, fleet), concerns(unit_key), count), None
    except redis.RedisError as err:
        return [], str(redis_failure(err, redis_url))
    except FleetError as err:  # the stream could not be read (redis_fleet says why)
        return [], str(err)


def _check(unit_key: UnitKey, units: Mapping[UnitKey, DeploymentUnit], bundles: list[str],
           clusters: list[str]) -> DeploymentUnit:  # fmt: skip
    bundle, cluster = unit_key
    if cluster not in clusters:
        raise UserError(f"unknown cluster {cluster!r} (clusters: {', '.join(clusters)})")
    if bundle not in bundles:
        raise UserError(f"unknown bundle {bundle!r} (bundles: {', '.join(bundles) or 'none'})")
    unit = units.get(unit_key)
    if unit is None:
        targets = sorted(c for b, c in units if b == bundle)
        raise UserError(f"bundle {bundle!r} does not target cluster {cluster!r} "
                        f"(it targets: {', '.join(targets) or 'no cluster'})")  # fmt: skip
    return unit


def explain_unit(
    source: str | Path,
    bundle: str,
    cluster: str,
    *,
    branch: str | None = None,
    env: Mapping[str, str] | None = None,
    plugins: FleetPlugins | None = None,
    events: int = DEFAULT_EVENTS,
    redis_url: str | None = None,
) -> Explanation:
    """Everything known about (bundle, cluster); see the module docstring. `redis_url`:
    the distributed mode's Redis (default: FLEET_REDIS_URL when set)."""
    redis_url = redis_url_of(redis_url)
    checkout = resolve_source(source, branch)
    desired = load_desired(checkout.path, checkout.commit, plugins or FleetPlugins.load())
    units = {u.key: u for u in desired.units}
    bundles = sorted({b.name for b in desired.repo.bundles})
    unit = _check((bundle, cluster), units, bundles, list(desired.clusters))
    specs = {c.name: c for c in desired.repo.definition.clusters}
    with ClusterSet([specs[n] for n in desired.clusters], retries=1, backoff=0.5) as run:
        run.connect(config.current().env if env is None else env)
        actual = {k: r.to_actual() for k, r in run.read_deployed(desired.fleet_name, units).items()}
        link = run[cluster]
        notes = [f"cluster {name}: not reached ({why})" for name, why in sorted(run.down.items())]
        store = _store(run, desired.fleet_name, redis_url)
        records: dict[str, BundleRollout] = {}
        controls: dict[str, Controls] = {}
        if store is None:
            notes.append("rollout records not read: no cluster answers")
        else:
            try:
                records, controls = store.records(), store.controls()
            except redis.RedisError as err:  # a Redis that does not answer: a note
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                notes.append(f"rollout records not read from Redis: {reason}")
        verdicts = RecordedVerdicts(records, controls, desired.units)
        found = plan(desired.units, actual, desired.repo.definition.rollout, now=time.time(),
                     verifier=verdicts, drift_check=True, offline=list(run.down))  # fmt: skip
        waiting = next((w.reason for w in found.waiting if w.unit.key == unit.key), None)
        step = next((f"applies it ({d.reason})" for d in found.dispatch if d.unit.key == unit.key),
                    "waits" if waiting else "leaves it as it is")  # fmt: skip
        record = actual.get(unit.key)
        row = unit_row(unit, record, down=link.down, waiting=waiting, wave=found.wave_of(unit))
        objects = None
        if link.down is None and needs_look(unit, record):
            manifests = desired.manifests(unit)

            def look(conn: ClusterConnection) -> engine.Inspection:
                return engine.inspect(conn, bundle, unit.deployment_id, manifests,
                                      unit.options, fleet=desired.fleet_name)  # fmt: skip

            try:
                seen = link.call(f"inspect {bundle}", look)
                row.state, row.message, objects = seen.state, seen.message, object_health(seen)
            except KubeError as err:
                notes.append(f"live look failed: {err.reason}")
        recent: list[Event] = []
        if events and redis_url is not None:
            recent, problem = stream_events(redis_url, desired.fleet_name, unit.key, events)
            if problem is not None:
                notes.append(f"{problem}; the cluster's Kubernetes Events instead")
                redis_url = None
        if events and redis_url is None and link.down is None:
            told = EventFilter(bundle=bundle, cluster=cluster)
            try:
                listed = link.call("list events", lambda c: list_kube_events(c, desired.fleet_name))
                recent = [e for e in listed if told(e)][-events:]
            except KubeError as err:
                notes.append(f"events not read: {err.reason}")
    lines = status_lines([records[bundle]], controls) if bundle in records else []
    return Explanation(row, record.deployment_id if record else "", waiting, step, objects,
                       lines, recent, "stream" if redis_url else "kubernetes",
                       notes)  # fmt: skip
