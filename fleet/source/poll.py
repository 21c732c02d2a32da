"""Polling a Git source: new commits in, errors out, the last good revision kept in force.

The poller owns no thread and no sleep: `poll_once()` does one fetch and says when the next
one is due (`PollResult.next_poll_in`); the scheduler's loop (or a test) decides when to
call it. A push webhook that `wants()` says is ours just makes the loop call it early.

When the Git server cannot be reached (or the ref vanished), the error is reported as one
redacted line, `current` keeps the last revision fetched, and the next attempt comes after
an exponential backoff (`min_backoff`, doubled each failure) capped at the poll interval, so
a short outage is noticed quickly and a long one costs no more than normal polling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleet.backoff import Backoff
from fleet.errors import FleetError, TransientError
from fleet.source.git import GitSource, Revision, repository_identity
from fleet.source.webhooks import PushEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollResult:
    """What one poll found. `current` is the revision in force after it (None before any)."""

    current: Revision | None
    changed: bool
    error: str | None
    next_poll_in: float
    failures: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


class Poller:
    """Fetches `source` when asked and calls `on_new_revision` when its ref moves."""

    def __init__(
        self,
        source: GitSource,
        interval: float,
        on_new_revision: Callable[[Revision], None],
        *,
        min_backoff: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError("the poll interval must be positive")
        self.source = source
        self.interval = float(interval)
        self.on_new_revision = on_new_revision
        self.min_backoff = min(min_backoff, self.interval)
        self.clock = clock
        self.current: Revision | None = None
        self.last_error: str | None = None
        self.failures = 0
        self.fetch_seconds: list[float] = []  # each fetch's duration, until taken (metrics)
        self.fetch_failures = 0  # fetches that failed, until taken
        self.next_poll_at = clock()

    @property
    def due(self) -> bool:
        return self.clock() >= self.next_poll_at

    def backoff(self) -> float:
        """Seconds until the next attempt after `self.failures` failures in a row."""
        if self.failures == 0:
            return self.interval
        return Backoff(self.min_backoff, cap=self.interval).delay(self.failures - 1)

    def poll_once(self) -> PollResult:
        """Fetch now; on a new sha call `on_new_revision`; never raise for a Git failure.

        The new sha becomes `current` only once `on_new_revision` returned: when it raises a
        `TransientError` (the commit could not be loaded yet, e.g. a chart server is down)
        the commit is offered again at the next attempt, after the same backoff as a failed
        fetch. Any other error it raises is the caller's bug and propagates.
        """
        started = time.monotonic()
        try:
            revision = self.source.update()
        except FleetError as err:
            self._fetched(started, failed=True)
            return self._failed(err)
        self._fetched(started, failed=False)
        changed = self.current is None or revision.sha != self.current.sha
        if changed:
            try:
                self.on_new_revision(revision)
            except TransientError as err:
                return self._failed(err)
        if self.failures:
            log.info("%s reachable again after %d failed polls", self.source, self.failures)
        self.failures = 0
        self.last_error = None
        if changed:
            self.current = revision
            log.info(
                "%s %s is now %s (%s)",
                revision.url,
                revision.ref,
                revision.short_sha,
                revision.message,
            )
        return self._result(changed=changed, delay=self.interval)

    def _fetched(self, started: float, *, failed: bool) -> None:
        if len(self.fetch_seconds) < 1000:
            self.fetch_seconds.append(time.monotonic() - started)
        self.fetch_failures += failed

    def take_fetch_stats(self) -> tuple[list[float], int]:
        """(seconds of each fetch, failed fetches) since the last call, for the metrics."""
        taken, failures = self.fetch_seconds, self.fetch_failures
        self.fetch_seconds, self.fetch_failures = [], 0
        return taken, failures

    def _failed(self, err: FleetError) -> PollResult:
        self.failures += 1
        self.last_error = err.reason
        delay = self.backoff()
        kept = f"keeping {self.current.short_sha}" if self.current else "nothing fetched yet"
        log.warning("%s; %s, will retry in %.0fs", self.last_error, kept, delay)
        return self._result(changed=False, delay=delay)

    def wants(self, event: PushEvent) -> bool:
        """Whether a push event concerns this source's repository and may move its ref."""
        mine = repository_identity(self.source.url)
        if not any(repository_identity(url) == mine for url in event.repo_urls):
            return False
        ref = self.source.ref
        if ref == "HEAD" or event.ref == ref:
            return True
        if event.ref.startswith("refs/heads/"):
            return event.ref.removeprefix("refs/heads/") == ref
        # A tag push may satisfy a tag or semver-range ref; the fetch tells.
        return event.ref.startswith("refs/tags/") and not _looks_like_sha(ref)

    def _result(self, *, changed: bool, delay: float) -> PollResult:
        self.next_poll_at = self.clock() + delay
        return PollResult(
            current=self.current,
            changed=changed,
            error=self.last_error,
            next_poll_in=delay,
            failures=self.failures,
        )


def _looks_like_sha(ref: str) -> bool:
    return 7 <= len(ref) <= 40 and all(c in "0123456789abcdefABCDEF" for c in ref)
