"""Issue 8, case 10: only one `fleet serve` scheduler acts, with a real Redis and Git server.

Two `Scheduler`s of one fleet share a Redis, each with its `LeaderLease` (as `fleet serve`
builds them) and a recording dispatcher: only the leader dispatches, the other one says
who leads; a clean stop hands over at the follower's next tick; a leader that dies
without a word (no renewals, no release) is taken over once its lease expires; and the
heartbeat keeps a leader's lease alive between ticks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from fleet.plugin.manager import FleetPlugins
from fleet.runtime.leader import LeaderLease
from fleet.runtime.scheduler import Scheduler, SchedulerConfig
from fleet.runtime.serve_view import status_json
from fleet.runtime.state_cache import StateCache, connect_redis
from fleet.runtime.tasks import APPLY_TASK, REFRESH_TASK
from fleet.source.git import GitSource
from tests.integration.test_scheduler_tick import CONFIGMAP, DEFINITION, RecordingDispatcher
from tests.support.servers import GitServer, GitWorkTree, RedisServer


@dataclass
class Pair:
    first: Scheduler
    second: Scheduler
    sent: dict[str, RecordingDispatcher]
    cache: StateCache
    work: GitWorkTree
    client: redis.Redis[str]

    def tick_both(self) -> None:
        self.first.tick()
        self.second.tick()


def _scheduler(
    url: str, client: redis.Redis[str], dispatcher: RecordingDispatcher, ttl: float, who: str
) -> Scheduler:
    return Scheduler(
        GitSource(url, "main"),
        client,
        dispatcher,
        plugins=FleetPlugins.load(entry_points=False),
        config=SchedulerConfig(poll_interval=3600),
        leader=LeaderLease(client, ttl=ttl, holder=who),
    )


def _pair(git_server: GitServer, redis_server: RedisServer, tmp_path: Path, ttl: float) -> Pair:
    name = f"leader-{uuid.uuid4().hex[:8]}"
    work = git_server.create_repo(name, tmp_path / "work")
    work.write("fleet.yaml", DEFINITION.format(name=name))
    work.write("apps/web/cm.yaml", CONFIGMAP.format(name="web", value="one"))
    work.commit_and_push("first")
    client = connect_redis(redis_server.url)
    sent = {"a": RecordingDispatcher(), "b": RecordingDispatcher()}
    url = git_server.url(name)
    first = _scheduler(url, client, sent["a"], ttl, "serve-a")
    second = _scheduler(url, client, sent["b"], ttl, "serve-b")
    return Pair(first, second, sent, StateCache(client, name), work, client)


def _until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def pair(
    git_server: GitServer, redis_server: RedisServer, tmp_path: Path, source_cache: Path
) -> Pair:
    return _pair(git_server, redis_server, tmp_path, ttl=30)


def test_only_the_leader_dispatches_and_the_other_says_who_leads(pair: Pair) -> None:
    for _ in range(3):
        pair.tick_both()
    leader, follower = pair.first.leader, pair.second.leader
    assert leader is not None and follower is not None
    assert leader.leader and not follower.leader
    assert {s.task for s in pair.sent["a"].sent} == {REFRESH_TASK}  # both clusters, once
    assert pair.sent["b"].sent == []
    assert follower.leader_id == leader.id and leader.id.startswith("serve-a")
    status = status_json(pair.second)
    assert '"leader": false' in status and f'"leaderId": "{leader.id}"' in status
    assert pair.second.desired is not None  # it polls and plans, for /status
    assert pair.cache.desired_commit() == pair.first.revision.sha  # type: ignore[union-attr]


def test_a_clean_stop_hands_over_at_the_followers_next_tick(pair: Pair) -> None:
    pair.tick_both()
    assert pair.first.leader is not None and pair.second.leader is not None
    pair.first.leader.stop()  # what `fleet serve` does on SIGTERM
    pair.work.write("apps/web/cm.yaml", CONFIGMAP.format(name="web", value="two"))
    pair.work.commit_and_push("second")
    pair.second.poller.next_poll_at = 0.0
    for cluster in ("dev-eu", "prod-us"):  # the workers' refresh results
        pair.cache.replace_cluster(cluster, {}, listed_at=time.time())
    pair.second.tick()
    assert pair.second.leader.leader
    assert APPLY_TASK in {s.task for s in pair.sent["b"].sent}
    assert pair.cache.desired_commit() == pair.second.revision.sha  # type: ignore[union-attr]
    before = len(pair.sent["a"].sent)
    pair.first.leader = LeaderLease(pair.client, ttl=30, holder="serve-a")  # it comes back
    pair.first.tick()
    assert not pair.first.leader.leader and len(pair.sent["a"].sent) == before


def test_a_dead_leader_is_taken_over_once_its_lease_expires(
    git_server: GitServer, redis_server: RedisServer, tmp_path: Path, source_cache: Path
) -> None:
    pair = _pair(git_server, redis_server, tmp_path, ttl=1.0)
    pair.tick_both()
    assert pair.first.leader is not None and pair.second.leader is not None
    assert pair.first.leader.leader and not pair.second.leader.leader
    # the first one is killed: no more ticks, no heartbeat, no release

    def took_over() -> bool:
        pair.second.tick()
        return bool(pair.second.leader and pair.second.leader.leader)

    _until(took_over, "the second scheduler to take the expired lease")
    assert pair.client.get(pair.second.leader.key) == pair.second.leader.id
    assert pair.sent["b"].sent == []  # the first one's refreshes are still queued (claims)
    pair.cache.release("refresh", "*", "dev-eu", "")  # a worker finished one, with an error
    pair.cache.replace_cluster("dev-eu", {}, error="unreachable")
    pair.cache.redis.delete(f"{pair.cache.prefix}known:dev-eu")
    pair.second.tick()
    assert [(s.task, s.kwargs["cluster"]) for s in pair.sent["b"].sent] == [
        (REFRESH_TASK, "dev-eu")
    ]


def test_the_heartbeat_keeps_the_lease_between_ticks(
    git_server: GitServer, redis_server: RedisServer, tmp_path: Path, source_cache: Path
) -> None:
    pair = _pair(git_server, redis_server, tmp_path, ttl=0.6)
    pair.first.tick()
    assert pair.first.leader is not None and pair.second.leader is not None
    pair.first.leader.start()
    try:
        time.sleep(2.0)  # more than three TTLs without a tick
        pair.second.tick()
        assert not pair.second.leader.leader
        assert pair.second.leader.leader_id == pair.first.leader.id
    finally:
        pair.first.leader.stop()
    pair.second.tick()
    assert pair.second.leader.leader
