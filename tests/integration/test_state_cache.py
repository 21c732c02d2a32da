"""The scheduler's Redis cache of "actual", against a real redis-server."""

from __future__ import annotations

import time
import uuid

import pytest

from fleet.runtime.state_cache import CachedUnit, StateCache, connect_redis
from fleet.states import BundleState
from tests.support.servers import RedisServer


@pytest.fixture
def cache(redis_server: RedisServer) -> StateCache:
    return StateCache(connect_redis(redis_server.url), f"test-{uuid.uuid4().hex[:8]}")


def test_worker_records_are_read_back_as_the_planners_actual(cache: StateCache) -> None:
    cache.record("web", "prod-eu", CachedUnit("id1", "Ready", "c1", by="eu@host"))
    cache.record("db", "prod-eu", CachedUnit("id2", "NotReady", "c1", "waiting"))
    cache.record("web", "prod-us", CachedUnit("id1", "ErrApplied", "c1", "boom"))
    found = cache.actual(["prod-eu", "prod-us", "dev-eu"])
    assert set(found) == {("web", "prod-eu"), ("db", "prod-eu"), ("web", "prod-us")}
    assert found[("web", "prod-eu")].by == "eu@host"
    assert found[("web", "prod-eu")].updated_at > time.time() - 5
    actual = found[("db", "prod-eu")].to_actual()
    assert (actual.deployment_id, actual.state, actual.message) == (
        "id2",
        BundleState.NOT_READY,
        "waiting",
    )
    cache.forget("db", "prod-eu")
    assert ("db", "prod-eu") not in cache.actual(["prod-eu"])


def test_a_cluster_refresh_replaces_its_view_and_marks_it_known(cache: StateCache) -> None:
    cache.record("old", "dev-eu", CachedUnit("x", "Ready"))
    cache.record("web", "prod-us", CachedUnit("y", "Ready"))
    assert cache.known(["dev-eu"]) == {}
    cache.replace_cluster("dev-eu", {"web": CachedUnit("z", "Ready", by="inventory")})
    assert set(cache.actual(["dev-eu", "prod-us"])) == {("web", "dev-eu"), ("web", "prod-us")}
    assert cache.known(["dev-eu", "prod-us"])["dev-eu"]["error"] is None
    # an unreachable cluster keeps its last view and is known with the error
    cache.replace_cluster("dev-eu", {}, error="connection refused")
    assert ("web", "dev-eu") in cache.actual(["dev-eu"])
    assert cache.known(["dev-eu"])["dev-eu"]["error"] == "connection refused"


def test_a_wiped_redis_is_detected_by_the_epoch_marker_and_nothing_stays(
    redis_server: RedisServer,
) -> None:
    cache = StateCache(connect_redis(redis_server.url), "wipe")
    assert cache.ensure_epoch() is True  # first start
    assert cache.ensure_epoch() is False
    cache.replace_cluster("dev-eu", {"web": CachedUnit("z", "Ready")})
    redis_server.restart()  # no persistence: all data lost
    assert cache.actual(["dev-eu"]) == {}  # the client reconnects by itself
    assert cache.known(["dev-eu"]) == {}
    assert cache.ensure_epoch() is True


def test_claims_dedupe_dispatch_per_deployment_id_and_expire(cache: StateCache) -> None:
    assert cache.claim("apply", "web", "prod-eu", "id1", ttl=5)
    assert not cache.claim("apply", "web", "prod-eu", "id1", ttl=5)
    assert cache.claim("apply", "web", "prod-eu", "id2", ttl=5)  # a new id is new work
    assert cache.claim("drift", "web", "prod-eu", "id1", ttl=5)  # another kind of task
    cache.release("apply", "web", "prod-eu", "id1")
    assert cache.claim("apply", "web", "prod-eu", "id1", ttl=0.2)
    time.sleep(0.3)
    assert cache.claim("apply", "web", "prod-eu", "id1", ttl=5)  # the TTL expired
    cache.release("apply", "web", "prod-eu", "id1", cooldown=0.2)  # a failure: cool down
    assert not cache.claim("apply", "web", "prod-eu", "id1", ttl=5)
    time.sleep(0.3)
    assert cache.claim("apply", "web", "prod-eu", "id1", ttl=5)


def test_desired_ids_and_drift_check_times(cache: StateCache) -> None:
    cache.set_desired({("web", "dev-eu"): "id1", ("db", "dev-eu"): "id2"})
    assert cache.desired_id("web", "dev-eu") == "id1"
    cache.set_desired({("web", "dev-eu"): "id3"})
    assert cache.desired_id("web", "dev-eu") == "id3"
    assert cache.desired_id("db", "dev-eu") is None
    cache.mark_drift_checked("web", "dev-eu", at=123.0)
    assert cache.drift_checked() == {"web/dev-eu": 123.0}


def test_a_record_newer_than_the_list_survives_the_replace(cache: StateCache) -> None:
    listed_at = time.time()
    cache.record("web", "dev-eu", CachedUnit("new", "Ready", by="eu@host"))  # after the LIST
    cache.record("old", "dev-eu", CachedUnit("x", "Ready", updated_at=listed_at - 10))
    cache.replace_cluster("dev-eu", {}, listed_at=listed_at)
    assert set(cache.actual(["dev-eu"])) == {("web", "dev-eu")}


def test_deferred_bundles_are_handed_to_workers_and_cleared(cache: StateCache) -> None:
    assert cache.deferred("c1") == {}
    cache.set_deferred("c1", {"web": "image digests not resolved: down"})
    assert cache.deferred("c1") == {"web": "image digests not resolved: down"}
    assert cache.deferred("c2") == {}
    cache.set_deferred("c1", {})  # resolved: the workers ask no more
    assert cache.deferred("c1") == {}
