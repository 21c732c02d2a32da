"""One acting scheduler per fleet: a leader lease in Redis that `fleet serve` renews.

Two `fleet serve` processes for one fleet (a rolling update, a second replica for
availability, a forgotten one on a laptop) must not both plan and dispatch: their ticks
would race on the same claims and each would re-read the inventories. So the scheduler
of fleet `<ns>` acts only while it holds `fleet:<ns>:leader`:

- taken with `SET key <id> NX PX ttl` (the pattern of the Redis SET documentation), the
  value naming the holder (`<host> pid <n>#<token>`) so the others can say who leads;
- renewed every third of the TTL by a heartbeat thread and at each tick, with a
  compare-and-expire script (only the holder extends it); a renewal that finds another
  holder means leadership was lost: the scheduler stops dispatching at its next tick;
- released on a clean stop with compare-and-delete, so a follower takes over at its next
  tick; a killed leader's lease expires after one TTL (`FLEET_LEADER_TTL`, 15 s).

A follower keeps polling Git and reading the state cache, so its `/status` shows the
fleet; it writes nothing (no claims, no desired map, no epoch marker) and says so in
`/status` (`"scheduler": {"leader": false, "leaderId": ...}`) and in its log, once per
change. Two leaders for a moment (a leader paused longer than its TTL) cost duplicate
dispatches at worst: claims dedupe them and the tasks are idempotent and locked.
"""

from __future__ import annotations

import logging
import threading
import uuid

import redis

from fleet import config
from fleet.runtime.locks import default_holder, holder_of

log = logging.getLogger(__name__)

_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class LeaderLease:
    """This scheduler's claim to act for one fleet (`ensure(ns)` at every tick)."""

    def __init__(
        self,
        client: redis.Redis[str],
        *,
        ttl: float = config.DEFAULT_LEADER_TTL,
        holder: str | None = None,
    ) -> None:
        self.redis = client
        self.ttl = ttl
        self.id = f"{holder or default_holder()}#{uuid.uuid4().hex[:12]}"
        self.ns: str | None = None
        self.leader = False
        self.leader_id: str | None = None  # the holder's id as last seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._told: str | None = None  # the leader a standing-by line last named

    @property
    def key(self) -> str:
        return f"fleet:{self.ns}:leader"

    def ensure(self, ns: str) -> bool:
        """Renew or take the lease of fleet `ns`; True when this scheduler may act."""
        with self._lock:
            if self.ns != ns:
                if self.leader and self.ns is not None:
                    self._release_locked()  # the fleet was renamed in Git
                self.ns, self.leader = ns, False
            was = self.leader
            self.leader = self._extend() or self._take()
            self.leader_id = self.id if self.leader else self._holder()
            self._say(was)
            return self.leader

    def start(self) -> None:
        """Renew every TTL/3 from a thread, so a long tick (a slow Git fetch) keeps it."""
        self._beat = threading.Thread(target=self._heartbeat, name="fleet-leader", daemon=True)
        self._beat.start()

    def stop(self) -> None:
        """Stop renewing and give the lease up (a follower takes over at its next tick)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=10)
        with self._lock:
            if self.leader and self.ns is not None:
                self._release_locked()

    def status(self) -> dict[str, object]:
        """The `scheduler` section of `/status`."""
        return {
            "id": self.id,
            "leader": self.leader,
            "leaderId": self.leader_id,
            "leaseSeconds": self.ttl,
        }

    # ------------------------------------------------------------------ helpers

    def _take(self) -> bool:
        return bool(self.redis.set(self.key, self.id, nx=True, px=self._ttl_ms()))

    def _extend(self) -> bool:
        if not self.leader:
            return False
        return bool(
            self.redis.eval(  # type: ignore[no-untyped-call]
                _EXTEND, 1, self.key, self.id, self._ttl_ms()
            )
        )

    def _holder(self) -> str | None:
        value = self.redis.get(self.key)
        return str(value) if value is not None else None

    def _release_locked(self) -> None:
        try:
            self.redis.eval(_RELEASE, 1, self.key, self.id)  # type: ignore[no-untyped-call]
            log.info("released the scheduler lease of fleet %s", self.ns)
        except redis.RedisError as err:
            log.warning(
                "scheduler lease of fleet %s not released (%s); it expires in %.0fs",
                self.ns,
                err,
                self.ttl,
            )
        self.leader = False

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            with self._lock:
                if not self.leader or self.ns is None:
                    continue
                try:
                    was = self.leader
                    self.leader = self._extend()
                    if not self.leader:
                        self.leader_id = self._holder()
                    self._say(was)
                except redis.RedisError as err:
                    log.warning("scheduler lease not renewed (%s); will try again", err)

    def _say(self, was: bool) -> None:
        if self.leader and not was:
            log.info("this fleet serve (%s) is the scheduler of fleet %s now", self.id, self.ns)
        elif not self.leader and (was or self.leader_id != self._told):
            log.warning(
                "fleet %s is scheduled by another fleet serve (%s); standing by, taking over "
                "if its lease (%.0fs) expires",
                self.ns,
                holder_of(self.leader_id) if self.leader_id else "nobody",
                self.ttl,
            )
        self._told = self.leader_id if not self.leader else None

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))
