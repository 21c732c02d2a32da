"""Where events are written: a Redis stream, a JSON-lines file, Kubernetes Events.

- `RedisEventLog`: one bounded stream per fleet, `fleet:<ns>:events` (`XADD MAXLEN ~`, so
  Redis trims it cheaply to about `max_len` entries); field `e` holds the event's JSON.
  Workers and the scheduler append to it; `fleet events` and the scheduler's notifier
  read it. Stream ids are Redis' `<ms>-<n>`, so `--since` is a range query.
- `JsonLinesLog`: one JSON object per line, appended and flushed per event
  (`fleet sync --events FILE`).
- `kube_event`: a core/v1 Event on the bundle's inventory ConfigMap in `fleet-system` of
  the cluster concerned, so `kubectl get events -n fleet-system` shows what fleet did
  there. Only unit events (bundle and cluster set) go to a cluster.
"""

from __future__ import annotations

import calendar
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import redis

from fleet.engine.inventory import INVENTORY_NAMESPACE, inventory_name
from fleet.engine.kube import ClusterConnection
from fleet.events.model import Event, EventType, Severity, severity_of

DEFAULT_MAX_LEN = 10_000
COMPONENT = "fleet"
MANAGED_BY = "app.kubernetes.io/managed-by"
ANN_TYPE = "fleet-gitops.io/event-type"
ANN_SEVERITY = "fleet-gitops.io/severity"
ANN_FLEET = "fleet-gitops.io/fleet"
ANN_BUNDLE = "fleet-gitops.io/bundle-name"


class EventSink(Protocol):
    """Somewhere events are appended (the Kubernetes Events go through the publisher)."""

    def append(self, event: Event) -> None: ...


def stream_key(ns: str) -> str:
    """The Redis stream of fleet `ns`."""
    return f"fleet:{ns}:events"


@dataclass(frozen=True)
class StreamEntry:
    id: str
    event: Event


class RedisEventLog:
    """The fleet's event stream in Redis, bounded to about `max_len` entries."""

    def __init__(self, client: redis.Redis[str], ns: str, max_len: int = DEFAULT_MAX_LEN) -> None:
        self.redis = client
        self.ns = ns
        self.key = stream_key(ns)
        self.max_len = max(1, max_len)

    def append(self, event: Event) -> None:
        self.redis.xadd(
            self.key, {"e": json.dumps(event.to_json())}, maxlen=self.max_len, approximate=True
        )

    def read(self, *, since: float | None = None, after: str | None = None) -> list[StreamEntry]:
        """Entries from `since` (epoch seconds) or after the entry id `after`, oldest first."""
        if after is not None:
            low = f"({after}"
        elif since is not None:
            low = str(max(0, int(since * 1000)))
        else:
            low = "-"
        return [_entry(i, f) for i, f in self.redis.xrange(self.key, min=low, max="+")]

    def last_id(self) -> str:
        """The id of the newest entry ("0-0" when the stream is empty)."""
        newest = self.redis.xrevrange(self.key, count=1)
        return str(newest[0][0]) if newest else "0-0"

    def newest(self, count: int, *, before: str | None = None) -> list[StreamEntry]:
        """Up to `count` entries before the entry id `before` (else the newest), newest
        first: reading back from the end without reading the whole stream."""
        high = f"({before}" if before is not None else "+"
        found = self.redis.xrevrange(self.key, max=high, min="-", count=max(1, count))
        return [_entry(i, f) for i, f in found]

    def follow(self, after: str, block_seconds: float = 5.0) -> list[StreamEntry]:
        """Entries after `after`, waiting up to `block_seconds` for the first one."""
        found = self.redis.xread({self.key: after}, block=max(1, int(block_seconds * 1000)))
        return [_entry(i, f) for _, entries in found or [] for i, f in entries]


def _entry(entry_id: str, fields: dict[str, str]) -> StreamEntry:
    return StreamEntry(str(entry_id), Event.from_json(json.loads(fields["e"])))


class JsonLinesLog:
    """Events as JSON lines in a file (opened for appending, one flush per event)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def append(self, event: Event) -> None:
        with self._lock:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json.dumps(event.to_json(), sort_keys=True) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_json_lines(path: Path) -> Iterator[Event]:
    """The events of a `--events` file; lines that are not events are skipped."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                yield Event.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue


def kube_reason(kind: EventType) -> str:
    """`unit.failed` -> `UnitFailed`, `rollout.rolledBack` -> `RolloutRolledBack`."""
    return "".join(part[:1].upper() + part[1:] for part in kind.value.split("."))


def kube_event_body(event: Event, *, instance: str = "") -> dict[str, object]:
    """The core/v1 Event for a unit event, on its bundle's inventory ConfigMap."""
    assert event.bundle is not None
    inventory = inventory_name(event.bundle, event.fleet or None)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.time))
    warning = event.level is not Severity.INFO
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{inventory}.{int(event.time * 1e9):x}{uuid.uuid4().hex[:6]}"[:253],
            "namespace": INVENTORY_NAMESPACE,
            "labels": {MANAGED_BY: COMPONENT},
            "annotations": {
                ANN_TYPE: event.type.value,
                ANN_SEVERITY: event.level.value,
                ANN_FLEET: event.fleet,
                ANN_BUNDLE: event.bundle,
                "fleet-gitops.io/commit": event.commit,
                "fleet-gitops.io/deployment-id": event.deployment_id,
            },
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "namespace": INVENTORY_NAMESPACE,
            "name": inventory,
        },
        "reason": kube_reason(event.type),
        "message": event.message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT, "host": instance}
        if instance
        else {"component": COMPONENT},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "reportingComponent": COMPONENT,
        "reportingInstance": instance or COMPONENT,
    }


def from_kube_event(item: Mapping[str, Any], cluster: str) -> Event | None:
    """A fleet Kubernetes Event read back (None: not one of fleet's)."""
    meta = item.get("metadata") or {}
    notes = meta.get("annotations") or {}
    kind = notes.get(ANN_TYPE)
    if kind not in {t.value for t in EventType}:
        return None
    stamp = item.get("lastTimestamp") or item.get("firstTimestamp") or meta.get("creationTimestamp")
    try:
        moment = calendar.timegm(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        moment = 0
    return Event(
        EventType(kind),
        str(item.get("message") or ""),
        fleet=str(notes.get(ANN_FLEET) or ""),
        bundle=str(notes.get(ANN_BUNDLE) or "") or None,
        cluster=cluster,
        commit=str(notes.get("fleet-gitops.io/commit") or ""),
        deployment_id=str(notes.get("fleet-gitops.io/deployment-id") or ""),
        severity=Severity(notes.get(ANN_SEVERITY) or severity_of(EventType(kind))),
        time=float(moment),
        objects=(),
    )


def list_kube_events(conn: ClusterConnection, fleet: str) -> list[Event]:
    """Fleet's Kubernetes Events of one fleet in a cluster's `fleet-system`, oldest first."""
    listed = conn.request(
        "GET",
        f"/api/v1/namespaces/{INVENTORY_NAMESPACE}/events",
        query=[("labelSelector", f"{MANAGED_BY}={COMPONENT}")],
        what="list events",
    )
    found = [from_kube_event(item, conn.name) for item in listed.get("items") or []]
    return sorted((e for e in found if e and e.fleet == fleet), key=lambda e: e.time)


def kube_event(conn: ClusterConnection, event: Event, *, instance: str = "") -> None:
    """Create the Kubernetes Event of a unit event in the cluster (a KubeError propagates)."""
    conn.request(
        "POST",
        f"/api/v1/namespaces/{INVENTORY_NAMESPACE}/events",
        body=kube_event_body(event, instance=instance),
        what=f"record event {event.type.value}",
        kind="Event",
    )
