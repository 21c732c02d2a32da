"""The scheduler's view of "actual" in Redis: what each cluster runs, per (bundle, cluster).

DESIGN.md item 11: a tick over thousands of clusters must read Redis, not thousands of API
servers. Workers write each unit's outcome here as soon as they have it (`record`), and a
cluster's whole view is replaced from one LIST of its inventories (`replace_cluster`) on
start-up, after Redis lost its data and periodically. The clusters' inventories stay the
durable record: Redis can be wiped at any moment and nothing is lost, the next tick just
asks the workers to read the inventories again.

Keys (`ns` is the fleet's name, so several fleets can share one Redis):

    fleet:<ns>:actual:<cluster>    hash  bundle -> JSON CachedUnit
    fleet:<ns>:known:<cluster>     string JSON {at, error}: inventories read since the data
                                   was last lost (missing -> this cluster's view is unknown)
    fleet:<ns>:epoch               string written by the scheduler; gone -> Redis lost data
    fleet:<ns>:desired             hash  "bundle/cluster" -> the deployment id Git wants now
    fleet:<ns>:desired-commit      string the commit that `desired` was written for (gone ->
                                   the desired state is unknown: workers remove nothing)
    fleet:<ns>:queued:<kind>:<bundle>:<cluster>:<id>   dedupe marker with a TTL
    fleet:<ns>:drift-checked       hash  "bundle/cluster" -> time of the last drift check

A replace and a worker's record can race (the LIST was read just before the record): a
record newer than the LIST's start (`listed_at`) is kept; a remaining race costs one
idempotent re-dispatch (a no-op sync).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from fleet.registry.charts import ChartPin
from fleet.registry.image_pins import ImagePin
from fleet.states import ActualUnit
from fleet.targeting.units import UnitKey

CHART_PINS_TTL = 7 * 24 * 3600  # a commit's chart pins outlive any task sent for it


@dataclass(frozen=True, slots=True)
class CachedUnit(ActualUnit):
    """One (bundle, cluster) as last reported: the planner's `ActualUnit` (it is one, so
    the scheduler plans with the cache as it is), plus when and by whom it was reported:
    a worker's result, or "inventory" for a LIST."""

    updated_at: float = 0.0
    by: str = ""  # the worker that reported it ("inventory" for a LIST)

    @classmethod
    def of(cls, actual: ActualUnit, *, by: str, updated_at: float = 0.0) -> CachedUnit:
        return cls(
            actual.deployment_id,
            actual.state,
            actual.commit,
            actual.message,
            actual.keep_resources,
            actual.objects,
            updated_at=updated_at,
            by=by,
        )

    def to_actual(self) -> ActualUnit:
        return self

    @classmethod
    def from_json(cls, text: str) -> CachedUnit:
        raw = json.loads(text)
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


def connect_redis(url: str) -> redis.Redis[str]:
    """A client that rides out a short Redis restart (a few retries with backoff)."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 5),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_connect_timeout=5,
        health_check_interval=30,
    )


class StateCache:
    """Redis hashes of what the clusters run, for one fleet (`ns`)."""

    def __init__(self, client: redis.Redis[str], ns: str) -> None:
        self.redis = client
        self.ns = ns
        self.prefix = f"fleet:{ns}:"

    @classmethod
    def from_url(cls, url: str, ns: str) -> StateCache:
        return cls(connect_redis(url), ns)

    def _actual_key(self, cluster: str) -> str:
        return f"{self.prefix}actual:{cluster}"

    def _known_key(self, cluster: str) -> str:
        return f"{self.prefix}known:{cluster}"

    # ------------------------------------------------------------ written by workers

    def record(self, bundle: str, cluster: str, unit: CachedUnit) -> None:
        """A worker's outcome for one unit (its cluster's other bundles are untouched)."""
        stamped = unit if unit.updated_at else _stamped(unit)
        self.redis.hset(self._actual_key(cluster), bundle, json.dumps(asdict(stamped)))

    def forget(self, bundle: str, cluster: str) -> None:
        """The bundle was removed from the cluster."""
        self.redis.hdel(self._actual_key(cluster), bundle)

    def replace_cluster(
        self,
        cluster: str,
        units: Mapping[str, CachedUnit],
        error: str | None = None,
        listed_at: float | None = None,
    ) -> None:
        """One LIST of the cluster's inventories is the new truth for that cluster.

        With `error` (the LIST failed: unreachable) the previous view is kept and the
        cluster is marked known-but-unreachable, so the scheduler stops waiting for it.
        """
        fresh: dict[str, str] = {}
        if error is None and listed_at is not None:
            # a worker's record written after the LIST started is newer than the LIST
            for bundle, text in self.redis.hgetall(self._actual_key(cluster)).items():
                if CachedUnit.from_json(text).updated_at > listed_at:
                    fresh[bundle] = text
        pipe = self.redis.pipeline(transaction=True)
        if error is None:
            pipe.delete(self._actual_key(cluster))
            mapping: dict[str | bytes, str] = {
                b: json.dumps(asdict(_stamped(u))) for b, u in units.items()
            }
            mapping.update(fresh)
            if mapping:
                pipe.hset(self._actual_key(cluster), mapping=mapping)
        pipe.set(self._known_key(cluster), json.dumps({"at": time.time(), "error": error}))
        pipe.execute()

    # --------------------------------------------------------- read by the scheduler

    def actual(self, clusters: Iterable[str]) -> dict[UnitKey, CachedUnit]:
        """Every cached unit of these clusters: one pipelined HGETALL per cluster."""
        names = list(clusters)
        pipe = self.redis.pipeline(transaction=False)
        for cluster in names:
            pipe.hgetall(self._actual_key(cluster))
        found: dict[UnitKey, CachedUnit] = {}
        for cluster, entries in zip(names, pipe.execute(), strict=True):
            for bundle, text in entries.items():
                found[(bundle, cluster)] = CachedUnit.from_json(text)
        return found

    def known(self, clusters: Iterable[str]) -> dict[str, dict[str, object]]:
        """cluster -> {at, error} for clusters whose inventories were read since a loss."""
        names = list(clusters)
        values = self.redis.mget([self._known_key(c) for c in names]) if names else []
        return {c: json.loads(v) for c, v in zip(names, values, strict=True) if v is not None}

    # -------------------------------------------------------------- loss detection

    def ensure_epoch(self) -> bool:
        """Write the epoch marker if missing; True when it was missing (data lost or new)."""
        return bool(self.redis.set(f"{self.prefix}epoch", uuid.uuid4().hex, nx=True))

    # ----------------------------------------------------------- desired and dedupe

    def set_desired(self, ids: Mapping[UnitKey, str], *, commit: str | None = None) -> None:
        """What Git wants now (at `commit`); a worker skips a task whose id is no longer
        wanted, and a removal of a unit that is wanted again."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(f"{self.prefix}desired")
        if ids:
            pipe.hset(f"{self.prefix}desired", mapping={f"{b}/{c}": i for (b, c), i in ids.items()})
        if commit is not None:
            pipe.set(f"{self.prefix}desired-commit", commit)
        pipe.execute()

    def desired_commit(self) -> str | None:
        """The commit the `desired` map is for; None when unknown (Redis lost its data)."""
        value = self.redis.get(f"{self.prefix}desired-commit")
        return str(value) if value is not None else None

    def set_chart_pins(self, commit: str, pins: Iterable[ChartPin]) -> None:
        """The OCI chart versions the scheduler resolved for `commit`, for its workers."""
        values = [asdict(pin) for pin in pins]
        if values:
            self.redis.set(f"{self.prefix}charts:{commit}", json.dumps(values), ex=CHART_PINS_TTL)

    def chart_pins(self, commit: str) -> list[ChartPin]:
        """What `set_chart_pins` wrote ([] if nothing: the worker resolves them itself)."""
        text = self.redis.get(f"{self.prefix}charts:{commit}")
        if not text:
            return []
        return [ChartPin(**value) for value in json.loads(text)]

    def set_image_pins(self, commit: str, pins: Mapping[str, Iterable[ImagePin]]) -> None:
        """The image digests the scheduler resolved for `commit`, by bundle, for its workers."""
        values = {bundle: [asdict(pin) for pin in found] for bundle, found in pins.items()}
        if values:
            self.redis.set(f"{self.prefix}images:{commit}", json.dumps(values), ex=CHART_PINS_TTL)

    def image_pins(self, commit: str) -> dict[str, list[ImagePin]]:
        """What `set_image_pins` wrote ({} if nothing: the worker resolves them itself)."""
        text = self.redis.get(f"{self.prefix}images:{commit}")
        if not text:
            return {}
        values = json.loads(text)
        return {bundle: [ImagePin(**pin) for pin in found] for bundle, found in values.items()}

    def set_deferred(self, commit: str, deferred: Mapping[str, str]) -> None:
        """bundle -> why the scheduler deferred it at `commit` (a registry down): its
        workers do not ask that registry either, so their ids agree ({} clears it)."""
        key = f"{self.prefix}deferred:{commit}"
        if deferred:
            self.redis.set(key, json.dumps(dict(deferred)), ex=CHART_PINS_TTL)
        else:
            self.redis.delete(key)

    def deferred(self, commit: str) -> dict[str, str]:
        """What `set_deferred` wrote ({} if nothing)."""
        text = self.redis.get(f"{self.prefix}deferred:{commit}")
        return {str(k): str(v) for k, v in json.loads(text).items()} if text else {}

    def set_renderers(self, commit: str, renderers: Mapping[str, str]) -> None:
        """bundle -> the renderer identity the scheduler targeted `commit` with (renderer
        and tool versions, chart pins: what its deployment ids were made of), so a worker
        whose ids differ can say why (`fleet.runtime.worker`)."""
        if renderers:
            self.redis.set(f"{self.prefix}renderers:{commit}", json.dumps(dict(renderers)),
                           ex=CHART_PINS_TTL)  # fmt: skip

    def renderers(self, commit: str) -> dict[str, str]:
        """What `set_renderers` wrote ({} if nothing)."""
        text = self.redis.get(f"{self.prefix}renderers:{commit}")
        return {str(k): str(v) for k, v in json.loads(text).items()} if text else {}

    def desired_id(self, bundle: str, cluster: str) -> str | None:
        value = self.redis.hget(f"{self.prefix}desired", f"{bundle}/{cluster}")
        return str(value) if value is not None else None

    def _queued_key(self, kind: str, bundle: str, cluster: str, deployment_id: str) -> str:
        return f"{self.prefix}queued:{kind}:{bundle}:{cluster}:{deployment_id}"

    def claim(self, kind: str, bundle: str, cluster: str, deployment_id: str, ttl: float) -> bool:
        """True if no task of this kind for this (unit, id) is queued or in flight yet."""
        key = self._queued_key(kind, bundle, cluster, deployment_id)
        return bool(self.redis.set(key, "1", nx=True, px=max(1, int(ttl * 1000))))

    def release(
        self, kind: str, bundle: str, cluster: str, deployment_id: str, cooldown: float = 0
    ) -> None:
        """The task is done: allow a new one now, or after `cooldown` seconds (a failure)."""
        key = self._queued_key(kind, bundle, cluster, deployment_id)
        if cooldown > 0:
            self.redis.set(key, "1", px=int(cooldown * 1000))
        else:
            self.redis.delete(key)

    def drift_checked(self) -> dict[str, float]:
        raw = self.redis.hgetall(f"{self.prefix}drift-checked")
        return {k: float(v) for k, v in raw.items()}

    def mark_drift_checked(self, bundle: str, cluster: str, at: float | None = None) -> None:
        self.redis.hset(f"{self.prefix}drift-checked", f"{bundle}/{cluster}", at or time.time())


def _stamped(unit: CachedUnit) -> CachedUnit:
    if unit.updated_at:
        return unit
    return CachedUnit(**{**asdict(unit), "updated_at": time.time()})
