"""The work behind each distributed task: one (bundle, cluster), from names to a result.

`workers/tasks.py` is a thin Celery layer; everything it does is a call to one method of
`UnitWorker` here, so the logic is testable without Celery, and the cluster work is the
`fleet.engine` verbs (`deploy`, `remove`, `read_deployed`, drift checks) exactly as the
embedded `fleet sync` calls them.

Every method is idempotent and keyed by (bundle, cluster, deployment id):

- a task whose id is not what its commit produces, or no longer what the scheduler wants
  (`StateCache.desired_id`), is skipped as superseded, so a late or redelivered task can
  never roll a cluster back; except when the scheduler still wants that id and made it
  with another renderer identity (`StateCache.renderers`: another helm or kustomize
  version, plugin version or chart pin): that is ErrApplied naming both, since every
  retry on this worker would compute the same other id;
- a remove task (retried while its cluster was unreachable, or redelivered after a worker
  died) is checked against the desired state *now* (the scheduler's `desired` map and the
  commit it was written for), before it takes the lock and again under the lock: when a
  later commit deploys the bundle to that cluster again, or the desired state is unknown
  (Redis lost it), the removal is skipped as superseded: logged, reported, nothing deleted;
- the lock's `still_owner` goes to the engine, which stops before prune and before the
  inventory write if another writer took the lock meanwhile;
- the (bundle, cluster) lock (`fleet.runtime.locks`) makes duplicates take turns; a sync of the
  same id again is a no-op (no writes), so a redelivered apply changes nothing;
- the outcome is written to the state cache (what the scheduler plans with) and the
  dedupe marker is released (at once, or after a cooldown when the unit failed, so a
  broken unit is retried at a calm pace rather than every tick).

Every change is an event (`fleet.runtime.events.WorkerEvents`): the fleet's Redis stream
and a Kubernetes Event on the bundle's inventory in the cluster; the scheduler turns the
stream into notifications.

`ClusterUnreachable` propagates: the task retries it with backoff (`report_unreachable`
first puts "unreachable, will retry in Ns" in the cache for `/status`).

A task names a unit by (repository URL, commit sha, bundle, cluster, deployment id), never
by its manifests, so the worker derives the unit again from Git
(`fleet.runtime.revisions.RevisionLoader`) and renders only the unit asked for. The same
commit always gives the same ids, so a task whose id does not match is stale, not a bug.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

import redis

from fleet import config, engine
from fleet.desired import DesiredState, pull_secrets_of
from fleet.engine.history import one_line
from fleet.engine.kube import ClusterConnection, ClusterUnreachable
from fleet.errors import FleetError
from fleet.manifest import Manifest
from fleet.rollout.rebuild import RolledBack
from fleet.runtime.events import Cluster, WorkerEvents
from fleet.runtime.link_cache import LinkCache
from fleet.runtime.locks import DEFAULT_TTL, UnitLock
from fleet.runtime.metrics import WorkerMetrics
from fleet.runtime.revisions import RevisionLoader
from fleet.runtime.rollout_store import RedisRolloutStore, read_rolled_back
from fleet.runtime.state_cache import CachedUnit, StateCache
from fleet.runtime.waits import deploy_options
from fleet.spec.bundle_options import BundleOptions
from fleet.states import BundleState
from fleet.targeting.units import DeploymentUnit

log = logging.getLogger(__name__)
T = TypeVar("T")

FAILURE_COOLDOWN = config.DEFAULT_FAILURE_COOLDOWN  # before a failed unit is dispatched again


@dataclass(frozen=True)
class UnitJob:
    """What a task message carries: names and hashes only."""

    fleet: str  # the fleet's name: the namespace of its keys in Redis
    repo_url: str
    commit: str
    bundle: str
    cluster: str
    deployment_id: str = ""


@dataclass(frozen=True)
class TaskOutcome:
    """The JSON-able result of a task (the Celery result and the worker's log line)."""

    bundle: str
    cluster: str
    deployment_id: str
    state: str
    message: str
    by: str
    writes: int = 0
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class UnitWorker:
    """Applies, removes, drift-checks and refreshes units for the tasks of one worker."""

    def __init__(
        self,
        client: redis.Redis[str],
        *,
        name: str,
        loader: RevisionLoader | None = None,
        env: Mapping[str, str] | None = None,
        lock_ttl: float = DEFAULT_TTL,
        cooldown: float = FAILURE_COOLDOWN,
        wait_cap: float | None = None,
    ) -> None:
        self.redis = client
        self.name = name
        self.loader = loader or RevisionLoader()
        settings = config.current() if env is None else config.Settings.from_env(env)
        self.env = settings.env
        # the longest health wait of a unit (fleet.runtime.waits): below the visibility
        # timeout, so a task is never redelivered while this worker still waits
        self.wait_cap = settings.wait_cap if wait_cap is None else wait_cap
        self.lock_ttl = lock_ttl
        self.cooldown = cooldown
        self.events = WorkerEvents(client, name=name, max_len=settings.events_max_len)
        self.metrics = WorkerMetrics(client)  # served by fleet serve (fleet.runtime.metrics)
        self.links = LinkCache(self.env)  # kept between tasks: pools and health watches

    # ------------------------------------------------------------------ tasks

    def apply(self, job: UnitJob) -> TaskOutcome:
        """Make the cluster run the unit at `job.deployment_id` and wait for its health."""
        current = self._current(job, "apply")
        if isinstance(current, TaskOutcome):
            return current
        rev, cache, unit, manifests = current
        options, note = self.deploy_options(unit)
        try:  # from this worker's credentials: in no manifest, Redis key, event or history
            pull_secrets = pull_secrets_of(unit.options, rev.repo.definition.registries, self.env)
        except FleetError as err:
            return self.report_failure(job, "apply", str(err))
        lock = self._lock(job)
        log.info(
            "%s/%s: applying %s (%s)",
            job.cluster,
            job.bundle,
            job.deployment_id[:12],
            job.commit[:12],
        )
        with lock.hold():
            previous = cache.actual([job.cluster]).get((job.bundle, job.cluster))
            result = self._call(
                rev,
                job.cluster,
                f"sync {job.bundle}",
                lambda conn: engine.deploy(
                    conn,
                    job.bundle,
                    job.deployment_id,
                    job.commit,
                    manifests,
                    options,
                    fleet=rev.fleet_name,
                    claims=lambda: rev.claims(job.cluster),
                    still_owner=lock.still_owner,
                    pull_secrets=pull_secrets,
                ),
            )
        if result.lost_lock:  # the new holder reports the unit; do not overwrite its record
            cache.release("apply", job.bundle, job.cluster, job.deployment_id)
            return self._outcome(job, result.state, result.message, writes=result.writes)
        message = result.message if note is None else f"{result.message} ({note})"
        self.events.unit(job.fleet, rev.fleet_name, previous, result, self._on(rev, job.cluster))
        self.metrics.reconciled(job.fleet, job.bundle, job.cluster, result.state.value,
                                result.seconds, pruned=len(result.pruned))  # fmt: skip
        record = CachedUnit(
            job.deployment_id,
            result.state,
            job.commit,
            message,
            unit.options.keep_resources,
            result.inventory_objects,
            by=self.name,
        )
        cache.record(job.bundle, job.cluster, record)
        failed = result.state is BundleState.ERR_APPLIED
        cache.release(
            "apply", job.bundle, job.cluster, job.deployment_id, self.cooldown if failed else 0
        )
        cache.mark_drift_checked(job.bundle, job.cluster)
        return self._outcome(job, result.state, message, writes=result.writes)

    def rollback(self, job: UnitJob, reason: str, revision: str = "") -> TaskOutcome:
        """Put the revision before `job.deployment_id` back (its exact manifests, from the
        cluster's history: `fleet.engine.rollback`): the wave it was in failed."""
        cache = StateCache(self.redis, job.fleet)
        rev = self._load(cache, job.repo_url, job.commit)
        lock = self._lock(job)
        with lock.hold():
            current = cache.actual([job.cluster]).get((job.bundle, job.cluster))
            if current is not None and current.deployment_id != job.deployment_id:
                cache.release("rollback", job.bundle, job.cluster, job.deployment_id)
                return self._outcome(job, current.state,
                                     "runs another revision already: nothing to roll back",
                                     skipped=True)  # fmt: skip
            result = self._call(
                rev,
                job.cluster,
                f"rollback {job.bundle}",
                lambda conn: engine.rollback(
                    conn,
                    job.bundle,
                    rev.fleet_name,
                    reason=reason,
                    details={"revision": revision, "commit": job.commit},
                    claims=lambda: rev.claims(job.cluster),
                    still_owner=lock.still_owner,
                ),
            )
        if revision:  # what a refresh after a Redis wipe finds in the history, at once
            store = RedisRolloutStore(self.redis, job.fleet)
            store.add_rolled_back({job.bundle: {revision: one_line(reason)}})
        record = CachedUnit(result.deployment_id, result.state, result.commit, result.message,
                            by=self.name)  # fmt: skip
        cache.record(job.bundle, job.cluster, record)
        cache.release("rollback", job.bundle, job.cluster, job.deployment_id)
        message = f"rolled back to {result.deployment_id[:12]}: {result.message}"
        return self._outcome(job, result.state, message, writes=result.writes)

    def deploy_options(self, unit: DeploymentUnit) -> tuple[BundleOptions, str | None]:
        """The unit's options as the engine gets them: the health wait capped at
        `wait_cap` (and the note saying so, also logged), see fleet.runtime.waits."""
        return deploy_options(unit, self.wait_cap)

    def remove(self, job: UnitJob, keep_resources: bool) -> TaskOutcome:
        """The bundle left Git (or this cluster): delete what fleet applied, then its inventory."""
        cache = StateCache(self.redis, job.fleet)
        rev = self._load(cache, job.repo_url, job.commit)
        wanted = self._still_wanted(rev, cache, job)
        if wanted is not None:
            return self._superseded_removal(cache, job, wanted)
        lock = self._lock(job)
        with lock.hold():
            wanted = self._still_wanted(rev, cache, job)  # again, right before deleting
            if wanted is not None:
                return self._superseded_removal(cache, job, wanted)
            now = self._revision_in_force(rev, cache, job)
            removed = self._call(
                rev,
                job.cluster,
                f"remove {job.bundle}",
                lambda conn: engine.remove(
                    conn,
                    job.bundle,
                    fleet=rev.fleet_name,
                    claims=lambda: now.claims(job.cluster),
                    keep_resources=keep_resources,
                    still_owner=lock.still_owner,
                ),
            )
        self.events.removal(job.fleet, rev.fleet_name, job.cluster, removed,
                            self._on(rev, job.cluster))  # fmt: skip
        if removed.state is BundleState.ERR_APPLIED:
            return self._failed_removal(cache, job, removed.message)
        cache.forget(job.bundle, job.cluster)
        cache.release("remove", job.bundle, job.cluster, "")
        return self._outcome(job, removed.state, removed.message)

    def check_drift(self, job: UnitJob, health: bool = False) -> TaskOutcome:
        """Read-only drift check; Modified goes to the cache (correctDrift then re-applies).
        With `health` (a wave being verified) the health rules judge the live objects too,
        and NotReady goes to the cache (the rollout tracker fails the wave on it)."""
        current = self._current(job, "drift")
        if isinstance(current, TaskOutcome):
            return current
        rev, cache, unit, manifests = current
        seen = self._call(
            rev,
            job.cluster,
            f"drift check {job.bundle}",
            lambda conn: engine.inspect(
                conn,
                job.bundle,
                job.deployment_id,
                manifests,
                unit.options,
                health=health,
                fleet=rev.fleet_name,
            ),
        )
        items, state = seen.drift, seen.state
        message = "; ".join(str(i) for i in items[:3]) if items else "no drift"
        if state is BundleState.NOT_READY:
            message = seen.message
        previous = cache.actual([job.cluster]).get((job.bundle, job.cluster))
        self.events.drift(job.fleet, rev.fleet_name, previous, job.bundle, job.cluster,
                          job.deployment_id, items, self._on(rev, job.cluster))  # fmt: skip
        if state is BundleState.MODIFIED and (previous is None or previous.state is not state):
            self.metrics.drift_detected(job.fleet, job.bundle, job.cluster)
        same = previous is not None and previous.deployment_id == job.deployment_id
        changed = state is BundleState.MODIFIED or (
            previous is not None and previous.state is BundleState.MODIFIED
        )
        if health:  # a verified wave: any change of health is news for the tracker
            changed = previous is not None and previous.state is not state
        if previous is not None and same and changed:
            cache.record(
                job.bundle,
                job.cluster,
                replace(previous, state=state, message=message, updated_at=0.0, by=self.name),
            )
        cache.mark_drift_checked(job.bundle, job.cluster)
        cache.release("drift", job.bundle, job.cluster, job.deployment_id)
        return self._outcome(job, state, message)

    def refresh(self, job: UnitJob) -> TaskOutcome:
        """One LIST of the cluster's inventories replaces its view in the cache; one LIST
        of its rolled-back revisions is added to what Redis knows was rolled back
        (`fleet.rollout.rebuild`), before the view, so a scheduler that sees the cluster
        known (after a Redis wipe) also sees what it must not roll out there again."""
        cache = StateCache(self.redis, job.fleet)
        rev = self._load(cache, job.repo_url, job.commit)
        listed_at = time.time()
        wanted = {bundle for bundle, cluster in rev.by_key if cluster == job.cluster}

        def read(conn: ClusterConnection) -> tuple[dict[str, engine.DeployedBundle], RolledBack]:
            deployed = engine.read_deployed(conn, fleet=rev.fleet_name, wanted=wanted)
            return deployed, read_rolled_back(conn, rev.fleet_name)

        try:
            deployed, rolled_back = self._call(rev, job.cluster, "read inventories", read)
        except FleetError as err:  # unreachable or no credential: known, with the error
            message = err.reason
            if isinstance(err, ClusterUnreachable):
                self.events.reachable(job.fleet, job.cluster, message)
            cache.replace_cluster(job.cluster, {}, error=message)
            cache.release("refresh", "*", job.cluster, "")
            log.warning(
                "%s: inventories not read (%s); the scheduler will ask again", job.cluster, message
            )
            return self._outcome(job, BundleState.ERR_APPLIED, message)
        added = RedisRolloutStore(self.redis, job.fleet).add_rolled_back(rolled_back)
        if added:
            log.info("%s: %d rolled-back revisions found in its history", job.cluster, added)
        units = {b: CachedUnit.of(rec.to_actual(), by="inventory") for b, rec in deployed.items()}
        cache.replace_cluster(job.cluster, units, listed_at=listed_at)
        cache.release("refresh", "*", job.cluster, "")
        return self._outcome(job, BundleState.READY, f"{len(units)} bundles deployed")

    def report_unreachable(
        self, job: UnitJob, kind: str, error: ClusterUnreachable, retry_in: float | None
    ) -> TaskOutcome:
        """Put "unreachable, will retry in Ns" (or "giving up") in the cache for /status."""
        reason = error.reason
        then = f"will retry in {retry_in:.0f}s" if retry_in is not None else "gave up for now"
        self.events.reachable(job.fleet, job.cluster, reason)  # cluster.unreachable, once
        return self.report_failure(
            job,
            kind,
            f"cluster {job.cluster} unreachable ({reason}), {then}",
            final=retry_in is None,
            event=False,
        )

    def report_failure(
        self, job: UnitJob, kind: str, message: str, *, final: bool = True, event: bool = True
    ) -> TaskOutcome:
        """A task that could not do its work: ErrApplied in the cache (and `unit.failed`,
        unless `event` is off: an unreachable cluster is one `cluster.unreachable`); `final`
        starts the cooldown after which the scheduler dispatches the unit again."""
        log.warning("%s/%s: %s", job.cluster, job.bundle, message)
        cache = StateCache(self.redis, job.fleet)
        if kind in ("apply", "remove"):
            previous = cache.actual([job.cluster]).get((job.bundle, job.cluster))
            if event:
                self.events.failure(job.fleet, previous, job.bundle, job.cluster, job.commit,
                                    job.deployment_id, message)  # fmt: skip
            cache.record(
                job.bundle,
                job.cluster,
                CachedUnit(
                    previous.deployment_id if previous else "",
                    BundleState.ERR_APPLIED,
                    previous.commit if previous else "",
                    message,
                    previous.keep_resources if previous else False,
                    by=self.name,
                ),
            )
        if final:
            cache.release(kind, job.bundle if kind != "refresh" else "*", job.cluster,
                          job.deployment_id, self.cooldown)  # fmt: skip
        return self._outcome(job, BundleState.ERR_APPLIED, message)

    # ---------------------------------------------------------------- helpers

    def _lock(self, job: UnitJob) -> UnitLock:
        return UnitLock(
            self.redis, job.fleet, job.bundle, job.cluster, self.lock_ttl, holder=self.name
        )

    def _still_wanted(self, rev: DesiredState, cache: StateCache, job: UnitJob) -> str | None:
        """Why a removal must not happen now (the bundle is wanted on the cluster again, or
        the desired state is unknown), or None when it may."""
        if (job.bundle, job.cluster) in rev.by_key:
            return f"commit {job.commit[:12]} deploys {job.bundle} to {job.cluster}"
        current = cache.desired_commit()
        if current is None:
            return "the desired state is unknown (Redis lost it?); the scheduler decides again"
        if cache.desired_id(job.bundle, job.cluster) is not None:
            return f"commit {current[:12]} deploys {job.bundle} to {job.cluster} again"
        return None

    def _revision_in_force(
        self, rev: DesiredState, cache: StateCache, job: UnitJob
    ) -> DesiredState:
        """The revision the scheduler plans with now (a late removal hands objects over to
        the bundles that want them *now*, not at the task's older commit)."""
        current = cache.desired_commit()
        if current is None or current == job.commit:
            return rev
        return self._load(cache, job.repo_url, current)

    def _superseded_removal(self, cache: StateCache, job: UnitJob, why: str) -> TaskOutcome:
        message = f"remove superseded: {why}; nothing deleted"
        previous = cache.actual([job.cluster]).get((job.bundle, job.cluster))
        if previous is not None:
            cache.record(
                job.bundle,
                job.cluster,
                replace(previous, message=message, updated_at=0.0, by=self.name),
            )
        cache.release("remove", job.bundle, job.cluster, "")
        return self._outcome(job, BundleState.PENDING, message, skipped=True)

    def _current(
        self, job: UnitJob, kind: str
    ) -> tuple[DesiredState, StateCache, DeploymentUnit, list[Manifest]] | TaskOutcome:
        """The job's revision, cache, unit and manifests; or the skip outcome of a stale job
        (one whose deployment id the scheduler no longer wants: it must not roll back)."""
        cache = StateCache(self.redis, job.fleet)
        rev = self._load(cache, job.repo_url, job.commit)
        mismatch = self._renderer_mismatch(rev, cache, job)
        if mismatch is not None:  # not stale: every retry would give the same other id
            return self.report_failure(job, kind, mismatch)
        stale = self._stale(rev, cache, job)
        if stale is not None:
            cache.release(kind, job.bundle, job.cluster, job.deployment_id)
            return self._outcome(job, BundleState.PENDING, stale, skipped=True)
        unit = rev.by_key[(job.bundle, job.cluster)]
        manifests = rev.manifests(unit)
        self.metrics.rendered(job.fleet, *rev.cache.take_stats())
        return rev, cache, unit, manifests

    def _load(self, cache: StateCache, url: str, commit: str) -> DesiredState:
        """The commit as the scheduler targeted it: its chart pins and image digests."""
        return self.loader.load(url, commit, cache.chart_pins(commit), cache.image_pins(commit),
                                cache.deferred(commit))  # fmt: skip

    def _renderer_mismatch(self, rev: DesiredState, cache: StateCache, job: UnitJob) -> str | None:
        """Why this worker cannot compute the id the scheduler still wants for the job:
        it renders the bundle with other renderer or tool versions (another helm or
        kustomize, another plugin version, other chart pins), which are part of the id.
        None when the ids agree, or differ for another reason (a stale task)."""
        unit = rev.by_key.get((job.bundle, job.cluster))
        if unit is None or unit.deployment_id == job.deployment_id:
            return None
        if cache.desired_id(job.bundle, job.cluster) != job.deployment_id:
            return None  # the scheduler moved on: stale, skipped as before
        theirs = cache.renderers(job.commit).get(job.bundle)
        if theirs is None or theirs == unit.renderer:
            return None
        return (
            f"worker {self.name} renders {job.bundle} with {unit.renderer!r}, the scheduler "
            f"with {theirs!r}: the deployment ids differ ({unit.short_id} here, "
            f"{job.deployment_id[:12]} wanted); give the workers and the scheduler the same "
            "helm, kustomize and renderer plugin versions"
        )

    def _stale(self, rev: DesiredState, cache: StateCache, job: UnitJob) -> str | None:
        unit = rev.by_key.get((job.bundle, job.cluster))
        if unit is None:
            return f"commit {job.commit[:12]} does not deploy {job.bundle} to {job.cluster}"
        if unit.deployment_id != job.deployment_id:
            return f"commit {job.commit[:12]} gives {unit.short_id}, not {job.deployment_id[:12]}"
        wanted = cache.desired_id(job.bundle, job.cluster)
        if wanted is not None and wanted != job.deployment_id:
            return f"superseded by {wanted[:12]}"
        return None

    def _call(
        self, rev: DesiredState, cluster: str, what: str, fn: Callable[[ClusterConnection], T]
    ) -> T:
        """`fn(conn)` once on the process's kept connection to `cluster`
        (`fleet.runtime.link_cache`); ClusterUnreachable propagates (the task retries with
        backoff) and the connection is not lent again."""
        with self.links.lend(rev.cluster_spec(cluster)) as link:
            answer = link.call(what, fn)
        self.events.reachable(rev.fleet_name, cluster, None)  # cluster.recovered, once
        return answer

    def _on(self, rev: DesiredState, cluster: str) -> Cluster:
        """Run a function on a fresh connection to `cluster` (the events' Kubernetes Events)."""
        return lambda fn: self._call(rev, cluster, "record events", fn)

    def _failed_removal(self, cache: StateCache, job: UnitJob, message: str) -> TaskOutcome:
        previous = cache.actual([job.cluster]).get((job.bundle, job.cluster))
        if previous is not None:
            cache.record(
                job.bundle,
                job.cluster,
                replace(
                    previous,
                    state=BundleState.ERR_APPLIED,
                    message=message,
                    updated_at=0.0,
                    by=self.name,
                ),
            )
        cache.release("remove", job.bundle, job.cluster, "", self.cooldown)
        return self._outcome(job, BundleState.ERR_APPLIED, message)

    def _outcome(
        self,
        job: UnitJob,
        state: BundleState,
        message: str,
        *,
        writes: int = 0,
        skipped: bool = False,
    ) -> TaskOutcome:
        log.info("%s/%s: %s: %s", job.cluster, job.bundle, state.value, message)
        return TaskOutcome(
            job.bundle,
            job.cluster,
            job.deployment_id,
            state.value,
            message,
            self.name,
            writes,
            skipped,
        )
