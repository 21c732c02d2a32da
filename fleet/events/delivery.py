"""`Notifier`: events in, notifications out, on a thread of their own.

The runtime calls `add(events)` (what it emitted, or read from the Redis stream) and then
`flush_due()` each tick, or `flush()` at the end of a `fleet sync`. `AlertBook` drops what
is not news, `PendingGroups` holds events `group_wait` seconds so the same failure on many
clusters goes out once, each route gets its grouped notifications, and a `Sender` thread
hands them to the plugin that serves the notifier's type (`fleet_notify`, through the
`deliver` callable: fleet.plugin.manager.FleetPlugins.notify). Nothing here blocks the
caller on a notifier: the queue is bounded (a full queue drops, counted), and a plugin
that raises, answers `Delivery.failed` or serves no such type is logged and reported as
a `notifier.failed` event to the log (never to notifiers: a broken notifier must not
feed itself).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from fleet.events.alerts import DEFAULT_GROUP_WAIT, AlertBook, PendingGroups
from fleet.events.model import Delivery, Event, EventType, Notification, NotifierTarget
from fleet.events.routing import Route, notifications_for

log = logging.getLogger(__name__)

Deliver = Callable[[NotifierTarget, Notification], Delivery | None]
QUEUE_SIZE = 1000


class Sender:
    """One daemon thread delivering (target, notification) pairs in order."""

    def __init__(
        self,
        deliver: Deliver,
        *,
        on_failure: Callable[[NotifierTarget, Notification, Delivery], None] | None = None,
    ) -> None:
        self.deliver = deliver
        self.on_failure = on_failure
        self.results: Counter[tuple[str, str]] = Counter()  # (notifier, ok|failed|dropped)
        self._queue: queue.Queue[tuple[NotifierTarget, Notification] | None] = queue.Queue(
            QUEUE_SIZE
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, target: NotifierTarget, notification: Notification) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fleet-notify", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait((target, notification))
        except queue.Full:
            self.results[(target.name, "dropped")] += 1
            log.warning("notifier %s: %d notifications queued already; dropped %r",
                        target.name, QUEUE_SIZE, notification.title)  # fmt: skip

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until everything queued was delivered (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = 10.0) -> None:
        self.drain(timeout)
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._deliver_one(*item)
            finally:
                self._queue.task_done()

    def _deliver_one(self, target: NotifierTarget, notification: Notification) -> None:
        try:
            result = self.deliver(target, notification)
        except Exception as err:  # a plugin bug must not stop the other notifiers
            result = Delivery.failed(f"{type(err).__name__}: {str(err)[:200]}")
        if result is None:
            result = Delivery.failed(f"no plugin serves notifier type {target.type!r}")
        if result.ok:
            self.results[(target.name, "ok")] += 1
            log.info("notifier %s: sent %r (%s)", target.name, notification.title, result.message)
            return
        self.results[(target.name, "failed")] += 1
        log.warning("notifier %s: %r not delivered: %s; the rollout goes on",
                    target.name, notification.title, result.message)  # fmt: skip
        if self.on_failure is not None:
            try:
                self.on_failure(target, notification, result)
            except Exception:
                log.exception("notifier %s: reporting the failure failed", target.name)


class Notifier:
    """Dedupe, group, route and send; see the module docstring."""

    def __init__(
        self,
        routes: Sequence[Route],
        deliver: Deliver,
        *,
        fleet: str = "",
        book: AlertBook | None = None,
        group_wait: float = DEFAULT_GROUP_WAIT,
        status_url: str = "",
        report: Callable[[Event], None] | None = None,
    ) -> None:
        self.routes = list(routes)
        self.fleet = fleet
        self.book = book or AlertBook()
        self.pending = PendingGroups(group_wait)
        self.status_url = status_url
        self.report = report  # where `notifier.failed` events go (the log, not notifiers)
        self.sender = Sender(deliver, on_failure=self._failed)
        self.sent: list[tuple[str, Notification]] = []  # (notifier, notification), for tests

    def add(self, events: Iterable[Event], now: float | None = None) -> None:
        """Take events (state changes only are kept; see AlertBook)."""
        news = [e for e in self.book.changes(events) if e.type is not EventType.NOTIFIER_FAILED]
        self.pending.add(news, time.time() if now is None else now)

    def flush_due(self, now: float | None = None) -> int:
        """Send the groups that waited long enough; returns how many notifications."""
        return self._send(self.pending.due(time.time() if now is None else now))

    def flush(self) -> int:
        """Send everything held (the end of a `fleet sync`)."""
        return self._send(self.pending.flush())

    def remind(self) -> int:
        """Send what is still failing again as reminders (`Notification.repeat`)."""
        return self._send(self.book.still_failing(), repeat=True)

    def close(self, timeout: float = 30.0) -> None:
        self.flush()
        self.sender.close(timeout)

    def _send(self, events: Sequence[Event], *, repeat: bool = False) -> int:
        count = 0
        if not events:
            return 0
        for route in self.routes:
            found = notifications_for(route, events, status_url=self.status_url, repeat=repeat)
            for notification in found:
                self.sent.append((route.target.name, notification))
                self.sender.send(route.target, notification)
                count += 1
        return count

    def _failed(self, target: NotifierTarget, notification: Notification, result: Delivery) -> None:
        if self.report is None:
            return
        self.report(
            Event(
                EventType.NOTIFIER_FAILED,
                f"notifier {target.name} ({target.type}) could not deliver "
                f"{notification.title!r}: {result.message}",
                fleet=self.fleet,
                commit=notification.commit,
                reason=f"notifier {target.name} failed",
                details={"notifier": target.name, "attempts": str(result.attempts)},
            )
        )
