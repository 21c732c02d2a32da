"""Notifications through `Scheduler.tick` with a real Redis and a real Git server.

Workers are played by `WorkerEvents`, which writes to the fleet's Redis stream exactly as
a `fleet worker` does; the scheduler reads the stream each tick and hands notifications
to the plugin manager. The notifier here is a plugin registered at run time for the type
`recording`, so the test sees exactly what a Slack or webhook plugin would get."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleet import config
from fleet.engine import UnitResult
from fleet.events import changes
from fleet.events.model import Delivery, EventType, Notification, NotifierTarget
from fleet.plugin import hookimpl
from fleet.plugin.manager import FleetPlugins
from fleet.runtime.events import WorkerEvents
from fleet.runtime.scheduler import Scheduler, SchedulerConfig
from fleet.runtime.serve_view import metrics_text
from fleet.runtime.state_cache import connect_redis
from fleet.source.git import GitSource
from fleet.states import ActualUnit, BundleState
from tests.support.servers import GitServer, RedisServer, run_git

CLUSTERS = [f"edge-{i:02d}" for i in range(20)]
PULL = "Deployment web/web: image pull back-off"


def definition(name: str) -> str:
    clusters = "\n".join(
        f"  - name: {c}\n    labels: {{env: prod, region: {name}}}" for c in CLUSTERS
    )
    return f"""\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
clusters:
{clusters}
bundles:
  paths: [apps/*]
notifiers:
  - name: ops
    type: recording
    events: [unit.failed]
"""


CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: web, namespace: default}
data: {v: "1"}
"""


@dataclass
class Recording:
    got: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @hookimpl
    def fleet_notifier_types(self) -> list[str]:
        return ["recording"]

    @hookimpl
    def fleet_notify(self, notifier: NotifierTarget, notification: Notification) -> Delivery | None:
        if notifier.type != "recording":
            return None
        with self.lock:
            self.got.append(notification)
        return Delivery(True)


class NullDispatcher:
    def send(self, task: str, kwargs: object, queue: str) -> str:
        return "task"


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Bed:
    name: str
    url: str
    redis_url: str
    recording: Recording
    clock: Clock
    workers: WorkerEvents

    def scheduler(self, alert_resend: float = 3600.0) -> Scheduler:
        plugins = FleetPlugins.load(entry_points=False)
        plugins.register(self.recording)
        return Scheduler(
            GitSource(self.url, "main"),
            connect_redis(self.redis_url),
            NullDispatcher(),
            plugins=plugins,
            config=SchedulerConfig(poll_interval=3600),
            clock=self.clock,
            settings=config.Settings(notify_group_wait=5.0, alert_resend=alert_resend),
        )

    def fail(self, clusters: list[str], *, deduped: bool = True) -> None:
        """What workers send when their apply failed (`deduped`: the worker knew the unit
        was not failing before; otherwise a plain `unit.failed` every time)."""
        for cluster in clusters:
            result = UnitResult("web", cluster, "id1", "c0ffee", BundleState.ERR_APPLIED,
                                f"{cluster}: {PULL}")  # fmt: skip
            if deduped:
                self.workers.unit(self.name, self.name, ActualUnit("id0", BundleState.READY),
                                  result, None)  # fmt: skip
            else:
                event = changes.failure_event(self.name, "web", cluster, "c0ffee", "id1", PULL)
                self.workers.emit(self.name, [event])

    def recover(self, cluster: str) -> None:
        result = UnitResult("web", cluster, "id1", "c0ffee", BundleState.READY, "Ready")
        previous = ActualUnit("id1", BundleState.ERR_APPLIED)
        self.workers.unit(self.name, self.name, previous, result, None)


def tick(scheduler: Scheduler, clock: Clock, seconds: float = 1.0) -> None:
    clock.now += seconds
    scheduler.tick()
    assert scheduler.events is not None
    assert scheduler.events.notifier.sender.drain(30)


@pytest.fixture
def bed(
    git_server: GitServer, redis_server: RedisServer, tmp_path: Path, source_cache: Path
) -> Bed:
    name = f"ev-{uuid.uuid4().hex[:8]}"
    work = git_server.create_repo(name, tmp_path / "work")
    work.write("fleet.yaml", definition(name))
    work.write("apps/web/cm.yaml", CONFIGMAP)
    work.commit_and_push("first")
    workers = WorkerEvents(connect_redis(redis_server.url), name="test-worker", max_len=1000)
    return Bed(name, git_server.url(name), redis_server.url, Recording(), Clock(), workers)


def test_twenty_clusters_one_notification_and_a_unit_broken_for_ten_ticks_alerts_once(
    bed: Bed,
) -> None:
    scheduler = bed.scheduler()
    tick(scheduler, bed.clock)  # loads the commit: commit.detected (not routed to `ops`)
    bed.fail(CLUSTERS[:12])  # the workers report over two ticks
    tick(scheduler, bed.clock)
    bed.fail(CLUSTERS[12:])
    tick(scheduler, bed.clock)
    assert bed.recording.got == []  # held for the group wait (5 s)
    tick(scheduler, bed.clock, 6.0)
    [note] = bed.recording.got
    assert 'fleet_notifications_total{notifier="ops",result="ok"} 1\n' in metrics_text(scheduler)
    assert note.type is EventType.UNIT_FAILED
    assert note.title == f"web: ErrApplied on 20 clusters: {PULL}"
    assert note.clusters == CLUSTERS

    for _ in range(10):  # the same failure, reported every tick by workers that forgot
        bed.fail(CLUSTERS, deduped=False)
        tick(scheduler, bed.clock, 6.0)
    assert len(bed.recording.got) == 1

    bed.recover("edge-03")
    tick(scheduler, bed.clock)  # read from the stream ...
    tick(scheduler, bed.clock, 6.0)  # ... and sent after the group wait
    assert [n.title for n in bed.recording.got[1:]] == ["web: recovered on edge-03 (Ready)"]
    assert bed.recording.got[1].resolved

    # a restarted scheduler reads on where the last one stopped and knows what is failing
    scheduler.events.close()  # type: ignore[union-attr]
    again = bed.scheduler()
    tick(again, bed.clock)
    bed.fail(CLUSTERS, deduped=False)
    tick(again, bed.clock, 6.0)
    tick(again, bed.clock, 6.0)
    assert [n.title for n in bed.recording.got[2:]] == [
        f"web: ErrApplied on edge-03: {PULL}"  # only the unit that had recovered
    ]


def test_events_reach_the_bounded_stream_in_order(bed: Bed, redis_server: RedisServer) -> None:
    from fleet.events.sinks import RedisEventLog

    client = connect_redis(redis_server.url)
    log = RedisEventLog(client, bed.name, max_len=100)
    for i in range(500):
        log.append(changes.cluster_recovered(bed.name, f"c{i}"))
    entries = log.read()
    assert 100 <= len(entries) < 500  # MAXLEN ~: trimmed, about 100 kept
    assert entries[-1].event.cluster == "c499"
    assert [e.event.cluster for e in log.read(after=entries[-2].id)] == ["c499"]


def stream_types(bed: Bed) -> list[str]:
    from fleet.events.sinks import RedisEventLog

    log = RedisEventLog(connect_redis(bed.redis_url), bed.name)
    return [e.event.type.value for e in log.read()]


def stream_details(bed: Bed) -> list[dict[str, str]]:
    from fleet.events.sinks import RedisEventLog

    log = RedisEventLog(connect_redis(bed.redis_url), bed.name)
    return [dict(e.event.details) for e in log.read()]


def test_commits_and_the_rollout_result_are_events_once(bed: Bed, tmp_path: Path) -> None:
    from fleet.runtime.state_cache import CachedUnit, StateCache

    scheduler = bed.scheduler()
    tick(scheduler, bed.clock)
    assert stream_types(bed) == ["commit.detected"]
    assert scheduler.desired is not None
    cache = StateCache(connect_redis(bed.redis_url), bed.name)
    units = scheduler.desired.units
    for unit in units:  # every worker reports Ready, one of them ErrApplied
        state = "ErrApplied" if unit.cluster == "edge-07" else "Ready"
        cache.record(unit.bundle, unit.cluster, CachedUnit(unit.deployment_id, state, "x"))
    tick(scheduler, bed.clock)
    tick(scheduler, bed.clock)
    assert stream_types(bed) == ["commit.detected", "rollout.failed"]
    unit = next(u for u in units if u.cluster == "edge-07")
    cache.record(unit.bundle, unit.cluster, CachedUnit(unit.deployment_id, "Ready", "x"))
    tick(scheduler, bed.clock)
    tick(scheduler, bed.clock)
    assert stream_types(bed) == ["commit.detected", "rollout.failed", "rollout.succeeded"]
    failed, succeeded = stream_details(bed)[1:]
    total = len(units)
    assert failed["waves"] == f"(all): {total - 1}/{total} Ready, 1 failed"
    assert succeeded["waves"] == f"(all): {total}/{total} Ready"

    clone = tmp_path / "clone"  # a broken commit on top
    run_git("clone", "--quiet", bed.url, str(clone))
    (clone / "fleet.yaml").write_text("kind: Fleet\nname: [broken\n")
    run_git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "broken", cwd=clone)
    run_git("push", "-q", "origin", "HEAD:main", cwd=clone)
    scheduler.poller.next_poll_at = 0.0
    tick(scheduler, bed.clock)
    assert stream_types(bed)[-1] == "commit.rejected"
    scheduler.events.close()  # type: ignore[union-attr]


def test_a_cluster_outage_is_one_event_whichever_worker_sees_it(bed: Bed) -> None:
    for _ in range(3):  # three workers' tasks fail on the cluster
        bed.workers.reachable(bed.name, "edge-01", "connection refused")
    bed.workers.reachable(bed.name, "edge-02", None)  # a cluster that was never down
    for _ in range(2):
        bed.workers.reachable(bed.name, "edge-01", None)
    assert stream_types(bed) == ["cluster.unreachable", "cluster.recovered"]


def test_fleet_events_reads_the_stream(bed: Bed, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fleet.cli import main

    bed.fail(["edge-01", "edge-02"])
    code = main(["events", "--redis", bed.redis_url, "--fleet", bed.name, "-o", "json",
                 "--cluster", "edge-02", "--since", "1h"])  # fmt: skip
    assert code == 0
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (line["type"], line["cluster"], line["bundle"]) == ("unit.failed", "edge-02", "web")
    assert main(["events", "--redis", bed.redis_url, "--fleet", bed.name]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["TIME", "TYPE", "LEVEL"] and len(table) == 3


def test_follow_the_stream_and_a_file(bed: Bed, tmp_path: Path) -> None:
    from fleet.events.sinks import JsonLinesLog, RedisEventLog
    from fleet.runtime.event_reader import EventFilter, follow_file, follow_redis

    log = RedisEventLog(connect_redis(bed.redis_url), bed.name)
    log.append(changes.cluster_recovered(bed.name, "edge-01"))
    stream = follow_redis(log, EventFilter(cluster="edge-02"))
    log.append(changes.cluster_recovered(bed.name, "edge-02"))
    assert next(stream).cluster == "edge-02"  # edge-01 filtered out
    log.append(changes.cluster_unreachable(bed.name, "edge-02", "refused"))
    assert next(stream).type is EventType.CLUSTER_UNREACHABLE

    path = tmp_path / "events.jsonl"
    lines = JsonLinesLog(path)
    lines.append(changes.cluster_recovered(bed.name, "a"))
    tail = follow_file(path, EventFilter())
    assert next(tail).cluster == "a"
    lines.append(changes.cluster_recovered(bed.name, "b"))
    assert next(tail).cluster == "b"
    lines.close()


def test_the_scheduler_reminds_alertmanager_of_what_still_fails(bed: Bed) -> None:
    scheduler = bed.scheduler(alert_resend=60.0)
    tick(scheduler, bed.clock)
    bed.fail(["edge-01", "edge-02"])
    tick(scheduler, bed.clock)
    tick(scheduler, bed.clock, 6.0)
    assert [n.repeat for n in bed.recording.got] == [False]
    bed.recover("edge-01")
    tick(scheduler, bed.clock, 6.0)
    tick(scheduler, bed.clock, 60.0)
    reminders = [n for n in bed.recording.got if n.repeat]
    assert [n.clusters for n in reminders] == [["edge-02"]]
    scheduler.events.close()  # type: ignore[union-attr]


def test_workers_metrics_go_through_redis_to_the_schedulers_metrics(bed: Bed) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from fleet.runtime.metrics import WorkerMetrics

    scheduler = bed.scheduler()
    tick(scheduler, bed.clock)
    metrics = WorkerMetrics(connect_redis(bed.redis_url))
    metrics.reconciled(bed.name, "web", "edge-01", "Ready", 0.3, pruned=2)
    metrics.reconciled(bed.name, "web", "edge-01", "Ready", 7.0)
    metrics.reconciled(bed.name, "web", "edge-02", "ErrApplied", 0.05)
    metrics.drift_detected(bed.name, "web", "edge-02")
    client = connect_redis(bed.redis_url)
    queue = f"fleet.apply.{bed.name}"  # the region of this test's clusters: its own queue
    client.rpush(queue, "a", "b")
    client.rpush(f"{queue}\x06\x163", "c")  # kombu's list for priority step 3
    text = metrics_text(scheduler)
    families = {f.name: f for f in text_string_to_metric_families(text)}  # it parses
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    ready = (("bundle", "web"), ("cluster", "edge-01"), ("result", "Ready"))
    assert samples[("fleet_reconcile_duration_seconds_count", ready)] == 2
    assert samples[("fleet_reconcile_duration_seconds_sum", ready)] == pytest.approx(7.3)
    assert samples[("fleet_reconcile_duration_seconds_bucket", (*ready[:2], ("le", "0.5"),
                                                                ready[2]))] == 1  # fmt: skip
    assert samples[("fleet_reconcile_duration_seconds_bucket", (*ready[:2], ("le", "+Inf"),
                                                                ready[2]))] == 2  # fmt: skip
    unit = (("bundle", "web"), ("cluster", "edge-01"))
    assert samples[("fleet_prune_total", unit)] == 2
    assert samples[("fleet_drift_detected_total", (("bundle", "web"), ("cluster", "edge-02")))] == 1
    # the scheduler's commit load: 20 units, one distinct render, each render timed
    hits = samples[("fleet_render_cache_hits_total", ())]
    misses = samples[("fleet_render_cache_misses_total", ())]
    assert (hits, misses) == (len(CLUSTERS) - 1, 1)
    assert samples[("fleet_render_duration_seconds_count", ())] == misses
    assert samples[("fleet_git_fetch_duration_seconds_count", ())] == 1  # the first poll
    assert samples[("fleet_git_fetch_failures_total", ())] == 0
    depth = {s.labels["queue"]: s.value for s in families["fleet_worker_queue_depth"].samples}
    assert depth == {queue: 3, "fleet.control": 0}
    [wave] = families["fleet_rollout_wave"].samples  # no waves defined: one implicit wave
    assert (wave.labels["bundle"], wave.labels["phase"]) == ("apps-web", "pending")
    infos = families["fleet_unit_info"].samples
    assert len(infos) == len(CLUSTERS) and infos[0].labels["state"] == "Pending"
    scheduler.events.close()  # type: ignore[union-attr]


def test_only_the_leader_writes_events_and_metrics(bed: Bed) -> None:
    from fleet.runtime.leader import LeaderLease

    client = connect_redis(bed.redis_url)
    both = []
    for who in ("serve-a", "serve-b"):
        scheduler = bed.scheduler()
        scheduler.leader = LeaderLease(client, ttl=30, holder=who)
        both.append(scheduler)
    for _ in range(3):
        for scheduler in both:
            tick(scheduler, bed.clock)
    assert stream_types(bed) == ["commit.detected"]  # once, by the leader
    counters = client.hgetall(f"fleet:{bed.name}:metrics:counters")
    assert int(counters["render_miss||"]) + int(counters["render_hit||"]) == len(CLUSTERS)
    for scheduler in both:
        assert scheduler.leader is not None
        scheduler.leader.stop()
        scheduler.events.close()  # type: ignore[union-attr]


def test_cluster_reachability_goes_from_the_workers_to_the_schedulers_metrics(bed: Bed) -> None:
    """`fleet_cluster_reachable`: 0 from a failed contact to the next good one; the last
    contact's time; nothing for a cluster no worker tried, or one not in the definition."""
    import time

    from prometheus_client.parser import text_string_to_metric_families

    def exported(scheduler: Scheduler) -> tuple[dict[str, float], dict[str, float]]:
        families = {f.name: f for f in text_string_to_metric_families(metrics_text(scheduler))}
        reachable, contact = (
            {s.labels["cluster"]: s.value for s in families[name].samples}
            for name in ("fleet_cluster_reachable", "fleet_cluster_last_contact_timestamp_seconds")
        )
        return reachable, contact

    scheduler = bed.scheduler()
    tick(scheduler, bed.clock)
    before = time.time()
    bed.workers.reachable(bed.name, "edge-01", "connection refused")
    bed.workers.reachable(bed.name, "edge-02", None)
    bed.workers.reachable(bed.name, "not-in-the-definition", None)
    reachable, contact = exported(scheduler)
    assert reachable == {"edge-01": 0, "edge-02": 1}
    assert list(contact) == ["edge-02"] and before <= contact["edge-02"] <= time.time()
    bed.workers.reachable(bed.name, "edge-01", "connection refused")  # still down
    assert exported(scheduler)[0]["edge-01"] == 0
    bed.workers.reachable(bed.name, "edge-01", None)
    reachable, contact = exported(scheduler)
    assert reachable == {"edge-01": 1, "edge-02": 1} and set(contact) == {"edge-01", "edge-02"}
    outages = [t for t in stream_types(bed) if t.startswith("cluster.")]
    assert outages == ["cluster.unreachable", "cluster.recovered"]
    scheduler.events.close()  # type: ignore[union-attr]
