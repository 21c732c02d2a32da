"""How each runtime wires `fleet.events`: one object per runtime, a few call sites each.

- `RunEvents` (`fleet sync`): unit and removal results -> events -> the JSON-lines file
  (`--events FILE`), the cluster's Kubernetes Events, and the notifier, which sends at the
  end of the pass (`finish`), once, grouped.
- `WorkerEvents` (`fleet worker`): results -> events -> the fleet's Redis stream and the
  cluster's Kubernetes Events; it also remembers which clusters are unreachable
  (`fleet:<ns>:unreachable`) and when each was last reached (`fleet:<ns>:contact`), so
  `cluster.unreachable` / `cluster.recovered` are sent once per outage by whichever worker
  sees it first, and `/metrics` can say which clusters are reachable.
- `SchedulerEvents` (`fleet serve`): commit detected / rejected and the commit's rollout
  result -> the stream; each tick it reads the stream (every worker's events, its own)
  and feeds the notifier, whose `AlertBook` (what is failing) lives in Redis
  (`fleet:<ns>:alerting`) so a restarted scheduler does not alert again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import redis

from fleet import config
from fleet.engine import RemovalResult, UnitResult
from fleet.engine.drift import DriftItem
from fleet.engine.kube import ClusterConnection
from fleet.events import changes
from fleet.events.alerts import AlertBook
from fleet.events.delivery import Deliver, Notifier
from fleet.events.model import Event
from fleet.events.publisher import EventPublisher
from fleet.events.routing import routes
from fleet.events.sinks import EventSink, JsonLinesLog, RedisEventLog
from fleet.events.wave_summary import WaveTally, summarise_waves
from fleet.rollout.waves import plan_waves
from fleet.runtime.reachability import record_contact, record_outage
from fleet.spec.definition import NotifierSpec, Rollout
from fleet.states import ActualUnit, BundleState
from fleet.targeting.units import DeploymentUnit, UnitKey

log = logging.getLogger(__name__)

Cluster = Callable[[Callable[[ClusterConnection], None]], None]  # run fn on a cluster


def make_notifier(
    specs: Sequence[NotifierSpec],
    fleet: str,
    deliver: Deliver,
    settings: config.Settings,
    *,
    book: AlertBook | None = None,
    report: Callable[[Event], None] | None = None,
) -> Notifier:
    """The notifier of a definition's `notifiers`, secrets from the settings' environment."""
    return Notifier(
        routes(specs, fleet, settings.env, backoff=settings.notify_backoff),
        deliver,
        fleet=fleet,
        book=book,
        group_wait=settings.notify_group_wait,
        status_url=settings.status_url,
        report=report,
    )


def wave_tallies(
    units: Sequence[DeploymentUnit], rollout: Rollout | None, state_of: Callable[[UnitKey], str]
) -> list[WaveTally]:
    """Where a commit got to per wave: each unit's state (`state_of`) in its bundle's wave."""
    rows = [
        (wave.name, wave.index, state_of(unit.key))
        for layout in plan_waves(units, rollout).values()
        for wave in layout.waves
        for unit in wave.units
    ]
    return summarise_waves(rows)


class RunEvents:
    """The events of one `fleet sync` pass (see the module docstring)."""

    def __init__(
        self,
        fleet: str,
        *,
        events_file: Path | None = None,
        notifier: Notifier | None = None,
        kube_events: bool = True,
    ) -> None:
        self.fleet = fleet
        self.file = JsonLinesLog(events_file) if events_file is not None else None
        sinks: list[EventSink] = [self.file] if self.file is not None else []
        self.notifier = notifier
        self.publisher = EventPublisher(sinks, kube_events=kube_events)
        self.emitted: list[Event] = []
        self._lock = threading.Lock()  # the pass's cluster threads emit concurrently
        if notifier is not None:
            notifier.report = self._report

    def emit(self, events: Iterable[Event], conn: ClusterConnection | None = None) -> None:
        batch = list(events)
        if not batch:
            return
        self.publisher.emit(batch, conn)
        with self._lock:
            self.emitted.extend(batch)
            if self.notifier is not None:
                self.notifier.add(batch)

    def unit(
        self, previous: ActualUnit | None, result: UnitResult, conn: ClusterConnection | None
    ) -> None:
        self.emit(changes.unit_events(self.fleet, previous, result), conn)

    def removal(self, cluster: str, result: RemovalResult, conn: ClusterConnection | None) -> None:
        self.emit(changes.removal_events(self.fleet, cluster, result), conn)

    def finish(
        self,
        commit: str,
        states: Mapping[str, int],
        down: Mapping[str, str],
        ok: bool,
        *,
        waiting: bool = False,
        waves: Sequence[WaveTally] = (),
    ) -> None:
        """The end of the pass: unreachable clusters, the rollout's result (when this pass
        changed anything, and unless it only ends `waiting`: for an approval, a pause, a
        window, with nothing failed), then every notification, and wait for them."""
        self.emit(changes.cluster_unreachable(self.fleet, c, why) for c, why in down.items())
        if self.emitted and (ok or not waiting):
            self.emit([changes.rollout_finished(self.fleet, commit, dict(states), ok, waves)])
        self.close()

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close(timeout=60.0)
        if self.file is not None:
            self.file.close()

    def _report(self, event: Event) -> None:  # notifier.failed: the log only
        self.publisher.emit([event])


class WorkerEvents:
    """A worker's events: to the fleet's stream and the cluster (see the module docstring)."""

    def __init__(self, client: redis.Redis[str], *, name: str, max_len: int) -> None:
        self.redis = client
        self.name = name
        self.max_len = max_len

    def _publisher(self, ns: str) -> EventPublisher:
        return EventPublisher([RedisEventLog(self.redis, ns, self.max_len)], instance=self.name)

    def emit(self, ns: str, events: Sequence[Event], cluster: Cluster | None = None) -> None:
        """Events to the stream; the unit events also to `cluster` (a connection is opened
        only when there are some). Never raises."""
        if not events:
            return
        publisher = self._publisher(ns)
        publisher.emit(events)
        if cluster is None or not any(e.unit is not None for e in events):
            return

        def record(conn: ClusterConnection) -> None:
            for event in events:
                if event.unit is not None:
                    publisher.to_cluster(conn, event)

        try:
            cluster(record)
        except Exception as err:  # unreachable again, no credential: the stream has them
            log.warning("Kubernetes Events not recorded (%s); fleet's event stream has them",
                        str(err).splitlines()[0] if str(err) else type(err).__name__)  # fmt: skip

    def unit(
        self,
        ns: str,
        fleet: str,
        previous: ActualUnit | None,
        result: UnitResult,
        cluster: Cluster | None,
    ) -> None:
        self.emit(ns, changes.unit_events(fleet, previous, result), cluster)

    def removal(self, ns: str, fleet: str, cluster_name: str, result: RemovalResult,
                cluster: Cluster) -> None:  # fmt: skip
        self.emit(ns, changes.removal_events(fleet, cluster_name, result), cluster)

    def drift(
        self,
        ns: str,
        fleet: str,
        previous: ActualUnit | None,
        bundle: str,
        cluster_name: str,
        deployment_id: str,
        items: Sequence[DriftItem],
        cluster: Cluster,
    ) -> None:
        events = changes.drift_events(fleet, previous, bundle, cluster_name, deployment_id, items)
        self.emit(ns, events, cluster)

    def failure(self, ns: str, previous: ActualUnit | None, bundle: str, cluster: str,
                commit: str, deployment_id: str, message: str) -> None:  # fmt: skip
        """A task that could not work at all: `unit.failed`, unless it was failing already."""
        if previous is not None and previous.state is BundleState.ERR_APPLIED:
            return
        self.emit(ns, [changes.failure_event(ns, bundle, cluster, commit, deployment_id, message)])

    def reachable(self, ns: str, cluster: str, reason: str | None) -> None:
        """The cluster answered (`reason` None) or not: an event on the first change, and
        the contact time (`fleet.runtime.reachability`, what /metrics reads)."""
        try:
            if reason is None:
                if record_contact(self.redis, ns, cluster):
                    self.emit(ns, [changes.cluster_recovered(ns, cluster)])
            elif record_outage(self.redis, ns, cluster):
                self.emit(ns, [changes.cluster_unreachable(ns, cluster, reason)])
        except redis.RedisError as err:
            log.warning("%s: reachability not recorded (%s)", cluster, err)


class SchedulerEvents:
    """The scheduler's events and the fleet's notifier (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis[str],
        ns: str,
        deliver: Deliver,
        settings: config.Settings,
    ) -> None:
        self.redis = client
        self.ns = ns
        self.settings = settings
        self.log = RedisEventLog(client, ns, settings.events_max_len)
        self.publisher = EventPublisher([self.log], kube_events=False, instance="scheduler")
        self.deliver = deliver
        self.notifier = make_notifier([], ns, deliver, settings, report=self._report)
        self._book_key = f"fleet:{ns}:alerting"
        self._read_key = f"fleet:{ns}:events:notified"
        self._after: str | None = None
        self._rollouts: dict[str, str] = {}  # commit -> "succeeded"/"failed" reported
        self._reminded: float | None = None  # when failures were last sent again

    def configure(self, specs: Sequence[NotifierSpec]) -> None:
        """The notifiers of the definition in force (a new commit may change them)."""
        self.notifier.routes = make_notifier(specs, self.ns, self.deliver, self.settings).routes

    def emit(self, events: Sequence[Event]) -> None:
        self.publisher.emit(events)

    def rollout(
        self,
        commit: str,
        states: Mapping[str, int],
        settled: bool,
        waves: Callable[[], Sequence[WaveTally]] = lambda: (),
    ) -> None:
        """`rollout.succeeded` once every unit is Ready, `rollout.failed` at the first
        ErrApplied; each at most once per commit (a failed commit may still succeed).
        `waves`: the per-wave tallies, computed only when an event is sent."""
        failed = states.get(BundleState.ERR_APPLIED.value, 0) > 0
        outcome = "failed" if failed else "succeeded" if settled else None
        if outcome is None or self._rollouts.get(commit) == outcome:
            return
        self._rollouts = {commit: outcome}  # only the commit in force is remembered
        tallies = waves()
        self.emit([changes.rollout_finished(self.ns, commit, dict(states), not failed, tallies)])

    def begin(self) -> None:
        """At the start of a tick: where reading the stream resumes (the first time: where
        the last scheduler stopped, else the stream's end) and what is failing."""
        if self._after is not None:
            return
        stored = self.redis.get(self._read_key)
        self._after = str(stored) if stored else self.log.last_id()
        self.notifier.book.failing = dict(self.redis.hgetall(self._book_key))

    def tick(self, now: float) -> int:
        """Read new events from the stream, feed the notifier, send what is due."""
        self.begin()
        entries = self.log.read(after=self._after)
        if entries:
            before = dict(self.notifier.book.failing)
            self.notifier.add((e.event for e in entries), now)
            self._after = entries[-1].id
            self.redis.set(self._read_key, self._after)
            if self.notifier.book.failing != before:
                self._save_book()
        sent = self.notifier.flush_due(now)
        if self._reminded is None:
            self._reminded = now
        elif now - self._reminded >= self.settings.alert_resend:
            self._reminded = now
            sent += self.notifier.remind()
        return sent

    def _save_book(self) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._book_key)
        failing: dict[str | bytes, bytes | float | int | str] = {
            k: v for k, v in self.notifier.book.failing.items()
        }
        if failing:
            pipe.hset(self._book_key, mapping=failing)
        pipe.execute()

    def _report(self, event: Event) -> None:
        self.publisher.emit([event])

    def close(self) -> None:
        self.notifier.sender.close()
