"""One Redis lock per (bundle, cluster), so two workers never apply one bundle to one cluster.

Celery may deliver a task twice (acks_late redelivery after a lost worker, a duplicate
enqueued after Redis lost its dedupe keys); the lock makes those runs take turns instead
of interleaving their applies and prunes. Each holder has a random token: only the owner
can extend or release the lock (compare-and-delete in a Lua script, the pattern from the
Redis SET documentation), so a worker whose lock expired cannot release its successor's.

The TTL is short and a holder renews it from a heartbeat thread while it works
(`UnitLock.hold()`), so a worker killed with SIGKILL blocks its unit for at most one TTL,
while a long health wait keeps its lock. If Redis loses the key (restart), the next
renewal notices and logs it; the work continues, because a sync is idempotent.
"""

from __future__ import annotations

import logging
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


class LockBusy(Exception):
    """Another worker holds the (bundle, cluster) lock; try again later."""

    def __init__(self, bundle: str, cluster: str) -> None:
        super().__init__(f"bundle {bundle} on cluster {cluster} is being applied by another worker")
        self.bundle = bundle
        self.cluster = cluster


class UnitLock:
    """The lock of one (bundle, cluster): `acquire`, `extend`, `release`, or `hold()`."""

    def __init__(
        self, client: redis.Redis[str], ns: str, bundle: str, cluster: str, ttl: float = DEFAULT_TTL
    ) -> None:
        self.redis = client
        self.key = f"fleet:{ns}:lock:{bundle}:{cluster}"
        self.bundle = bundle
        self.cluster = cluster
        self.ttl = ttl
        self.token = uuid.uuid4().hex

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
        value = self.redis.get(self.key)
        return str(value) if value is not None else None

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    @contextmanager
    def hold(self) -> Iterator[UnitLock]:
        """Acquire (or raise LockBusy), renew every TTL/3 while the body runs, release."""
        if not self.acquire():
            raise LockBusy(self.bundle, self.cluster)
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
        while not stop.wait(self.ttl / 3):
            try:
                if not self.extend():
                    log.warning("lock %s was lost (Redis restarted?); finishing anyway", self.key)
                    self.acquire()
            except redis.RedisError as err:
                log.warning("lock %s not renewed (%s); will try again", self.key, err)
