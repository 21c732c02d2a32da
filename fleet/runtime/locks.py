"""One Redis lock per (bundle, cluster), so two workers never apply one bundle to one cluster.

Celery may deliver a task twice (acks_late redelivery after a lost worker, a duplicate
enqueued after Redis lost its dedupe keys); the lock makes those runs take turns instead
of interleaving their applies and prunes. Each holder has a random token: only the owner
can extend or release the lock (compare-and-delete in a Lua script, the pattern from the
Redis SET documentation), so a worker whose lock expired cannot release its successor's.

The TTL is short and a holder renews it from a heartbeat thread while it works
(`UnitLock.hold()`), so a worker killed with SIGKILL blocks its unit for at most one TTL,
while a long health wait keeps its lock. If Redis loses the key (restart), the next
renewal notices and takes the key back. If another holder has the key by then (our
renewals failed for a whole TTL), the lock is lost: `still_owner()` turns False, and the
engine stops before it prunes or writes the inventory (`fleet.engine.deploy(still_owner=)`).

The value of the key names its holder (`<holder>#<random token>`), so a unit that is busy
is reported as "locked by <holder>" (a worker's name, or `fleet sync on <host> pid <n>`).
The embedded `fleet sync` takes this same lock when Redis is configured
(`fleet.runtime.unit_guard`), so a CLI run and `fleet serve`'s workers take turns too.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from fleet import config

log = logging.getLogger(__name__)

DEFAULT_TTL = config.DEFAULT_LOCK_TTL

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


def default_holder() -> str:
    """Who this process is, for "locked by ..." messages: host and pid."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def holder_of(value: str | None) -> str:
    """The holder part of a lock value (`<holder>#<token>`); "unknown" when there is none."""
    if not value:
        return "unknown"
    return value.rpartition("#")[0] or value


class LockBusy(Exception):
    """Another worker (or `fleet sync`) holds the (bundle, cluster) lock; try again later."""

    def __init__(self, bundle: str, cluster: str, holder: str = "another worker") -> None:
        super().__init__(f"bundle {bundle} on cluster {cluster} is locked by {holder}")
        self.bundle = bundle
        self.cluster = cluster
        self.holder = holder


class UnitLock:
    """The lock of one (bundle, cluster): `acquire`, `extend`, `release`, or `hold()`."""

    def __init__(
        self,
        client: redis.Redis[str],
        ns: str,
        bundle: str,
        cluster: str,
        ttl: float = DEFAULT_TTL,
        *,
        holder: str | None = None,
    ) -> None:
        self.redis = client
        self.key = f"fleet:{ns}:lock:{bundle}:{cluster}"
        self.bundle = bundle
        self.cluster = cluster
        self.ttl = ttl
        self.holder = holder or default_holder()
        self.token = f"{self.holder}#{uuid.uuid4().hex}"
        self.lost = False  # another holder took the key while we held it

    def acquire(self) -> bool:
        return bool(self.redis.set(self.key, self.token, nx=True, px=self._ttl_ms()))

    def extend(self) -> bool:
        """Push the expiry out by one TTL; False when the lock is no longer ours."""
        return bool(
            self.redis.eval(  # type: ignore[no-untyped-call]
                _EXTEND, 1, self.key, self.token, self._ttl_ms()
            )
        )

    def release(self) -> bool:
        """Delete the lock if it is still ours; False when it expired or another took it."""
        return bool(
            self.redis.eval(  # type: ignore[no-untyped-call]
                _RELEASE, 1, self.key, self.token
            )
        )

    def owner(self) -> str | None:
        """The key's value (`<holder>#<token>`), None when nobody holds the lock."""
        value = self.redis.get(self.key)
        return str(value) if value is not None else None

    def still_owner(self) -> bool:
        """True while the key is ours: one GET. A Redis error counts as lost (stop safely)."""
        if self.lost:
            return False
        try:
            return self.owner() == self.token
        except redis.RedisError as err:
            log.warning("lock %s cannot be checked (%s); treating it as lost", self.key, err)
            return False

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    @contextmanager
    def hold(self) -> Iterator[UnitLock]:
        """Acquire (or raise LockBusy), renew every TTL/3 while the body runs, release."""
        if not self.acquire():
            raise LockBusy(self.bundle, self.cluster, holder_of(self.owner()))
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop,), daemon=True)
        beat.start()
        try:
            yield self
        finally:
            stop.set()
            beat.join()
            try:
                self.release()
            except redis.RedisError as err:
                log.warning(
                    "lock %s not released (%s); it expires in %.0fs", self.key, err, self.ttl
                )

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.ttl / 3) and not self.lost:
            try:
                if self.extend():
                    continue
                if self.acquire():  # the key was gone (Redis restarted): ours again
                    log.warning("lock %s had vanished (Redis restarted?); taken back", self.key)
                    continue
                self.lost = True
                log.warning(
                    "lock %s was taken by %s; stopping before prune and the inventory write",
                    self.key,
                    holder_of(self.owner()),
                )
            except redis.RedisError as err:
                log.warning("lock %s not renewed (%s); will try again", self.key, err)
