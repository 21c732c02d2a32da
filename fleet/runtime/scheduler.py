"""The distributed scheduler: one level-triggered tick, repeated by `fleet serve`.

Each tick (DESIGN.md item 11):

1. poll the Git source when due or woken by a push webhook (`fleet.source.poll`); a new commit
   goes through `fleet.desired.load_desired`: a broken commit is reported (file:line) and
   NOT applied, the last good revision stays in force; a commit that failed to load for a
   transient reason (a render's chart server down) is loaded again at the poller's next
   attempt; a bundle whose pinned images' registry or chart registry/index is down is
   *deferred* (`DesiredState.deferred`): the commit is in force for its other bundles, the
   deferred ones' units wait (neither applied nor removed: the clusters keep what they run,
   one `unit.failed` each) and just those bundles are resolved again after a backoff
   (`fleet.runtime.deferred`, the other bundles' pins kept), until they roll out too;
2. make sure the state cache knows every cluster: a missing epoch marker means Redis lost
   its data, a missing `known` marker means a cluster's inventories were not read since,
   and `refresh_interval` re-reads them anyway; each read is a `fleet.refresh_cluster`
   task on the cluster's region queue, because only the region's workers hold credentials
   (the scheduler never needs them);
3. plan with the cached "actual" (`fleet.rollout.planner.plan`), then send the dispatch list as
   `fleet.apply_unit` tasks and the removals as `fleet.remove_unit`. A unit of a cluster
   whose view is still unknown waits (its earlier-wave peers keep later waves waiting too);
4. units at their desired id that stay NotReady are re-dispatched every `health_recheck`
   seconds (the apply is a no-op that waits for health again), and every in-sync unit gets
   a read-only `fleet.check_drift` task every `drift_interval` seconds;
5. removals that are a mass delete (`fleet.rollout.mass_delete`, counted from the cache by
   `fleet.runtime.removal_guard`) are held, not sent, and `/status` says why
   (`massDelete`), until `--allow-mass-delete` or a commit with the trailer
   `Fleet-Allow-Mass-Delete: true`.

Only the leader acts: with a `LeaderLease` (`fleet serve` always gives one) a tick of a
scheduler that does not hold its fleet's lease only reads the cache and plans, for
`/status`, and writes nothing to Redis (see `fleet.runtime.leader`).

Events (`fleet.runtime.events.SchedulerEvents`): a commit detected or rejected and the
commit's rollout result go to the fleet's Redis stream; each tick then reads the stream
(the workers' events too) and sends the notifications that are due (state changes only,
grouped across clusters, on a thread of their own: a notifier never holds a tick up).

Nothing is enqueued twice: each (kind, bundle, cluster, deployment id) is claimed in Redis
with a TTL (`StateCache.claim`) and released by the worker when done. Everything here is
recomputed from Git and Redis each tick, so a restarted `fleet serve` just carries on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from fleet import config
from fleet import config as fleet_config
from fleet.desired import DesiredState, load_desired
from fleet.errors import FleetError, TransientError
from fleet.events import changes
from fleet.events.model import Event
from fleet.plugin.manager import FleetPlugins
from fleet.rollout.mass_delete import (
    SERVE_ALLOW,
    MassDelete,
    MassDeleteRule,
    cached_verdict,
    commit_allows,
)
from fleet.rollout.planner import Plan, Removal, plan
from fleet.rollout.tracker import RollbackDue, RolloutTracker
from fleet.runtime.deferred import DeferredBundles
from fleet.runtime.events import SchedulerEvents, wave_tallies
from fleet.runtime.leader import LeaderLease
from fleet.runtime.metrics import WorkerMetrics
from fleet.runtime.serve_rollout import ServeRollout
from fleet.runtime.state_cache import CachedUnit, StateCache
from fleet.runtime.tasks import (
    APPLY_TASK,
    DRIFT_TASK,
    REFRESH_TASK,
    REMOVE_TASK,
    ROLLBACK_TASK,
    Dispatcher,
    TaskArgs,
    apply_queue,
)
from fleet.source.git import GitSource, Revision
from fleet.source.poll import Poller
from fleet.source.webhooks import PushEvent
from fleet.spec.definition import poll_interval
from fleet.targeting.units import UnitKey

log = logging.getLogger(__name__)


@dataclass
class SchedulerConfig:
    """Intervals in seconds; `poll_interval` None = the definition's `source.pollInterval`."""

    poll_interval: float | None = None
    refresh_interval: float = 300.0
    refresh_retry: float = 15.0
    drift_interval: float = 300.0
    health_recheck: float = 60.0
    task_ttl: float = (
        config.Settings().task_ttl
    )  # > visibility timeout: a claim outlives its message
    mass_delete: MassDeleteRule = field(default_factory=MassDeleteRule)  # FLEET_MASS_DELETE_*
    allow_mass_delete: bool = False  # `fleet serve --allow-mass-delete`: every commit may


@dataclass
class TickStats:
    """What the last tick saw and did (for /metrics and the logs)."""

    seconds: float = 0.0
    dispatched: dict[str, int] = field(default_factory=dict)
    unknown_clusters: list[str] = field(default_factory=list)


class Scheduler:
    """Git -> desired -> plan against the Redis cache -> tasks by name."""

    def __init__(
        self,
        source: GitSource,
        client: redis.Redis[str],
        dispatcher: Dispatcher,
        *,
        plugins: FleetPlugins | None = None,
        config: SchedulerConfig | None = None,
        clock: Callable[[], float] = time.time,
        leader: LeaderLease | None = None,
        settings: fleet_config.Settings | None = None,
    ) -> None:
        self.source = source
        self.leader = leader  # None: always act (a single scheduler, the tests' default)
        self.redis = client
        self.dispatcher = dispatcher
        self.plugins = plugins or FleetPlugins.load()
        self.config = config or SchedulerConfig()
        self.clock = clock
        self.poller = Poller(source, self.config.poll_interval or 60.0, self._on_new_revision)
        self.desired: DesiredState | None = None
        self.revision: Revision | None = None  # the revision in force (last good one)
        self.commit_error: dict[str, object] | None = None
        self.plan: Plan | None = None
        self.tracker: RolloutTracker | None = None  # this tick's (for /status)
        self.rollouts = ServeRollout(client, (settings or fleet_config.current()).env)
        self.cached: dict[UnitKey, CachedUnit] = {}
        self.known: dict[str, dict[str, object]] = {}
        self.stats = TickStats()
        self.mass_delete: MassDelete | None = None  # removals held by the guard, and why
        self.totals: dict[str, int] = {}
        self.image_scans: dict[str, int] = {}  # by result, counted by the image loop
        self.verdict_listeners: list[Callable[[], None]] = []  # told of rollout verdicts
        self.ticks = 0
        self.redis_lost = 0
        self.wake = threading.Event()
        self._desired_written: tuple[str, int] | None = None
        self.settings = settings or fleet_config.current()
        self.events: SchedulerEvents | None = None  # once the fleet's name is known
        self._commit_events: list[Event] = []  # commit detected/rejected, for the next tick
        self.deferred = DeferredBundles(clock)  # bundles a registry down holds back

    # ------------------------------------------------------------------ source

    def on_push(self, event: PushEvent) -> None:
        """Webhook: wake the loop for a push to our repository (runs on the HTTP thread)."""
        if self.poller.wants(event):
            self.poller.next_poll_at = 0.0
            self.wake.set()

    def note_events(self, events: list[Event]) -> None:
        """Events of another loop of this process (the image loop): the next leader tick
        writes them with the commit events (a list append, safe from another thread)."""
        self._commit_events.extend(events)
        self.wake.set()

    def _on_new_revision(self, revision: Revision) -> None:
        try:
            desired = load_desired(revision.path, revision.sha, self.plugins)
        except FleetError as err:
            kept = self.revision.short_sha if self.revision else "nothing"
            self.commit_error = {
                "commit": revision.sha,
                "problems": [str(p) for p in err.problems],
            }
            if isinstance(err, TransientError):
                log.warning("commit %s not loaded yet (%s); %s stays in force",
                            revision.short_sha, err.reason, kept)  # fmt: skip
                raise  # the poller offers the commit again after its backoff
            if self.events is not None:  # the stream of the fleet in force, by the leader
                problems = [str(p) for p in err.problems]
                self._commit_events.append(
                    changes.commit_rejected(self.events.ns, revision.sha, problems)
                )
            log.error(
                "commit %s is not applied (%s); %s stays in force until a fixed commit arrives",
                revision.short_sha,
                "; ".join(str(p) for p in err.problems[:3]),
                kept,
            )
            return
        self.desired, self.revision, self.commit_error = desired, revision, None
        self._commit_events += self.deferred.begin(desired)
        events = self._events(desired)
        events.configure(desired.repo.definition.notifiers)
        units, clusters = len(desired.units), len(desired.clusters)
        self._commit_events.append(  # written by the leader's tick (a follower writes nothing)
            changes.commit_detected(desired.fleet_name, revision.sha, units, clusters)
        )
        if self.config.poll_interval is None:
            self.poller.interval = float(poll_interval(desired.repo.definition.source))
        log.info(
            "commit %s in force: %d units on %d clusters; dispatching what differs",
            revision.short_sha,
            len(desired.units),
            len(desired.clusters),
        )

    def _retry_deferred(self) -> None:
        """Resolve the deferred bundles of the commit in force again (`DeferredBundles`);
        those that resolve now roll out."""
        desired, revision = self.desired, self.revision
        assert desired is not None and revision is not None
        try:
            again = self.deferred.retry(desired, self.plugins)
        except FleetError as err:  # transient (a render), or the tag proved not to exist
            self.commit_error = {"commit": revision.sha, "problems": [str(p) for p in err.problems]}
            log.warning("deferred bundles of %s not loaded (%s); tried again later",
                        revision.short_sha, err.reason)  # fmt: skip
            return
        self.desired, self.commit_error, self._desired_written = again, None, None
        self._commit_events += self.deferred.report(again)

    # -------------------------------------------------------------------- tick

    def tick(self) -> TickStats:
        """One pass; see the module docstring. Redis and broker errors propagate."""
        started = self.clock()
        self.wake.clear()
        if self.poller.due:
            self.poller.poll_once()
        stats = TickStats()
        if self.deferred.due(self.desired):  # a follower too: it plans for /status
            self._retry_deferred()
        desired, revision = self.desired, self.revision
        if desired is None or revision is None:
            self.stats = stats
            return stats
        cache = StateCache(self.redis, desired.fleet_name)
        if self.leader is not None and not self.leader.ensure(desired.fleet_name):
            self._commit_events.clear()  # the leader reports the commits
            return self._follow(cache, desired, stats, started)
        if cache.ensure_epoch():
            if self.ticks:
                self.redis_lost += 1
                log.warning(
                    "Redis lost its data; re-reading the inventories of %d clusters",
                    len(desired.clusters),
                )
            self._desired_written = None
        if self._desired_written != (revision.sha, self.redis_lost):
            cache.set_desired(
                {(u.bundle, u.cluster): u.deployment_id for u in desired.units}, commit=revision.sha
            )
            if desired.pins is not None:  # workers render the charts the ids were made of
                cache.set_chart_pins(revision.sha, desired.pins.all())
            if desired.images is not None:  # and the digests of the images they pin
                cache.set_image_pins(revision.sha, desired.images.all())
            # and the bundles deferred (a registry down), which workers do not resolve
            cache.set_deferred(revision.sha, desired.deferred_reasons())
            # and a worker whose helm or kustomize differs says so (its ids differ)
            cache.set_renderers(revision.sha, {u.bundle: u.renderer for u in desired.units})
            self._desired_written = (revision.sha, self.redis_lost)

        now = self.clock()
        regions = {c.name: c.effective_region for c in desired.repo.definition.clusters}
        self.known = cache.known(desired.clusters)
        for cluster in desired.clusters:
            seen = self.known.get(cluster)
            if seen is None:
                stats.unknown_clusters.append(cluster)
            age = now - float(str(seen["at"])) if seen is not None else 0.0
            stale = seen is None or age > self.config.refresh_interval
            retry = seen is not None and seen.get("error") and age > self.config.refresh_retry
            if stale or retry:
                self._send(cache, stats, REFRESH_TASK, "refresh", "*", cluster, "", regions)

        self.cached = cache.actual(desired.clusters)
        tracker = self.rollouts.tracker(desired, revision.sha, now)
        current = plan(desired.units, self.cached, desired.repo.definition.rollout, now=now,
                       verifier=tracker, offline=unreachable(self.known),
                       completed_at=tracker.completed_at(),
                       deferred=self.deferred.reasons(desired))  # fmt: skip
        self.plan, self.tracker = current, tracker
        ready = {c for c, seen in self.known.items()}
        for item in current.dispatch:
            unit = item.unit
            if unit.cluster in ready:
                self._send(cache, stats, APPLY_TASK, "apply", unit.bundle, unit.cluster,
                           unit.deployment_id, regions)  # fmt: skip
        for prog in current.progressing:
            rec = self.cached.get((prog.unit.bundle, prog.unit.cluster))
            if tracker.held(prog.unit.bundle) is not None:
                continue  # its rollout failed: it is rolled back or waits, not re-applied
            if rec is not None and now - rec.updated_at > self.config.health_recheck:
                self._send(cache, stats, APPLY_TASK, "apply", prog.unit.bundle,
                           prog.unit.cluster, prog.unit.deployment_id, regions)  # fmt: skip
        for removal in self._guard_removals(current.removals, desired):
            seen = self.known.get(removal.cluster)
            if seen is not None and not seen.get("error"):
                self._send(cache, stats, REMOVE_TASK, "remove", removal.bundle, removal.cluster,
                           "", regions, keep_resources=removal.keep_resources)  # fmt: skip
        checked = cache.drift_checked()

        def send_rollback(due: RollbackDue, cluster: str) -> bool:
            unit = desired.by_key[(due.bundle, cluster)]
            why = f"wave {due.wave}: {due.reason}"  # as the history records it (and sync)
            return self._send(cache, stats, ROLLBACK_TASK, "rollback", due.bundle, cluster,
                              unit.deployment_id, regions, reason=why,
                              revision=due.revision)  # fmt: skip

        def send_health(bundle: str, cluster: str, deployment_id: str) -> None:
            self._send(cache, stats, DRIFT_TASK, "drift", bundle, cluster, deployment_id,
                       regions, health=True)  # fmt: skip

        verdicts = self.rollouts.after_plan(
            tracker, desired, self.cached, send_rollback, send_health, checked, now
        )
        self._commit_events += verdicts
        if verdicts:  # a wave passed or failed: the image loop's promotion may move on
            for listener in self.verdict_listeners:
                listener()
        for unit in current.in_sync:
            last = checked.get(f"{unit.bundle}/{unit.cluster}", 0.0)
            if now - last > self.config.drift_interval:
                self._send(cache, stats, DRIFT_TASK, "drift", unit.bundle, unit.cluster,
                           unit.deployment_id, regions)  # fmt: skip
        self._events_tick(desired, revision, now)
        self.ticks += 1
        stats.seconds = self.clock() - started
        self.stats = stats
        return stats

    def _events(self, desired: DesiredState) -> SchedulerEvents:
        if self.events is None or self.events.ns != desired.fleet_name:
            if self.events is not None:
                self.events.close()
            self.events = SchedulerEvents(
                self.redis, desired.fleet_name, self.plugins.notify, self.settings
            )
            self.events.begin()
        return self.events

    def _events_tick(self, desired: DesiredState, revision: Revision, now: float) -> None:
        """The leader's reporting: render and Git metrics, the commit's events and rollout
        result (once), then the notifications that are due."""
        metrics = WorkerMetrics(self.redis)  # pushed like the workers' (leader only)
        metrics.rendered(desired.fleet_name, *desired.cache.take_stats())
        metrics.git_fetched(desired.fleet_name, *self.poller.take_fetch_stats())
        events = self._events(desired)
        if self._commit_events:
            events.emit(self._commit_events)
            self._commit_events = []
        counts: dict[str, int] = {}
        settled = True
        states: dict[UnitKey, str] = {}
        for unit in desired.units:
            rec = self.cached.get(unit.key)
            current = rec is not None and (
                rec.deployment_id == unit.deployment_id or rec.commit == revision.sha
            )
            state = rec.state.value if rec is not None and current else "Pending"
            states[unit.key] = state
            counts[state] = counts.get(state, 0) + 1
            settled = settled and state in ("Ready", "Modified")
        rollout = desired.repo.definition.rollout
        events.rollout(
            revision.sha,
            counts,
            settled,
            lambda: wave_tallies(desired.units, rollout, lambda key: states[key]),
        )
        events.tick(now)

    def _guard_removals(self, removals: list[Removal], desired: DesiredState) -> list[Removal]:
        """The removals to send: none while they are a mass delete that nobody allowed
        (`fleet.rollout.mass_delete`); `self.mass_delete` says why for /status."""
        revision = self.revision
        allowed = self.config.allow_mass_delete or (
            revision is not None and commit_allows(revision.full_message)
        )
        verdict = None
        if removals and not allowed:
            keys = [u.key for u in desired.units]
            verdict = cached_verdict(
                desired.fleet_name, removals, self.cached, keys, self.config.mass_delete
            )
        if verdict is None or not verdict.blocked:
            self.mass_delete = None
            return removals
        if self.mass_delete is None or self.mass_delete.reasons != verdict.reasons:
            log.error("%s", verdict.message(SERVE_ALLOW))
        self.mass_delete = verdict
        return []

    def _follow(
        self, cache: StateCache, desired: DesiredState, stats: TickStats, started: float
    ) -> TickStats:
        """Another scheduler leads: read the cache and plan for /status, write nothing."""
        self.known = cache.known(desired.clusters)
        self.cached = cache.actual(desired.clusters)
        rollout = desired.repo.definition.rollout
        tracker = self.rollouts.tracker(desired, self.revision.sha if self.revision else "",
                                        self.clock())  # fmt: skip
        tracker.dirty.clear()  # a follower writes nothing
        self.plan = plan(desired.units, self.cached, rollout, now=self.clock(), verifier=tracker,
                         offline=unreachable(self.known),
                         completed_at=tracker.completed_at(),
                         deferred=self.deferred.reasons(desired))  # fmt: skip
        self.tracker = tracker
        self._desired_written = None  # when we lead again, write the desired map at once
        self.ticks += 1
        stats.seconds = self.clock() - started
        self.stats = stats
        return stats

    def _send(
        self,
        cache: StateCache,
        stats: TickStats,
        task: str,
        kind: str,
        bundle: str,
        cluster: str,
        deployment_id: str,
        regions: dict[str, str | None],
        *,
        keep_resources: bool | None = None,
        reason: str | None = None,
        revision: str | None = None,
        health: bool = False,
    ) -> bool:
        """Send one task unless the same one is queued or in flight; True when sent."""
        if not cache.claim(kind, bundle, cluster, deployment_id, self.config.task_ttl):
            return False  # queued or in flight already
        assert self.revision is not None
        kwargs: dict[str, str | bool] = {
            "fleet": cache.ns,
            "repo_url": self.source.url,
            "commit": self.revision.sha,
            "bundle": bundle,
            "cluster": cluster,
            "deployment_id": deployment_id,
        }
        if keep_resources is not None:
            kwargs["keep_resources"] = keep_resources
        if reason is not None:
            kwargs["reason"] = reason
        if revision is not None:
            kwargs["revision"] = revision
        if health:
            kwargs["health"] = True
        if kind == "refresh":
            kwargs = {
                k: v for k, v in kwargs.items() if k in ("fleet", "repo_url", "commit", "cluster")
            }
        args: TaskArgs = kwargs
        try:
            self.dispatcher.send(task, args, apply_queue(regions.get(cluster)))
        except Exception:
            cache.release(kind, bundle, cluster, deployment_id)
            raise
        log.debug("sent %s %s/%s %s", task, cluster, bundle, deployment_id[:12])
        stats.dispatched[task] = stats.dispatched.get(task, 0) + 1
        self.totals[task] = self.totals.get(task, 0) + 1
        return True


def unreachable(known: dict[str, dict[str, object]]) -> list[str]:
    """Clusters whose last inventory refresh failed (a worker could not reach them): the
    planner's `offline` set. A cluster never refreshed yet is unknown, not offline."""
    return [cluster for cluster, seen in known.items() if seen.get("error")]
