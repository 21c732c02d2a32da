"""Requests of one sync that do not depend on each other, sent side by side.

Why: a sync's requests were sent one after another, so a cluster 50 ms away paid every
round trip in full: the LISTs of a bundle's kinds, then each object's apply. Those that
do not depend on each other (the LIST of each kind and namespace; the applies of one tier,
see `fleet.engine.sync_pass`) now go out together, at most `WIDTH` at once, each on a
fork of the sync's connection (a connection is used by one thread; forks share its HTTP
pool and discovery cache, and their request counts are added back, so `writes` still
counts every write of the sync).

Results come back in the order of the calls, so what the caller builds from them (its
outcome per object, its messages) does not depend on which answer came first. An
exception from one call is raised after every call has finished: nothing is left running
behind the caller's back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fleet.engine.kube import ClusterConnection

T = TypeVar("T")

WIDTH = 8  # requests of one sync in flight at once


def fan_out(
    conn: ClusterConnection,
    calls: Sequence[Callable[[ClusterConnection], T]],
    *,
    width: int = WIDTH,
) -> list[T]:
    """Each `call(fork)` concurrently (one fork of `conn` each); the results in order."""
    if len(calls) <= 1 or width <= 1:
        return [call(conn) for call in calls]
    forks = [conn.fork() for _ in calls]
    with ThreadPoolExecutor(min(width, len(calls)), thread_name_prefix="fanout") as pool:
        futures = [pool.submit(call, fork) for call, fork in zip(calls, forks, strict=True)]
    for fork in forks:
        conn.join(fork)
    return [future.result() for future in futures]
