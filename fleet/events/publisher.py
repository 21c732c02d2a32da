"""`EventPublisher`: the one object a runtime hands its events to.

It writes each event to every sink (the Redis stream, a JSON-lines file), creates the
Kubernetes Event in the cluster concerned when the caller passes that cluster's
connection, logs one line, and passes the event on to its listeners (the embedded run's
notifier). Writing events never fails a sync: a sink or cluster that refuses an event is
logged (with what happens next) and counted in `failures`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from fleet.engine.kube import ClusterConnection
from fleet.errors import FleetError
from fleet.events.model import Event, Severity
from fleet.events.sinks import EventSink, kube_event

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]


class EventPublisher:
    """Events to sinks, the cluster's Kubernetes Events and listeners; never raises."""

    def __init__(
        self,
        sinks: Sequence[EventSink] = (),
        *,
        listeners: Sequence[Listener] = (),
        kube_events: bool = True,
        instance: str = "",
    ) -> None:
        self.sinks = list(sinks)
        self.listeners = list(listeners)
        self.kube_events = kube_events
        self.instance = instance  # who writes (a worker's name): the Event's source host
        self.failures = 0
        self.published = 0
        self._lock = threading.Lock()

    def emit(self, events: Iterable[Event], conn: ClusterConnection | None = None) -> None:
        """Publish `events`; unit events of `conn`'s cluster also become Kubernetes Events."""
        for event in events:
            self._log(event)
            for sink in self.sinks:
                try:
                    sink.append(event)
                except Exception as err:  # a sink must never fail a sync
                    self._failed(f"event {event.type.value} not written to "
                                 f"{type(sink).__name__} ({_short(err)}); going on")  # fmt: skip
            if conn is not None and self.kube_events and event.unit is not None:
                self.to_cluster(conn, event)
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception as err:
                    self._failed(f"event listener failed ({_short(err)}); going on")
            with self._lock:
                self.published += 1

    def to_cluster(self, conn: ClusterConnection, event: Event) -> None:
        """The Kubernetes Event of one unit event (a refusal is logged, never raised)."""
        try:
            kube_event(conn, event, instance=self.instance)
        except FleetError as err:
            self._failed(f"{conn.name}: Kubernetes Event {event.type.value} not recorded "
                         f"({err.reason}); the event stays in fleet's own log")  # fmt: skip

    def _failed(self, line: str) -> None:
        with self._lock:
            self.failures += 1
        log.warning("%s", line)

    @staticmethod
    def _log(event: Event) -> None:
        level = logging.WARNING if event.level is not Severity.INFO else logging.INFO
        where = "/".join(p for p in (event.cluster, event.bundle) if p) or event.fleet
        log.log(level, "event %s %s: %s", event.type.value, where, event.message)


def _short(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:200]
