"""Embedded sync: one full pass over a fleet in this process, no Redis (`fleet sync`).

The steps, each a separate module handing data to the next (Flux's split):

1. source -> a checkout and a commit sha (`resolve_source`: a local directory as it is, or
   a URL / `--branch` through `fleet.source.git.GitSource`'s cached mirror);
2. `fleet.desired.load_desired`: load, validate, target and render *every* unit. Any
   problem raises one FleetError (file:line each) before a cluster is contacted, so a
   broken commit is applied nowhere and the clusters keep their last good revision;
3. connect to each cluster (`fleet.runtime.clusters.ClusterSet`: credentials from the
   environment, retries with backoff, an unreachable cluster is reported and the others go
   on) and read what each runs of this fleet (`fleet.engine.read_deployed`: one metadata LIST
   of the inventories per cluster);
4. loop: `fleet.rollout.planner.plan` -> `fleet.engine.deploy` the units it allows
   (`fleet.runtime.cluster_pool`: a cluster's units at the same time, up to
   `cluster_concurrency`, on a few clusters at once; waves and dependsOn order them) ->
   update the actual state from the results -> plan again as each unit finishes, until
   nothing more can be dispatched. Each unit is synced at most once per run (a failed
   unit is retried by the next run, a level-triggered scheduler's tick); an unreachable
   cluster is retried within the call with backoff;
5. `fleet.engine.remove` the bundles this fleet deployed that Git no longer wants there,
   unless the removals are a mass delete (`fleet.rollout.mass_delete`: every bundle from
   a cluster, or more than FLEET_MASS_DELETE_SHARE of the fleet's objects): then the pass
   stops before anything is written, unless `allow_mass_delete`.

Every unit written to (synced or removed) is locked first (`fleet.runtime.unit_guard`:
the workers' Redis lock when Redis is configured, else a Lease in the cluster), so two
runs, or a run and `fleet serve`'s workers, never interleave on one unit: a unit locked
by another writer is reported "locked by <holder>" (WaitApplied) and nothing is written
for it. A lock lost mid-sync stops the engine before prune and the inventory write.

A remove cannot be delayed past a newer commit here, unlike a worker's task: the run
plans from one commit and removes within the same call (retries included), so a later
commit is the next run's business; a run of an older commit next to a newer one takes
turns with it through the lock, and is the user asking for that older commit.

Every change is an event (`fleet.runtime.events.RunEvents`): a JSON line in
`events_file` (`fleet sync --events FILE`), a Kubernetes Event on the bundle's inventory
in the cluster, and, once at the end of the pass and grouped, a notification through the
definition's `notifiers`. A broken commit is a `commit.rejected` line in `events_file`.

`dry_run` does step 4 once without the rollout order (everything that would change, as
server-side dry runs and a diff per object; Secret data redacted) and writes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import redis

from fleet import config, engine
from fleet.desired import DesiredState, load_desired, pull_secrets_of
from fleet.engine import RemovalResult, UnitResult
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, KubeError
from fleet.errors import FleetError, UserError
from fleet.events import changes
from fleet.plugin.manager import FleetPlugins
from fleet.rollout.mass_delete import SYNC_ALLOW, MassDeleteRule
from fleet.rollout.planner import Dispatch, Plan, Removal, plan
from fleet.rollout.planner import dispatch_reason as _reason
from fleet.runtime.cluster_pool import ClusterPool, run_all
from fleet.runtime.clusters import ClusterLink, ClusterSet
from fleet.runtime.events import RunEvents, make_notifier, wave_tallies
from fleet.runtime.locks import LockBusy
from fleet.runtime.progressive import EmbeddedRollout
from fleet.runtime.removal_guard import embedded_verdict
from fleet.runtime.unit_guard import UnitLocks
from fleet.runtime.waits import deploy_options
from fleet.source.local import resolve_source
from fleet.spec.bundle_options import BundleOptions
from fleet.states import ActualUnit, BundleState
from fleet.status.model import FleetStatus
from fleet.status.rows import removal_row, unit_row
from fleet.targeting.units import DeploymentUnit, UnitKey

Progress = Callable[[str], None]
T = TypeVar("T")

# How long `converge` collects finished units before it plans again: a few times what its
# last plan took (nothing for a small fleet; a batch when planning 50,000 units takes a
# fifth of a second), so planning stays a small share of a pass (`ClusterPool.wait_one`).
LINGER_FACTOR = 3.0
LINGER_MAX = 1.0
OwnerCheck = Callable[[], bool]


def locked_message(holder: str) -> str:
    return f"locked by {holder} (another fleet sync or a worker is writing it); nothing applied"


def lock_failed_message(err: Exception) -> str:
    return (
        f"the unit's lock could not be taken ({err}); nothing applied. A Lease needs "
        "get/create/update/delete on leases.coordination.k8s.io in fleet-system"
    )


@dataclass
class SyncReport:
    """The outcome of one `sync_fleet` pass; `ok` is the exit-code rule."""

    status: FleetStatus
    source: str
    dry_run: bool
    results: dict[UnitKey, UnitResult] = field(default_factory=dict)
    removed: dict[UnitKey, RemovalResult] = field(default_factory=dict)
    waiting: dict[UnitKey, str] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    writes: int = 0
    requests: int = 0  # every API request of the pass (reads too): the benchmarks print it
    seconds: float = 0.0
    renders: int = 0
    units: int = 0

    @property
    def commit(self) -> str:
        return self.status.commit

    @property
    def ok(self) -> bool:
        """Every unit Ready at its desired id (a dry run: no error anywhere)."""
        if self.dry_run:
            return not self.unreachable and all(
                r.state is not BundleState.ERR_APPLIED for r in self.results.values()
            )
        return self.status.ready

    @property
    def changed(self) -> bool:
        """Something was (or, dry run, would be) written or removed."""
        if self.dry_run:
            return bool(self.removed) or any(
                r.diff or r.state is BundleState.OUT_OF_SYNC for r in self.results.values()
            )
        return self.writes > 0


def sync_fleet(
    source: str | Path,
    *,
    branch: str | None = None,
    dry_run: bool = False,
    wait: bool = True,
    clusters: Collection[str] = (),
    progress: Progress | None = None,
    env: Mapping[str, str] | None = None,
    plugins: FleetPlugins | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    concurrency: int = 4,
    cluster_concurrency: int | None = None,
    allow_mass_delete: bool = False,
    locks: UnitLocks | None = None,
    redis_url: str | None = None,
    events_file: Path | None = None,
) -> SyncReport:
    """One full pass: make every cluster run what the source's commit says (see module doc).

    Raises FleetError (nothing applied) when the source, definition, a bundle or a render
    is broken, no cluster has a credential, or Redis is configured and does not answer,
    and a `UserError` (nothing written) when the commit's removals trip the mass-delete
    guard (`fleet.rollout.mass_delete`) and `allow_mass_delete` is not set. Cluster
    problems are in the report. `locks` default: `UnitLocks.from_settings` (`redis_url`,
    `fleet sync --redis`, in place of FLEET_REDIS_URL).
    `events_file`: every event of the pass as a JSON line (appended).
    """
    started = time.monotonic()
    say = progress or (lambda line: None)
    checkout = resolve_source(source, branch)
    say(f"source {checkout.source} at {checkout.commit[:12]}")
    plugins = plugins or FleetPlugins.load()
    try:
        desired = load_desired(checkout.path, checkout.commit, plugins, clusters=clusters)
    except FleetError as err:
        if events_file is not None and not dry_run:
            problems = [str(p) for p in err.problems]
            rejected = RunEvents("", events_file=events_file)
            rejected.emit([changes.commit_rejected("", checkout.commit, problems)])
            rejected.close()
        raise
    say(
        f"{len(desired.units)} units on {len(desired.clusters)} clusters, "
        f"{desired.renders} renders ({desired.cache_hits} from cache)"
    )
    for warning in desired.images.warnings if desired.images is not None else ():
        say(f"warning: {warning}")
    for bundle, down in desired.deferred.items():
        say(f"bundle {bundle}: {down.reason}: not synced this run")
    settings = config.current() if env is None else config.Settings.from_env(env)
    settings = settings.with_redis_url(redis_url)
    own_locks = locks is None and not dry_run
    if locks is None and not dry_run:
        locks = UnitLocks.from_settings(desired.fleet_name, settings)
    events = None
    if not dry_run:
        notifiers = desired.repo.definition.notifiers
        notifier = make_notifier(notifiers, desired.fleet_name, plugins.notify, settings)
        events = RunEvents(desired.fleet_name, events_file=events_file, notifier=notifier)
    run = SyncRun(
        desired,
        say,
        retries=retries,
        backoff=backoff,
        concurrency=concurrency,
        cluster_concurrency=cluster_concurrency or settings.cluster_concurrency,
        wait_cap=settings.wait_cap,
        locks=locks,
        events=events,
    )
    try:
        run.connect(settings.env)
        run.read_actual()
        if not dry_run:
            redis = settings.redis_url if settings.redis_configured else None
            run.rollout = EmbeddedRollout.open(run, settings.env, redis, wait=wait)
        run.guard_mass_delete(settings, allow=allow_mass_delete, dry_run=dry_run)
        final = run.dry_run() if dry_run else run.converge(wait=wait)
        report = run.report(final, dry_run=dry_run)
        if events is not None:
            counts = {s.value: n for s, n in report.status.counts().items()}
            waiting = run.rollout is not None and run.rollout.only_waiting(report.status)
            states = {(u.bundle, u.cluster): u.state.value for u in report.status.units}
            waves = wave_tallies(
                desired.units, desired.repo.definition.rollout, lambda k: states.get(k, "Pending")
            )
            events.finish(
                desired.commit, counts, report.unreachable, report.ok, waiting=waiting, waves=waves
            )
    finally:
        run.close()
        if own_locks and locks is not None:
            locks.close()
        if events is not None:
            events.close()
    report.source, report.seconds = checkout.source, time.monotonic() - started
    return report


class SyncRun:
    """The state of one pass: links, what the clusters run, what this pass did."""

    def __init__(
        self,
        desired: DesiredState,
        say: Progress,
        *,
        retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
        cluster_concurrency: int = config.DEFAULT_CLUSTER_CONCURRENCY,
        wait_cap: float = config.DEFAULT_MAX_WAIT,
        locks: UnitLocks | None = None,
        events: RunEvents | None = None,
    ) -> None:
        self.desired = desired
        self.locks = locks  # None: no lock (dry runs, which write nothing)
        self.events = events  # None: a dry run (or a caller that wants no events)
        self.say = say
        self.concurrency = max(1, concurrency)  # clusters worked on at once
        self.cluster_concurrency = max(1, cluster_concurrency)  # units at once on one
        self.wait_cap = wait_cap  # the longest health wait of a unit (fleet.runtime.waits)
        specs = {c.name: c for c in desired.repo.definition.clusters}
        self.clusters = ClusterSet(
            [specs[name] for name in desired.clusters],
            retries=retries,
            backoff=backoff,
            concurrency=concurrency,
            log=say,
        )
        self.links = self.clusters.links
        self.units = {u.key: u for u in desired.units}
        self.actual: dict[UnitKey, ActualUnit] = {}
        self.results: dict[UnitKey, UnitResult] = {}
        self.removed: dict[UnitKey, RemovalResult] = {}
        self.rollout: EmbeddedRollout | None = None  # progressive delivery (not dry runs)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ clusters

    def connect(self, env: Mapping[str, str]) -> None:
        self.clusters.connect(env)

    def read_actual(self) -> None:
        """What every reachable cluster runs of this fleet's bundles (or desired ones);
        a bundle still in Git is removed the way its options say now."""
        keep = {b.name: b.options.keep_resources for b in self.desired.repo.bundles}
        found = self.clusters.read_deployed(self.desired.fleet_name, self.units)
        for key, rec in found.items():
            self.actual[key] = rec.to_actual(keep_resources=keep.get(key[0]))
        if self.events is not None and any(
            self.actual.get(u.key) is None or self.actual[u.key].deployment_id != u.deployment_id
            for u in self.desired.units
        ):
            desired = self.desired
            self.events.emit([changes.commit_detected(desired.fleet_name, desired.commit,
                              len(desired.units), len(desired.clusters))])  # fmt: skip

    def close(self) -> None:
        self.clusters.close()

    def guard_mass_delete(self, settings: config.Settings, *, allow: bool, dry_run: bool) -> None:
        """Stop before anything is written when the removals are a mass delete (a dry run
        only says so). Reads the removed bundles' inventories, and only when there are any."""
        removals = [r for r in self.plan().removals if self.links[r.cluster].down is None]
        if not removals or allow:
            return
        rule = MassDeleteRule(settings.mass_delete_share, settings.mass_delete_min_objects)
        verdict = embedded_verdict(self, removals, rule)
        if not verdict.blocked:
            return
        if dry_run:
            self.say(f"warning: {verdict.message(SYNC_ALLOW)}")
            return
        raise UserError(verdict.message(SYNC_ALLOW))

    # ------------------------------------------------------------------ the loop

    def plan(self) -> Plan:
        rollout = self.desired.repo.definition.rollout
        verifier = self.rollout.tracker if self.rollout is not None else None
        offline = [name for name, link in self.links.items() if link.down is not None]
        with self._lock:  # units finishing on other threads add to it while we plan
            actual = dict(self.actual)
        return plan(self.desired.units, actual, rollout, now=time.time(),
                    verifier=verifier, drift_check=True, offline=offline,
                    completed_at=verifier.completed_at() if verifier else None)  # fmt: skip

    def converge(self, *, wait: bool) -> Plan:
        """Plan, dispatch, and plan again each time a unit finishes, until nothing more can
        be dispatched and nothing is in flight.

        Units of one cluster run concurrently (at most `cluster_concurrency` at once, on
        at most `concurrency` clusters at once: `fleet.runtime.cluster_pool`): the planner
        only dispatches a unit whose `dependsOn` bundles are available, and re-planning as
        each unit finishes starts its dependents at once, without waiting for the rest of
        the batch. Removals and syncs of one cluster may overlap: ownership claims make
        their order irrelevant.
        """
        attempted: set[UnitKey] = set()
        removing: set[UnitKey] = set()
        with ClusterPool(self.concurrency, self.cluster_concurrency) as pool:
            while True:
                planned = time.perf_counter()
                current = self.plan()
                linger = min(LINGER_FACTOR * (time.perf_counter() - planned), LINGER_MAX)
                for removal in current.removals:
                    key = (removal.bundle, removal.cluster)
                    link = self.links[removal.cluster]
                    if key in removing or key in self.removed or link.down is not None:
                        continue
                    if pool.start(removal.cluster, partial(self._remove, link, removal, False)):
                        removing.add(key)
                for item in self._todo(current, wait):
                    key = (item.unit.bundle, item.unit.cluster)
                    if key in attempted:
                        continue
                    link = self.links[item.unit.cluster]
                    if pool.start(item.unit.cluster, partial(self._sync, link, item, False, wait)):
                        attempted.add(key)
                if not pool.running:
                    if self.rollout is not None and self.rollout.idle(current):
                        continue  # rolled back, or waited for a gate: plan again
                    return current
                pool.wait_one(linger)

    def _todo(self, current: Plan, wait: bool) -> list[Dispatch]:
        todo = [d for d in current.dispatch if self._may_go(d.unit.bundle, d.unit.cluster)]
        if wait:  # applied but not healthy yet (a previous run timed out): wait again
            held = self.rollout.tracker.held if self.rollout is not None else (lambda b: None)
            todo += [
                Dispatch(p.unit, f"wait for health ({p.state.value})", p.wave)
                for p in current.progressing
                if self._may_go(p.unit.bundle, p.unit.cluster) and held(p.unit.bundle) is None
            ]
        return todo

    def dry_run(self) -> Plan:
        """Everything that would change, ignoring the rollout order; writes nothing."""
        current = self.plan()
        todo = []
        for unit in self.desired.units:
            key = (unit.bundle, unit.cluster)
            reason = _reason(unit, self.actual.get(key), drift_check=True)
            if reason is not None and not unit.options.paused and self._may_go(*key):
                todo.append(Dispatch(unit, reason, current.wave_of(unit)))
        gone = [r for r in current.removals if self.links[r.cluster].down is None]
        self._batch(todo, gone, dry_run=True, wait=False)
        return current

    def _may_go(self, bundle: str, cluster: str) -> bool:
        return self.links[cluster].down is None

    def _batch(
        self, todo: list[Dispatch], gone: list[Removal], *, dry_run: bool, wait: bool
    ) -> None:
        """Run every removal and dispatch given, with the same bounds as `converge`."""
        work: list[tuple[str, Callable[[], None]]] = [
            (r.cluster, partial(self._remove, self.links[r.cluster], r, dry_run)) for r in gone
        ]
        work += [
            (d.unit.cluster, partial(self._sync, self.links[d.unit.cluster], d, dry_run, wait))
            for d in todo
        ]
        run_all(work, clusters=self.concurrency, per_cluster=self.cluster_concurrency)

    def _sync(self, link: ClusterLink, item: Dispatch, dry_run: bool, wait: bool) -> None:
        unit, commit = item.unit, self.desired.commit
        key = (unit.bundle, unit.cluster)
        record = self.actual.get(key)
        if record is not None and record.deployment_id == unit.deployment_id and record.commit:
            commit = record.commit  # same desired state: no new revision for a drift check
        deferred = self.desired.deferred.get(unit.bundle)
        if deferred is not None:  # its registry is down: nothing is written, the next run retries
            result = UnitResult(unit.bundle, unit.cluster, unit.deployment_id, commit,
                                BundleState.ERR_APPLIED,
                                f"{deferred.reason}; will retry at the next sync")  # fmt: skip
            with self._lock:
                self.results[key] = result
            self.say(f"{unit.cluster}/{unit.bundle}: {result.state.value}: {result.message}")
            return
        manifests = self.desired.manifests(unit)
        options, note = self.deploy_options(unit)
        try:  # from this process's credentials: in no manifest, plan, diff or history
            pull_secrets = pull_secrets_of(unit.options, self.desired.repo.definition.registries)
        except FleetError as err:
            result = UnitResult(unit.bundle, unit.cluster, unit.deployment_id, commit,
                                BundleState.ERR_APPLIED, str(err))  # fmt: skip
            with self._lock:
                self.results[key] = result
            self.say(f"{unit.cluster}/{unit.bundle}: {result.state.value}: {result.message}")
            return
        if not dry_run:
            self.say(
                f"{unit.cluster}/{unit.bundle}: syncing {unit.short_id} ({item.reason}; "
                f"wave {item.wave})"
            )

        def deploy(conn: ClusterConnection, still_owner: OwnerCheck | None) -> UnitResult:
            return engine.deploy(
                conn,
                unit.bundle,
                unit.deployment_id,
                commit,
                manifests,
                options,
                dry_run=dry_run,
                wait=wait,
                fleet=self.desired.fleet_name,
                claims=lambda: self.desired.claims(unit.cluster),
                still_owner=still_owner,
                pull_secrets=pull_secrets,
            )

        locked: str | None = None
        try:
            result = link.call(f"sync {unit.bundle}", self.locked(unit.bundle, dry_run, deploy))
            if note is not None and wait and not dry_run:
                result.message = f"{result.message} ({note})"
        except LockBusy as busy:
            locked = busy.holder
            result = UnitResult(
                unit.bundle,
                unit.cluster,
                unit.deployment_id,
                commit,
                BundleState.WAIT_APPLIED,
                locked_message(busy.holder),
            )
            if note is not None and wait and not dry_run:
                result.message = f"{result.message} ({note})"
        except ClusterUnreachable as err:
            result = UnitResult(
                unit.bundle,
                unit.cluster,
                unit.deployment_id,
                commit,
                BundleState.ERR_APPLIED,
                f"cluster unreachable: {err.reason}",
            )
        except (KubeError, redis.RedisError) as err:  # the engine reports its own: the lock's
            locked = str(err)
            result = UnitResult(unit.bundle, unit.cluster, unit.deployment_id, commit,
                                BundleState.ERR_APPLIED, lock_failed_message(err))  # fmt: skip
        # no event when nothing was done (locked) or the cluster is down (one
        # cluster.unreachable at the end of the pass says it)
        if self.events is not None and link.down is None and locked is None:
            with link.lend() as conn:  # the unit's threads may be using link.conn
                self.events.unit(record, result, conn)
        with self._lock:
            self.results[key] = result
            if not dry_run and link.down is None and locked is None:
                self.actual[key] = ActualUnit(
                    unit.deployment_id,
                    result.state,
                    commit,
                    result.message,
                    unit.options.keep_resources,
                    result.inventory_objects,
                )
        what = "would change" if dry_run and result.diff else result.message
        self.say(
            f"{unit.cluster}/{unit.bundle}: {result.state.value}: {what} "
            f"[{result.writes} writes, {result.seconds:.1f}s]"
        )

    def deploy_options(self, unit: DeploymentUnit) -> tuple[BundleOptions, str | None]:
        """The unit's options as the engine gets them: the health wait capped at
        `wait_cap` (and the note saying so, also logged), see fleet.runtime.waits."""
        return deploy_options(unit, self.wait_cap)

    def _remove(self, link: ClusterLink, removal: Removal, dry_run: bool) -> None:
        key = (removal.bundle, removal.cluster)
        record = self.actual.get(key)

        def remove(conn: ClusterConnection, still_owner: OwnerCheck | None) -> RemovalResult:
            return engine.remove(
                conn,
                removal.bundle,
                fleet=self.desired.fleet_name,
                claims=lambda: self.desired.claims(removal.cluster),
                keep_resources=removal.keep_resources,
                dry_run=dry_run,
                still_owner=still_owner,
            )

        try:
            outcome = link.call(
                f"remove {removal.bundle}", self.locked(removal.bundle, dry_run, remove)
            )
        except LockBusy as busy:
            outcome = RemovalResult(
                removal.bundle, error=f"not removed: {locked_message(busy.holder)}"
            )
        except ClusterUnreachable as err:
            outcome = RemovalResult.not_removed(removal.bundle, err)
        except (KubeError, redis.RedisError) as err:  # the engine reports its own: the lock's
            outcome = RemovalResult(
                removal.bundle, error=f"not removed: {lock_failed_message(err)}"
            )
        outcome.commit = record.commit if record is not None else ""
        if self.events is not None:
            with link.lend() as conn:
                self.events.removal(removal.cluster, outcome, conn if link.down is None else None)
        with self._lock:
            self.removed[key] = outcome
            if outcome.state is BundleState.READY:
                self.actual.pop(key, None)
        self.say(f"{removal.cluster}/{removal.bundle}: {outcome.message}")

    def locked(
        self, bundle: str, dry_run: bool, work: Callable[[ClusterConnection, OwnerCheck | None], T]
    ) -> Callable[[ClusterConnection], T]:
        """`work(conn, still_owner)` under the unit's lock (none for a dry run)."""

        def call(conn: ClusterConnection) -> T:
            if dry_run or self.locks is None:
                return work(conn, None)
            guard = self.locks.guard(bundle, conn.name, conn)
            with guard.hold():
                return work(conn, guard.still_owner)

        return call

    # ------------------------------------------------------------------ the report

    def report(self, final: Plan, *, dry_run: bool) -> SyncReport:
        status = FleetStatus(self.desired.fleet_name, self.desired.commit)
        waiting = {(w.unit.bundle, w.unit.cluster): w.reason for w in final.waiting}
        for unit in self.desired.units:
            row = unit_row(
                unit,
                self.actual.get(unit.key),
                result=self.results.get(unit.key),
                dry_run=dry_run,
                down=self.links[unit.cluster].down,
                waiting=waiting.get(unit.key),
                wave=final.wave_of(unit),
            )
            status.units.append(row)
        for (bundle, cluster), removed in self.removed.items():
            status.removed.append(removal_row(bundle, cluster, None, result=removed))
        return SyncReport(
            status,
            "",
            dry_run,
            dict(self.results),
            dict(self.removed),
            waiting,
            self.clusters.down,
            writes=self.clusters.writes,
            requests=self.clusters.requests,
            renders=self.desired.renders,
            units=len(self.desired.units),
        )
