"""Wait until a bundle's objects are healthy: from the cluster's watches, else by polling.

The first verdict uses objects the engine already holds (apply responses, the LIST done for
the no-op check), so a bundle of ConfigMaps is judged without a single extra request. An
unready object's kind is then followed through the cluster's health watch
(`fleet.engine.watch`: one per kind per cluster, shared by every bundle waiting there), so
the wait ends as soon as the API server reports it Ready. Kinds no watch serves (Forbidden
cluster-wide, or the watch is down) are listed again, with a backoff from 0.5 s to 5 s. A timeout
is a result (NotReady, with the first unready object's reason), not an exception; waiting
also stops early when every unready object has Failed (it will not recover by itself).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from fleet.backoff import Backoff
from fleet.engine.apply import Desired, bundle_selector
from fleet.engine.health import Health, HealthStatus, assess
from fleet.engine.kube import ClusterConnection, ObjectRef, ResourceType
from fleet.engine.watch import KindWatch, Watches, not_older
from fleet.manifest import Manifest

log = logging.getLogger(__name__)

DEFAULT_WAIT_SECONDS = 300
HEALTH_POLL = Backoff(0.5, cap=5.0, factor=1.6)  # 0.5 s, 0.8 s, 1.3 s ... 5 s
WATCH_RECHECK = 5.0  # a watched wait looks again at least this often (a watch may break)
NOT_FOUND = Health(HealthStatus.IN_PROGRESS, "not found in the cluster")


def evaluate(desired: list[Desired], live: dict[ObjectRef, Manifest]) -> dict[ObjectRef, Health]:
    """Health of each desired object from the live objects at hand (missing -> not ready)."""
    return {d.ref: assess(live[d.ref]) if d.ref in live else NOT_FOUND for d in desired}


def first_unready(health: dict[ObjectRef, Health]) -> tuple[ObjectRef, Health] | None:
    """The first object (in apply order) that is not ready, for the unit's message."""
    for ref, verdict in health.items():
        if not verdict.ready:
            return ref, verdict
    return None


def wait_healthy(
    conn: ClusterConnection,
    bundle: str,
    desired: list[Desired],
    live: dict[ObjectRef, Manifest],
    *,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[ObjectRef, Health]:
    """Wait until every desired object is healthy, all unready ones failed, or `timeout`.

    Kinds the cluster's health watches serve (`fleet.engine.watch`) are read from them
    as their events arrive; the others are polled with LIST. `live` is updated in place
    with what was read. `timeout <= 0` evaluates once.
    """
    by_ref = {d.ref: d for d in desired if d.res is not None}
    health = evaluate(list(by_ref.values()), live)
    deadline = time.monotonic() + max(timeout, 0)
    delays = HEALTH_POLL.delays()
    selector = bundle_selector(bundle)
    watches = conn.watches
    while True:
        unready = [ref for ref, h in health.items() if not h.ready]
        # what the watches hold now, read after noting their version: an event that
        # arrives after the read moves the version, so the wait below cannot sleep past it
        version = watches.version if watches is not None else 0
        watched = _watched(watches, by_ref, unready, live) if watches is not None else {}
        if watched:
            for ref, watch in watched.items():
                found = watch.get(ref)
                if found is not None and not_older(found, live.get(ref)):
                    live[ref] = found
            health.update(evaluate([by_ref[r] for r in watched], live))
            unready = [ref for ref, h in health.items() if not h.ready]
        if not unready:
            return health
        if all(health[ref].status is HealthStatus.FAILED for ref in unready):
            log.info("%s: %s: only failed objects left, not waiting", conn.name, bundle)
            return health
        left = deadline - time.monotonic()
        if left <= 0:
            return health
        polled = [ref for ref in unready if ref not in watched]
        if watches is not None and not polled:
            watches.wait(version, min(left, WATCH_RECHECK))
            continue
        sleep(min(next(delays), left))
        _poll(conn, by_ref, polled, live, selector)
        health.update(evaluate([by_ref[r] for r in polled], live))


def _watched(
    watches: Watches,
    by_ref: dict[ObjectRef, Desired],
    unready: list[ObjectRef],
    live: dict[ObjectRef, Manifest],
) -> dict[ObjectRef, KindWatch]:
    """The unready objects a usable watch serves (the rest are polled): an object the
    wait holds a copy of must have a resourceVersion or generation to compare."""
    out: dict[ObjectRef, KindWatch] = {}
    for ref in unready:
        res = by_ref[ref].res
        assert res is not None
        held = live.get(ref)
        if held is not None and not_older(held, held) is None:
            continue
        watch = watches.kind(res)
        if watch is not None:
            out[ref] = watch
    return out


def _poll(
    conn: ClusterConnection,
    by_ref: dict[ObjectRef, Desired],
    unready: list[ObjectRef],
    live: dict[ObjectRef, Manifest],
    selector: str,
) -> None:
    """LIST each (kind, namespace) of `unready` once and update `live` from it."""
    groups: dict[tuple[ResourceType, str | None], None] = {}
    for ref in unready:
        res = by_ref[ref].res
        assert res is not None
        groups[(res, ref.namespace if res.namespaced else None)] = None
    for res, namespace in groups:
        seen = {
            ObjectRef.of(obj): obj
            for obj in conn.list_objects(res, namespace, label_selector=selector)
        }
        for ref in unready:
            if by_ref[ref].res == res and ref.namespace == (namespace or ref.namespace):
                if ref in seen:
                    live[ref] = seen[ref]
                else:
                    live.pop(ref, None)
