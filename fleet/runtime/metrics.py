"""The workers' metrics, pushed through Redis and served by `fleet serve`'s `/metrics`.

Why through Redis and not an endpoint per worker: a worker lives next to its region's
clusters, often where Prometheus cannot reach it, and workers come and go (autoscaled
Celery processes); the scheduler's `/metrics` is the one scrape target a fleet has, and
every worker already talks to the same Redis. So a worker adds its observations to
per-fleet Redis hashes (one pipelined round trip per task), and `RedisCollector` (a
prometheus-client collector) turns them into metric families when `/metrics` is scraped:

    fleet_reconcile_duration_seconds{bundle, cluster, result}   histogram (apply tasks)
    fleet_prune_total{bundle, cluster}                          objects pruned
    fleet_drift_detected_total{bundle, cluster}                 units that became Modified
    fleet_render_duration_seconds                               histogram (render misses)
    fleet_render_cache_hits_total, fleet_render_cache_misses_total
    fleet_git_fetch_duration_seconds, fleet_git_fetch_failures_total  (the scheduler's)

Keys: `fleet:<ns>:metrics:reconcile` (fields `b|<bundle>|<cluster>|<result>|<i>` per
bucket, `s|...` sum, `c|...` count) and `fleet:<ns>:metrics:counters`
(`<name>|<bundle>|<cluster>`). Like the state cache, a Redis wipe loses them, which
Prometheus sees as a counter reset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

log = logging.getLogger(__name__)

BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
COUNTERS = {
    "prune": ("fleet_prune_total", "Objects fleet pruned (deleted because they left a bundle)."),
    "drift": ("fleet_drift_detected_total", "Times a unit was found changed outside fleet."),
}


def _keys(ns: str) -> tuple[str, str]:
    return f"fleet:{ns}:metrics:reconcile", f"fleet:{ns}:metrics:counters"


def _render_key(ns: str) -> str:
    return f"fleet:{ns}:metrics:render"


def _git_key(ns: str) -> str:
    return f"fleet:{ns}:metrics:git"


def _observe(pipe: redis.client.Pipeline[str], key: str, labels: str, seconds: float) -> None:
    """One histogram observation: its bucket, the sum and the count (`labels` joined by |)."""
    bucket = next((i for i, le in enumerate(BUCKETS) if seconds <= le), len(BUCKETS))
    prefix = f"|{labels}" if labels else ""
    pipe.hincrby(key, f"b{prefix}|{bucket}", 1)
    pipe.hincrbyfloat(key, f"s{prefix}", seconds)
    pipe.hincrby(key, f"c{prefix}", 1)


class WorkerMetrics:
    """What a worker (and the scheduler, for its commit loads) adds; never fails the caller
    (a Redis error is logged)."""

    def __init__(self, client: redis.Redis[str]) -> None:
        self.redis = client

    def reconciled(
        self, ns: str, bundle: str, cluster: str, result: str, seconds: float, pruned: int = 0
    ) -> None:
        reconcile, counters = _keys(ns)
        try:
            pipe = self.redis.pipeline(transaction=False)
            _observe(pipe, reconcile, f"{bundle}|{cluster}|{result}", seconds)
            if pruned:
                pipe.hincrby(counters, f"prune|{bundle}|{cluster}", pruned)
            pipe.execute()
        except redis.RedisError as err:
            log.warning("metrics not recorded (%s)", err)

    def rendered(self, ns: str, seconds: Sequence[float], hits: int, misses: int) -> None:
        """Renders done (each one's seconds) and render-cache answers since the last call."""
        if not (seconds or hits or misses):
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for value in seconds:
                _observe(pipe, _render_key(ns), "", value)
            counters = _keys(ns)[1]
            if hits:
                pipe.hincrby(counters, "render_hit||", hits)
            if misses:
                pipe.hincrby(counters, "render_miss||", misses)
            pipe.execute()
        except redis.RedisError as err:
            log.warning("metrics not recorded (%s)", err)

    def git_fetched(self, ns: str, seconds: Sequence[float], failures: int) -> None:
        """The scheduler's Git fetches since the last call (each one's seconds, failures)."""
        if not (seconds or failures):
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for value in seconds:
                _observe(pipe, _git_key(ns), "", value)
            if failures:
                pipe.hincrby(_keys(ns)[1], "git_fail||", failures)
            pipe.execute()
        except redis.RedisError as err:
            log.warning("metrics not recorded (%s)", err)

    def drift_detected(self, ns: str, bundle: str, cluster: str) -> None:
        try:
            self.redis.hincrby(_keys(ns)[1], f"drift|{bundle}|{cluster}", 1)
        except redis.RedisError as err:
            log.warning("metrics not recorded (%s)", err)


def _histogram(
    name: str, help_text: str, labelnames: list[str], raw: dict[str, str]
) -> HistogramMetricFamily:
    n = len(labelnames)
    series: dict[tuple[str, ...], dict[str, float]] = {}
    for field, value in raw.items():
        kind, *parts = field.split("|")
        if kind == "b" and len(parts) == n + 1:
            series.setdefault(tuple(parts[:n]), {})[f"b{parts[n]}"] = float(value)
        elif kind in ("s", "c") and len(parts) == n:
            series.setdefault(tuple(parts), {})[kind] = float(value)
    family = HistogramMetricFamily(name, help_text, labels=labelnames)
    for names, values in sorted(series.items()):
        running, buckets = 0.0, []
        for i, le in enumerate((*BUCKETS, float("inf"))):
            running += values.get(f"b{i}", 0.0)
            buckets.append(("+Inf" if le == float("inf") else str(le), running))
        family.add_metric(list(names), buckets, values.get("s", 0.0))
    return family


class RedisCollector:
    """The workers' metrics of fleet `ns`, read from Redis at each scrape."""

    def __init__(self, client: redis.Redis[str], ns: str) -> None:
        self.redis = client
        self.ns = ns

    def collect(self) -> Iterator[Metric]:
        reconcile, counters = _keys(self.ns)
        yield _histogram(
            "fleet_reconcile_duration_seconds",
            "Time one apply task took (render, apply, prune, health wait), by result state.",
            ["bundle", "cluster", "result"],
            self.redis.hgetall(reconcile),
        )
        yield _histogram(
            "fleet_render_duration_seconds",
            "Time one render took (renderer, post-renderer, transforms), on a miss.",
            [],
            self.redis.hgetall(_render_key(self.ns)),
        )
        yield _histogram(
            "fleet_git_fetch_duration_seconds",
            "Time one fetch of the fleet's repository took (the scheduler's polls).",
            [],
            self.redis.hgetall(_git_key(self.ns)),
        )
        found = self.redis.hgetall(counters)
        for key, (name, help_text) in COUNTERS.items():
            family = CounterMetricFamily(name, help_text, labels=["bundle", "cluster"])
            for field, value in sorted(found.items()):
                kind, *labels = field.split("|")
                if kind == key and len(labels) == 2:
                    family.add_metric(labels, float(value))
            yield family
        for key, name, help_text in (
            ("render_hit", "fleet_render_cache_hits_total", "Renders answered from the cache."),
            ("render_miss", "fleet_render_cache_misses_total", "Renders the cache did not have."),
            (
                "git_fail",
                "fleet_git_fetch_failures_total",
                "Fetches of the repository that failed.",
            ),
        ):
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], float(found.get(f"{key}||", 0)))
            yield family


def workers_exposition(client: redis.Redis[str], ns: str) -> str:
    """The Prometheus text of the workers' metrics of fleet `ns`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(client, ns))
    return generate_latest(registry).decode()


# kombu's Redis transport keeps a queue as a list named after it, plus one list per
# priority step (`<queue>\x06\x16<step>`, steps 3, 6 and 9; 0 is the plain name).
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (3, 6, 9)


def queue_depths(client: redis.Redis[str], queues: list[str]) -> dict[str, int]:
    """Messages waiting in each Celery queue of the broker (`fleet_worker_queue_depth`)."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue)
        for step in KOMBU_PRIORITY_STEPS:
            pipe.llen(f"{queue}{KOMBU_PRIORITY_SEP}{step}")
    counts = pipe.execute()
    per = 1 + len(KOMBU_PRIORITY_STEPS)
    return {q: sum(int(n) for n in counts[i * per : (i + 1) * per]) for i, q in enumerate(queues)}
