"""What `fleet events` reads: the Redis stream, a `--events` file, or the clusters.

- distributed (`--redis URL`, or `FLEET_REDIS_URL` set): the fleet's stream
  (`fleet:<fleet>:events`); `--fleet` names the fleet, else the only fleet in that Redis;
- `--file FILE`: the JSON lines `fleet sync --events FILE` wrote;
- embedded, neither: the Kubernetes Events fleet recorded in `fleet-system` of every
  cluster of the repository's definition (credentials as for `fleet sync`). Kubernetes
  keeps Events for an hour by default (the API server's `--event-ttl`), so this is the
  recent past only.

`-f` follows the stream or the file; the clusters cannot be followed.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import redis

from fleet import config
from fleet.errors import FleetError
from fleet.events.model import Event
from fleet.events.sinks import DEFAULT_MAX_LEN, RedisEventLog, list_kube_events, read_json_lines
from fleet.runtime.clusters import ClusterSet
from fleet.runtime.state_cache import connect_redis


@dataclass(frozen=True)
class EventFilter:
    bundle: str | None = None
    cluster: str | None = None
    since: float | None = None  # epoch seconds

    def __call__(self, event: Event) -> bool:
        if self.bundle is not None and event.bundle != self.bundle:
            return False
        if self.cluster is not None and event.cluster != self.cluster:
            return False
        return self.since is None or event.time >= self.since


def _where(url: str) -> str:
    """host:port of a Redis URL (never its password)."""
    parts = urllib.parse.urlsplit(url)
    return parts.netloc.rpartition("@")[2] or url.split("://", 1)[0]


def redis_errors(events: Iterator[Event], url: str) -> Iterator[Event]:
    """`events`, with a Redis failure as one FleetError line naming host:port only."""
    try:
        yield from events
    except redis.RedisError as err:
        raise redis_failure(err, url) from None


def redis_failure(err: redis.RedisError, url: str) -> FleetError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return FleetError(f"cannot read events from Redis at {_where(url)}: {reason}")


def redis_fleet(client_url: str, fleet: str | None) -> RedisEventLog:
    """The event stream of `fleet` (or of the only fleet with a stream) in that Redis."""
    client = connect_redis(client_url)
    if fleet is not None:
        return RedisEventLog(client, fleet)
    try:
        names = sorted(
            key.removeprefix("fleet:").removesuffix(":events")
            for key in client.scan_iter(match="fleet:*:events", count=1000)
        )
    except redis.RedisError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FleetError(
            f"cannot read events from Redis at {_where(client_url)}: {reason}"
        ) from None
    if len(names) != 1:
        found = ", ".join(names) if names else "none"
        raise FleetError(f"--fleet NAME is needed: fleets with events in this Redis: {found}")
    return RedisEventLog(client, names[0])


def read_redis(log: RedisEventLog, keep: EventFilter) -> Iterator[Event]:
    """The stream's events from `since`, read when iterated."""
    for entry in log.read(since=keep.since):
        if keep(entry.event):
            yield entry.event


def last_redis(log: RedisEventLog, keep: Callable[[Event], bool], count: int,
               batch: int = 200, scan: int = DEFAULT_MAX_LEN) -> list[Event]:  # fmt: skip
    """The last `count` events `keep` takes, oldest first, read back from the stream's
    end a `batch` at a time, at most `scan` entries (the stream's usual bound)."""
    found: list[Event] = []
    before: str | None = None
    read = 0
    while count > 0 and len(found) < count and read < scan:
        entries = log.newest(batch, before=before)
        if not entries:
            break
        read += len(entries)
        before = entries[-1].id
        found.extend(e.event for e in entries if keep(e.event))
    return list(reversed(found[:count]))


def follow_redis(
    log: RedisEventLog, keep: EventFilter, stop: Callable[[], bool] = lambda: False
) -> Iterator[Event]:
    """What is in the stream (from `since`), then every new event, until `stop()`."""
    after = "0-0"
    for entry in log.read(since=keep.since):
        after = entry.id
        if keep(entry.event):
            yield entry.event
    while not stop():
        for entry in log.follow(after, block_seconds=1.0):
            after = entry.id
            if keep(entry.event):
                yield entry.event


def read_file(path: Path, keep: EventFilter) -> list[Event]:
    if not path.is_file():
        raise FleetError(f"{path}: no such events file")
    return [e for e in read_json_lines(path) if keep(e)]


def follow_file(
    path: Path, keep: EventFilter, stop: Callable[[], bool] = lambda: False
) -> Iterator[Event]:
    """The file's events, then each line appended to it (polled every 0.5 s)."""
    if not path.is_file():
        raise FleetError(f"{path}: no such events file")
    offset = path.stat().st_size if path.is_file() else 0
    with path.open("rb") as handle:  # what is there now; then only what is appended
        existing = handle.read(offset)
    offset = existing.rfind(b"\n") + 1
    for line in existing[:offset].decode("utf-8", "replace").splitlines():
        event = _parse(line)
        if event is not None and keep(event):
            yield event
    while not stop():
        time.sleep(0.5)
        size = path.stat().st_size
        if size < offset:  # truncated or replaced: start again
            offset = 0
        if size == offset:
            continue
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read(size - offset)
        complete = chunk[: chunk.rfind(b"\n") + 1]
        offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            event = _parse(line)
            if event is not None and keep(event):
                yield event


def _parse(line: str) -> Event | None:
    try:
        return Event.from_json(json.loads(line))
    except (ValueError, KeyError, TypeError):
        return None


def read_clusters(
    source: str, keep: EventFilter, env: Mapping[str, str] | None = None
) -> tuple[list[Event], dict[str, str]]:
    """Fleet's Kubernetes Events in every cluster of the definition; (events, unreachable)."""
    from fleet.source.local import resolve_source
    from fleet.spec.loader import load_repository

    settings = config.current() if env is None else config.Settings.from_env(env)
    checkout = resolve_source(source, None)
    repo = load_repository(checkout.path)
    definition = repo.definition
    specs = [c for c in definition.clusters if keep.cluster in (None, c.name)]
    clusters = ClusterSet(specs, retries=1, backoff=0.5)
    found: list[Event] = []
    try:
        clusters.connect(settings.env)
        listed = clusters.each(
            lambda link: link.call("list events", lambda c: list_kube_events(c, definition.name))
        )
        for events in listed.values():
            found.extend(e for e in events or () if keep(e))
        down = clusters.down
    finally:
        clusters.close()
    return sorted(found, key=lambda e: e.time), down
