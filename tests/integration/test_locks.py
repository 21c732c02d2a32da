"""The per-(bundle, cluster) lock against a real redis-server: owner-only, TTL, renewal."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from fleet.config import Settings
from fleet.engine.kube import ClusterConnection
from fleet.errors import FleetError
from fleet.runtime.locks import LockBusy, UnitLock, holder_of
from fleet.runtime.state_cache import connect_redis
from fleet.runtime.unit_guard import UnitLocks
from tests.support.servers import RedisServer, free_port


@pytest.fixture
def ns() -> str:
    return f"locks-{uuid.uuid4().hex[:8]}"


def test_only_one_holder_and_only_the_owner_releases(redis_server: RedisServer, ns: str) -> None:
    client = connect_redis(redis_server.url)
    first = UnitLock(client, ns, "web", "prod-eu", ttl=10)
    second = UnitLock(client, ns, "web", "prod-eu", ttl=10)
    other = UnitLock(client, ns, "web", "prod-us", ttl=10)
    assert first.acquire()
    assert not second.acquire()
    assert other.acquire()  # another cluster is another lock
    assert not second.release()  # not the owner: nothing happens
    assert first.owner() == first.token
    assert first.release()
    assert second.acquire()


def test_an_expired_lock_is_not_released_by_its_former_owner(
    redis_server: RedisServer, ns: str
) -> None:
    client = connect_redis(redis_server.url)
    dead = UnitLock(client, ns, "web", "dev-eu", ttl=0.2)
    assert dead.acquire()
    time.sleep(0.3)  # a worker killed while holding it: the TTL frees the unit
    successor = UnitLock(client, ns, "web", "dev-eu", ttl=10)
    assert successor.acquire()
    assert not dead.release()
    assert not dead.extend()
    assert successor.owner() == successor.token


def test_hold_renews_while_working_and_excludes_others(redis_server: RedisServer, ns: str) -> None:
    client = connect_redis(redis_server.url)
    holder = UnitLock(client, ns, "guestbook", "prod-eu", ttl=0.6, holder="worker-a@test")
    busy: list[str] = []

    def contender() -> None:
        try:
            with UnitLock(client, ns, "guestbook", "prod-eu", ttl=0.6).hold():
                busy.append("acquired")
        except LockBusy as err:
            busy.append(str(err))

    with holder.hold():
        time.sleep(1.5)  # longer than the TTL: the heartbeat keeps it
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join()
    assert busy == ["bundle guestbook on cluster prod-eu is locked by worker-a@test"]
    assert holder.owner() is None  # released on exit
    with UnitLock(client, ns, "guestbook", "prod-eu").hold():
        pass


def test_two_threads_never_hold_the_same_lock_at_once(redis_server: RedisServer, ns: str) -> None:
    client = connect_redis(redis_server.url)
    inside, overlaps, done = [0], [0], [0]
    guard = threading.Lock()

    def worker() -> None:
        while done[0] < 20:
            try:
                with UnitLock(client, ns, "web", "prod-us", ttl=5).hold():
                    with guard:
                        inside[0] += 1
                        overlaps[0] += inside[0] > 1
                    time.sleep(0.005)
                    with guard:
                        inside[0] -= 1
                        done[0] += 1
            except LockBusy:
                time.sleep(0.001)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert overlaps[0] == 0 and done[0] >= 20


def test_fleet_sync_takes_the_workers_lock_when_redis_is_configured(
    redis_server: RedisServer, ns: str
) -> None:
    settings = Settings.from_env({"FLEET_REDIS_URL": redis_server.url, "FLEET_LOCK_TTL": "5"})
    locks = UnitLocks.from_settings(ns, settings)
    assert locks.kind == "redis"
    conn = ClusterConnection("prod-eu", api_client=None)  # a Redis lock never calls it
    worker = UnitLock(connect_redis(redis_server.url), ns, "web", "prod-eu", 5, holder="eu@w1")
    with worker.hold():
        guard = locks.guard("web", "prod-eu", conn)
        with pytest.raises(LockBusy, match="is locked by eu@w1"), guard.hold():
            pass
    guard = locks.guard("web", "prod-eu", conn)
    with guard.hold():
        assert guard.still_owner()
        assert holder_of(worker.owner()).startswith("fleet sync on ")
        with pytest.raises(LockBusy, match="is locked by fleet sync on "), worker.hold():
            pass
    assert worker.owner() is None
    locks.close()


def test_fleet_sync_without_redis_uses_leases_and_a_dead_redis_is_one_error(
    redis_server: RedisServer,
) -> None:
    assert UnitLocks.from_settings("f", Settings.from_env({})).kind == "lease"
    dead = redis_server.url.rsplit(":", 1)[0] + f":{free_port()}/0"
    with pytest.raises(FleetError, match="Redis at FLEET_REDIS_URL does not answer"):
        UnitLocks.from_settings("f", Settings.from_env({"FLEET_REDIS_URL": dead}))


def test_a_lock_taken_by_another_holder_is_lost_not_taken_back(
    redis_server: RedisServer, ns: str
) -> None:
    client = connect_redis(redis_server.url)
    mine = UnitLock(client, ns, "web", "dev-eu", ttl=0.6, holder="a")
    with mine.hold():
        assert mine.still_owner()
        client.set(mine.key, "b#other", px=60_000)  # ours expired, another writer took it
        deadline = time.monotonic() + 10
        while not mine.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mine.lost and not mine.still_owner()
    assert client.get(mine.key) == "b#other"  # the release left the other holder's key alone
