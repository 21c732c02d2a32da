"""Which lock `fleet sync` takes for each (bundle, cluster) it writes to, so it never
interleaves with another writer of the same unit.

- With Redis configured (`FLEET_REDIS_URL`, or `fleet sync --redis`): the very lock the
  workers take (`fleet.runtime.locks.UnitLock`, key `fleet:<fleet>:lock:<bundle>:<cluster>`),
  so a CLI run next to `fleet serve` and its workers take turns.
- Without: a Lease in the cluster (`fleet.runtime.leases.ClusterLease`), so two CI jobs (or
  a laptop and a CI job) take turns with each other. Workers do not look at these Leases:
  give a `fleet sync` that runs next to `fleet serve` the same Redis.

Either way a unit whose lock is held is not written at all: it is reported "locked by
<holder>" (WaitApplied; `fleet sync` exits 1) and the next run does it. A lock lost during
the sync (its renewals failed and another writer took it) stops the engine before prune
and before the inventory write (`still_owner`). A dry run takes no lock: it writes nothing.
"""

from __future__ import annotations

import os
import socket
from contextlib import AbstractContextManager
from typing import Protocol

import redis

from fleet import config
from fleet.engine.kube import ClusterConnection
from fleet.errors import FleetError
from fleet.runtime.leases import ClusterLease
from fleet.runtime.locks import UnitLock
from fleet.runtime.state_cache import connect_redis


class UnitGuard(Protocol):
    """One unit's lock: `hold()` raises `LockBusy` when it is held; `still_owner()`."""

    def hold(self) -> AbstractContextManager[object]: ...

    def still_owner(self) -> bool: ...


def sync_holder() -> str:
    return f"fleet sync on {socket.gethostname()} pid {os.getpid()}"


class UnitLocks:
    """The locks of one `fleet sync` run: Redis when given a client, else Leases."""

    def __init__(
        self,
        fleet: str,
        *,
        client: redis.Redis[str] | None = None,
        ttl: float = config.DEFAULT_LOCK_TTL,
        holder: str | None = None,
    ) -> None:
        self.fleet = fleet
        self.client = client
        self.ttl = ttl
        self.holder = holder or sync_holder()

    @classmethod
    def from_settings(cls, fleet: str, settings: config.Settings) -> UnitLocks:
        """Redis locks when Redis is configured (and answers), else in-cluster Leases."""
        if not settings.redis_configured:
            return cls(fleet, ttl=settings.lock_ttl)
        probe = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3)
        try:  # one quick try: a Redis that is not there is an error at once, not after retries
            probe.ping()
        except redis.RedisError as err:
            raise FleetError(
                f"Redis at FLEET_REDIS_URL does not answer ({type(err).__name__}); fleet sync "
                "takes its (bundle, cluster) locks there. Start it, or unset FLEET_REDIS_URL "
                "to lock with a Lease in each cluster instead"
            ) from None
        finally:
            probe.close()
        return cls(fleet, client=connect_redis(settings.redis_url), ttl=settings.lock_ttl)

    @property
    def kind(self) -> str:
        return "redis" if self.client is not None else "lease"

    def guard(self, bundle: str, cluster: str, conn: ClusterConnection) -> UnitGuard:
        if self.client is not None:
            return UnitLock(self.client, self.fleet, bundle, cluster, self.ttl, holder=self.holder)
        return ClusterLease(conn, self.fleet, bundle, duration=self.ttl, holder=self.holder)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
