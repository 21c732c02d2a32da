"""`Scheduler.tick` against a real Redis and a real Git server, with a recording dispatcher.

The scheduler is the glue of the distributed mode: Git -> desired -> plan against the Redis
state cache -> tasks by name. Here the only stand-in is the `Dispatcher` (it records what
would be sent to Celery); the state cache, the claims and the Git source are real, and the
workers' side of the conversation is played by writing to the state cache exactly as a
worker's result or a refresh LIST does (`StateCache.record` / `replace_cluster`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleet.plugin.manager import FleetPlugins
from fleet.runtime.scheduler import Scheduler, SchedulerConfig
from fleet.runtime.state_cache import CachedUnit, StateCache, connect_redis
from fleet.runtime.tasks import APPLY_TASK, DRIFT_TASK, REFRESH_TASK, REMOVE_TASK, TaskArgs
from fleet.source.git import GitSource
from tests.support.servers import GitServer, GitWorkTree, RedisServer

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
clusters:
  - name: dev-eu
    labels: {{env: dev, region: eu}}
  - name: prod-us
    labels: {{env: prod, region: us}}
bundles:
  paths: [apps/*]
rollout:
  waves:
    - name: dev
      selector: {{matchLabels: {{env: dev}}}}
    - name: prod
      selector: {{matchLabels: {{env: prod}}}}
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: default
data:
  v: "{value}"
"""


@dataclass
class Sent:
    task: str
    kwargs: TaskArgs
    queue: str


@dataclass
class RecordingDispatcher:
    """The `Dispatcher` protocol, recording instead of publishing; can be told to fail."""

    sent: list[Sent] = field(default_factory=list)
    fail: bool = False

    def send(self, task: str, kwargs: TaskArgs, queue: str) -> str:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append(Sent(task, dict(kwargs), queue))
        return f"task-{len(self.sent)}"

    def take(self) -> list[Sent]:
        taken, self.sent = self.sent, []
        return taken


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Bed:
    scheduler: Scheduler
    dispatcher: RecordingDispatcher
    cache: StateCache
    work: GitWorkTree
    clock: Clock


@pytest.fixture
def bed(
    git_server: GitServer, redis_server: RedisServer, tmp_path: Path, source_cache: Path
) -> Bed:
    name = f"tick-{uuid.uuid4().hex[:8]}"
    work = git_server.create_repo(name, tmp_path / "work")
    work.write("fleet.yaml", DEFINITION.format(name=name))
    work.write("apps/web/cm.yaml", CONFIGMAP.format(name="web", value="one"))
    work.commit_and_push("first")
    client = connect_redis(redis_server.url)
    dispatcher = RecordingDispatcher()
    clock = Clock()
    config = SchedulerConfig(poll_interval=3600, drift_interval=300, health_recheck=60)
    scheduler = Scheduler(
        GitSource(git_server.url(name), "main"),
        client,
        dispatcher,
        plugins=FleetPlugins.load(entry_points=False),
        config=config,
        clock=clock,
    )
    return Bed(scheduler, dispatcher, StateCache(client, name), work, clock)


def report_refreshed(bed: Bed, *clusters: str) -> None:
    """What a `fleet.refresh_cluster` worker writes: the cluster's (empty) inventory LIST."""
    for cluster in clusters:
        bed.cache.replace_cluster(cluster, {})


def report_ready(bed: Bed, sent: Sent) -> None:
    """What a `fleet.apply_unit` worker writes when the unit became Ready."""
    kw = sent.kwargs
    bundle, cluster = str(kw["bundle"]), str(kw["cluster"])
    unit = CachedUnit(str(kw["deployment_id"]), "Ready", str(kw["commit"]), by="test-worker")
    bed.cache.record(bundle, cluster, unit)
    bed.cache.release("apply", bundle, cluster, str(kw["deployment_id"]))


def test_first_tick_only_reads_the_clusters_then_the_waves_go_in_order(bed: Bed) -> None:
    bed.scheduler.tick()
    first = bed.dispatcher.take()
    # Nothing is known yet: one refresh per cluster, on the queue of that cluster's region.
    assert sorted((s.task, s.kwargs["cluster"], s.queue) for s in first) == [
        (REFRESH_TASK, "dev-eu", "fleet.apply.eu"),
        (REFRESH_TASK, "prod-us", "fleet.apply.us"),
    ]
    assert bed.scheduler.stats.unknown_clusters == ["dev-eu", "prod-us"]
    commit = bed.scheduler.revision.sha if bed.scheduler.revision else ""
    assert all(s.kwargs["commit"] == commit for s in first)
    assert set(first[0].kwargs) == {"fleet", "repo_url", "commit", "cluster"}
    # what the ids were made of, for a worker whose renderers differ (it says so)
    assert bed.cache.renderers(commit) == {"apps-web": "yaml fleet-yaml 1"}

    bed.scheduler.tick()
    assert bed.dispatcher.take() == []  # the refresh claims hold: nothing is queued twice

    report_refreshed(bed, "dev-eu", "prod-us")
    bed.scheduler.tick()
    wave_one = bed.dispatcher.take()
    # The dev wave first; prod waits until dev is Ready at the new id.
    assert [(s.task, s.kwargs["bundle"], s.kwargs["cluster"]) for s in wave_one] == [
        (APPLY_TASK, "apps-web", "dev-eu")
    ]
    assert wave_one[0].queue == "fleet.apply.eu"
    assert len(str(wave_one[0].kwargs["deployment_id"])) == 64

    bed.scheduler.tick()
    assert bed.dispatcher.take() == []  # in flight: not sent again

    report_ready(bed, wave_one[0])
    bed.scheduler.tick()
    wave_two = bed.dispatcher.take()
    # prod goes now; the dev unit, in sync, gets its first drift check.
    assert sorted((s.task, s.kwargs["cluster"], s.queue) for s in wave_two) == [
        (APPLY_TASK, "prod-us", "fleet.apply.us"),
        (DRIFT_TASK, "dev-eu", "fleet.apply.eu"),
    ]
    report_ready(bed, next(s for s in wave_two if s.task == APPLY_TASK))
    bed.scheduler.tick()
    assert [(s.task, s.kwargs["cluster"]) for s in bed.dispatcher.take()] == [
        (DRIFT_TASK, "prod-us")
    ]
    assert bed.scheduler.plan is not None and len(bed.scheduler.plan.in_sync) == 2


def converge(bed: Bed) -> list[Sent]:
    """Walk both waves to Ready; returns the drift checks sent on the way (still claimed)."""
    bed.scheduler.tick()
    report_refreshed(bed, "dev-eu", "prod-us")
    bed.dispatcher.take()
    drift: list[Sent] = []
    for _ in range(4):
        bed.scheduler.tick()
        for sent in bed.dispatcher.take():
            if sent.task == APPLY_TASK:
                report_ready(bed, sent)
            elif sent.task == DRIFT_TASK:
                drift.append(sent)
    assert bed.scheduler.plan is not None and len(bed.scheduler.plan.in_sync) == 2
    return drift


def test_in_sync_units_get_drift_checks_when_due(bed: Bed) -> None:
    first = converge(bed)
    assert sorted(str(s.kwargs["cluster"]) for s in first) == ["dev-eu", "prod-us"]
    for sent in first:  # what the drift worker does when done
        bundle, cluster = str(sent.kwargs["bundle"]), str(sent.kwargs["cluster"])
        bed.cache.mark_drift_checked(bundle, cluster, at=bed.clock.now)
        bed.cache.release("drift", bundle, cluster, str(sent.kwargs["deployment_id"]))
    bed.scheduler.tick()
    assert bed.dispatcher.take() == []  # checked just now
    bed.clock.now += 301  # past drift_interval
    bed.scheduler.tick()
    again = bed.dispatcher.take()
    assert sorted((s.task, str(s.kwargs["cluster"])) for s in again) == [
        (DRIFT_TASK, "dev-eu"),
        (DRIFT_TASK, "prod-us"),
    ]


def test_a_broken_commit_is_reported_and_the_last_good_one_stays(bed: Bed) -> None:
    converge(bed)
    good = bed.scheduler.revision.sha if bed.scheduler.revision else ""
    bed.work.write("apps/web/cm.yaml", "kind: [unclosed\n")
    broken = bed.work.commit_and_push("broken")
    bed.scheduler.poller.next_poll_at = 0.0
    bed.scheduler.tick()
    assert bed.scheduler.revision is not None and bed.scheduler.revision.sha == good
    assert bed.scheduler.commit_error is not None
    assert bed.scheduler.commit_error["commit"] == broken
    problems = bed.scheduler.commit_error["problems"]
    assert isinstance(problems, list) and any("apps/web/cm.yaml" in p for p in problems)
    assert [s for s in bed.dispatcher.take() if s.task == APPLY_TASK] == []

    bed.work.write("apps/web/cm.yaml", CONFIGMAP.format(name="web", value="two"))
    fixed = bed.work.commit_and_push("fixed")
    bed.scheduler.poller.next_poll_at = 0.0
    bed.scheduler.tick()
    assert bed.scheduler.commit_error is None
    assert bed.scheduler.revision is not None and bed.scheduler.revision.sha == fixed
    sent = [s for s in bed.dispatcher.take() if s.task == APPLY_TASK]
    assert [(s.kwargs["cluster"], s.kwargs["commit"]) for s in sent] == [("dev-eu", fixed)]


def test_a_bundle_that_left_git_is_removed_where_it_runs(bed: Bed) -> None:
    converge(bed)
    bed.work.write("apps/api/cm.yaml", CONFIGMAP.format(name="api", value="one"))
    (bed.work.path / "apps/web/cm.yaml").unlink()
    bed.work.commit_and_push("web leaves, api arrives")
    bed.scheduler.poller.next_poll_at = 0.0
    bed.scheduler.tick()
    sent = bed.dispatcher.take()
    removals = sorted((str(s.kwargs["bundle"]), str(s.kwargs["cluster"])) for s in sent
                      if s.task == REMOVE_TASK)  # fmt: skip
    assert removals == [("apps-web", "dev-eu"), ("apps-web", "prod-us")]
    assert all(s.kwargs.get("keep_resources") is False for s in sent if s.task == REMOVE_TASK)
    applies = [(s.kwargs["bundle"], s.kwargs["cluster"]) for s in sent if s.task == APPLY_TASK]
    assert applies == [("apps-api", "dev-eu")]


def test_a_failed_send_releases_the_claim_so_the_next_tick_sends_again(bed: Bed) -> None:
    bed.dispatcher.fail = True
    with pytest.raises(ConnectionError):
        bed.scheduler.tick()
    bed.dispatcher.fail = False
    bed.scheduler.tick()
    sent = bed.dispatcher.take()
    assert sorted(str(s.kwargs["cluster"]) for s in sent if s.task == REFRESH_TASK) == [
        "dev-eu",
        "prod-us",
    ]


def test_a_redis_wipe_is_counted_and_every_cluster_is_read_again(
    bed: Bed, redis_server: RedisServer
) -> None:
    converge(bed)
    bed.scheduler.redis.flushdb()
    bed.scheduler.tick()
    sent = bed.dispatcher.take()
    assert bed.scheduler.redis_lost == 1
    assert sorted(str(s.kwargs["cluster"]) for s in sent if s.task == REFRESH_TASK) == [
        "dev-eu",
        "prod-us",
    ]
    assert [s for s in sent if s.task == APPLY_TASK] == []  # unknown clusters wait


def test_a_unit_that_stays_not_ready_is_rechecked_after_health_recheck(bed: Bed) -> None:
    bed.scheduler.tick()
    report_refreshed(bed, "dev-eu", "prod-us")
    bed.dispatcher.take()
    bed.scheduler.tick()
    (apply,) = bed.dispatcher.take()
    kw = apply.kwargs
    stuck = CachedUnit(str(kw["deployment_id"]), "NotReady", str(kw["commit"]), "0/1 ready",
                       updated_at=bed.clock.now)  # fmt: skip
    bed.cache.record("apps-web", "dev-eu", stuck)
    bed.cache.release("apply", "apps-web", "dev-eu", str(kw["deployment_id"]))
    bed.scheduler.tick()
    assert bed.dispatcher.take() == []  # recorded just now: not yet
    bed.clock.now += 61
    bed.scheduler.tick()
    again = bed.dispatcher.take()
    assert [(s.task, s.kwargs["cluster"]) for s in again] == [(APPLY_TASK, "dev-eu")]
