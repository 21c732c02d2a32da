"""Which clusters the workers reach, for `fleet serve`'s `fleet_cluster_reachable` and
`fleet_cluster_last_contact_timestamp_seconds`.

Why from Redis and not from the scheduler's own view: the scheduler talks to no cluster
(it has no credential); the workers do, and they already keep, per fleet, which clusters
are unreachable (`fleet:<ns>:unreachable`, cluster -> when the outage was first seen),
so that `cluster.unreachable` / `cluster.recovered` are sent once per outage. A worker
that reached a cluster also writes when (`fleet:<ns>:contact`, cluster -> epoch seconds),
in the same round trip as clearing the outage. The scheduler reads both hashes at each
scrape (two HGETALLs, one round trip).

A cluster is unreachable from the first failed contact until the next successful one;
a cluster in neither hash (no worker has tried it since Redis lost its data) has no
series at all, rather than a guess.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis


def unreachable_key(ns: str) -> str:
    return f"fleet:{ns}:unreachable"


def contact_key(ns: str) -> str:
    return f"fleet:{ns}:contact"


@dataclass(frozen=True)
class Reachability:
    """One cluster as the workers last saw it."""

    reachable: bool
    last_contact: float | None  # epoch seconds of the last successful contact
    down_since: float | None  # when the current outage was first seen


def record_contact(client: redis.Redis[str], ns: str, cluster: str) -> bool:
    """The cluster answered now: its contact time, and the end of an outage. True when
    there was an outage (the caller sends `cluster.recovered`)."""
    pipe = client.pipeline(transaction=False)
    pipe.hset(contact_key(ns), cluster, f"{time.time():.3f}")
    pipe.hdel(unreachable_key(ns), cluster)
    _, removed = pipe.execute()
    return bool(removed)


def record_outage(client: redis.Redis[str], ns: str, cluster: str) -> bool:
    """The cluster did not answer: True when this starts an outage (the caller sends
    `cluster.unreachable`), False when one was already recorded."""
    return bool(client.hsetnx(unreachable_key(ns), cluster, f"{time.time():.3f}"))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_reachability(client: redis.Redis[str], ns: str) -> dict[str, Reachability]:
    """Every cluster some worker tried since Redis last lost its data."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(unreachable_key(ns))
    pipe.hgetall(contact_key(ns))
    down, contact = pipe.execute()
    found = {}
    for cluster in sorted(set(down) | set(contact)):
        since = _number(down[cluster]) if cluster in down else None
        last = _number(contact[cluster]) if cluster in contact else None
        found[cluster] = Reachability(cluster not in down, last, since)
    return found
