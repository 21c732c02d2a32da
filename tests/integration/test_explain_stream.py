"""What `fleet explain` reads from the Redis stream (`fleet.runtime.explain.stream_events`,
`fleet.runtime.event_reader.last_redis`), against the test bed's real Redis: the last
events that concern one unit, read back from the stream's end a batch at a time, and a
Redis that does not answer named by host:port only."""

from __future__ import annotations

import uuid

from fleet.events import changes
from fleet.events.model import Event, EventType
from fleet.events.sinks import RedisEventLog
from fleet.runtime.event_reader import last_redis
from fleet.runtime.explain import concerns, stream_events
from fleet.runtime.state_cache import connect_redis
from tests.support.servers import RedisServer, free_port


def unit_event(fleet: str, bundle: str, cluster: str, n: int) -> Event:
    return Event(EventType.UNIT_APPLIED, f"applied {n}", fleet=fleet, bundle=bundle,
                 cluster=cluster)  # fmt: skip


def test_the_last_events_of_a_unit_are_found_behind_many_others(
    redis_server: RedisServer,
) -> None:
    fleet = f"explain-{uuid.uuid4().hex[:6]}"
    log = RedisEventLog(connect_redis(redis_server.url), fleet)
    log.append(changes.commit_detected(fleet, "a" * 40, 2, 2))  # the whole fleet's
    log.append(unit_event(fleet, "web", "eu-1", 1))
    log.append(changes.cluster_unreachable(fleet, "eu-1", "connection refused"))
    log.append(changes.cluster_unreachable(fleet, "us-1", "connection refused"))
    for n in range(450):  # another unit's, more than two batches of them
        log.append(unit_event(fleet, "api", "eu-1", n))
    log.append(unit_event(fleet, "web", "us-1", 2))  # the same bundle on another cluster
    found = last_redis(log, concerns(("web", "eu-1")), 10, batch=200)
    assert [e.message for e in found] == [
        "commit aaaaaaaaaaaa: 2 units on 2 clusters, rolling out what differs",
        "applied 1",
        "cluster eu-1 unreachable: connection refused",
    ]
    assert [e.message for e in last_redis(log, concerns(("web", "eu-1")), 1)] == [
        "cluster eu-1 unreachable: connection refused"
    ]
    assert last_redis(log, concerns(("web", "eu-1")), 10, batch=200, scan=400) == []
    events, problem = stream_events(redis_server.url, fleet, ("web", "eu-1"), 2)
    assert problem is None and [e.type.value for e in events] == [
        "unit.applied",
        "cluster.unreachable",
    ]


def test_a_redis_that_does_not_answer_is_one_note_without_its_password() -> None:
    port = free_port()
    events, problem = stream_events(f"redis://:s3cret@127.0.0.1:{port}/0", "f", ("b", "c"), 5)
    assert events == [] and problem is not None
    assert problem.startswith(f"cannot read events from Redis at 127.0.0.1:{port}: ")
    assert "s3cret" not in problem and "\n" not in problem
