"""Alerts people do not mute: state changes only, the same failure grouped, per commit.

Pure logic, the same in both modes:

1. `AlertBook.changes(events)`: which events are news. A unit (or cluster) that fails
   alerts once; every later failure event of it is dropped while it stays broken, however
   many ticks, retries or workers report it. The first event that shows it working again
   (`unit.applied`, `bundle.removed`, `cluster.recovered`) is kept and marked a recovery,
   so the alert resolves. `book.failing` is the memory: the scheduler keeps it in Redis;
   a `fleet sync` starts with an empty book and relies on the inventories instead
   (`fleet.events.changes` marks an event `recovered` when the unit was ErrApplied there,
   and sends no `unit.failed` for a unit that fails again at the same deployment id).
2. `PendingGroups`: events wait `group_wait` seconds from the first of their group
   (Alertmanager's `group_wait`), so the same failure reported by 37 workers over a few
   ticks goes out once.
3. `group(events)`: one `Notification` per (type, bundle, commit, reason, recovery):
   "web: ErrApplied on 37 clusters: Deployment web/web: image pull back-off".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fleet.events.model import Event, EventType, Notification, Severity

FAILURES = (EventType.UNIT_FAILED, EventType.CLUSTER_UNREACHABLE)
RECOVERIES = (EventType.UNIT_APPLIED, EventType.BUNDLE_REMOVED, EventType.CLUSTER_RECOVERED)
RECOVERED = "recovered"  # details key: this event ends an alert

DEFAULT_GROUP_WAIT = 10.0


def is_recovery(event: Event) -> bool:
    return event.details.get(RECOVERED) == "true"


def _book_key(event: Event) -> str | None:
    if event.type in (EventType.CLUSTER_UNREACHABLE, EventType.CLUSTER_RECOVERED):
        return f"cluster/{event.cluster}" if event.cluster else None
    unit = event.unit
    return f"unit/{unit[0]}/{unit[1]}" if unit is not None else None


@dataclass
class AlertBook:
    """What is failing now: `unit/<bundle>/<cluster>` or `cluster/<name>` -> the JSON of
    the event that said so (what a reminder sends again)."""

    failing: dict[str, str] = field(default_factory=dict)

    def still_failing(self) -> list[Event]:
        """The events of everything failing now (unreadable entries are skipped)."""
        found = []
        for text in self.failing.values():
            try:
                found.append(Event.from_json(json.loads(text)))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def changes(self, events: Iterable[Event]) -> list[Event]:
        """The events that change what is failing (and every event of other types)."""
        news: list[Event] = []
        for event in events:
            key = _book_key(event)
            if key is None or event.type not in FAILURES + RECOVERIES:
                news.append(event)
            elif event.type in FAILURES:
                if key not in self.failing:
                    self.failing[key] = json.dumps(event.to_json())
                    news.append(event)
            elif key in self.failing:
                del self.failing[key]
                news.append(_as_recovery(event))
            else:  # not failing here; `details.recovered` (the cluster's record) may say so
                news.append(event)
        return news


def _as_recovery(event: Event) -> Event:
    if is_recovery(event):
        return event
    details = {**event.details, RECOVERED: "true"}
    return Event(
        event.type,
        event.message,
        fleet=event.fleet,
        bundle=event.bundle,
        cluster=event.cluster,
        commit=event.commit,
        deployment_id=event.deployment_id,
        severity=event.severity,
        time=event.time,
        objects=event.objects,
        reason=event.reason,
        wave=event.wave,
        details=details,
    )


GroupKey = tuple[str, str, str, str, bool]


def group_key(event: Event) -> GroupKey:
    return (event.type.value, event.bundle or "", event.commit, event.reason, is_recovery(event))


@dataclass
class PendingGroups:
    """Events held until their group is `wait` seconds old, then released together."""

    wait: float = DEFAULT_GROUP_WAIT
    _groups: dict[GroupKey, tuple[float, list[Event]]] = field(default_factory=dict)

    def add(self, events: Iterable[Event], now: float) -> None:
        for event in events:
            _, held = self._groups.setdefault(group_key(event), (now, []))
            held.append(event)

    def due(self, now: float) -> list[Event]:
        """The events of every group whose first event arrived `wait` seconds ago."""
        ready = [k for k, (first, _) in self._groups.items() if now - first >= self.wait]
        return [e for k in ready for e in self._groups.pop(k)[1]]

    def flush(self) -> list[Event]:
        """Everything held (the end of a `fleet sync`)."""
        out = [e for _, held in self._groups.values() for e in held]
        self._groups.clear()
        return out

    def __len__(self) -> int:
        return sum(len(held) for _, held in self._groups.values())


def group(
    events: Sequence[Event], *, status_url: str = "", repeat: bool = False
) -> list[Notification]:
    """One notification per group of `events` (same type, bundle, commit, reason)."""
    groups: dict[GroupKey, list[Event]] = {}
    for event in events:
        groups.setdefault(group_key(event), []).append(event)
    out = []
    for key, members in groups.items():
        latest: dict[tuple[str, str], Event] = {}
        for i, event in enumerate(members):  # one per unit (the newest): duplicates are noise
            latest[event.unit or (event.bundle or "", event.cluster or f"#{i}")] = event
        chosen = tuple(latest.values())
        first = chosen[0]
        out.append(
            Notification(
                first.type,
                title(chosen),
                max((e.level for e in chosen), key=lambda s: s.rank),
                chosen,
                fleet=first.fleet,
                bundle=first.bundle,
                commit=first.commit,
                reason=first.reason,
                resolved=key[4],
                status_url=status_url,
                repeat=repeat,
            )
        )
    return out


def title(events: Sequence[Event]) -> str:
    """The line people read: "web: ErrApplied on 37 clusters: Deployment web/web: ..."."""
    first = events[0]
    if len(events) == 1 and first.cluster is None:
        return first.message
    clusters = sorted({e.cluster for e in events if e.cluster})
    where = _where(clusters)
    who = f"{first.bundle}: " if first.bundle else ""
    if is_recovery(first):
        state = first.details.get("state") or "working again"
        return f"{who}recovered on {where} ({state})"
    if first.type is EventType.UNIT_FAILED:
        state, sep, rest = first.reason.partition(": ")
        if sep and state.isalpha():
            return f"{who}{state} on {where}: {rest}"
        return f"{who}failed on {where}: {first.reason}"
    if first.type is EventType.UNIT_APPLIED:
        return f"{who}applied on {where} ({first.details.get('state', first.reason)})"
    if first.type is EventType.CLUSTER_UNREACHABLE:
        return f"{where} unreachable: {first.reason.removeprefix('unreachable: ')}"
    return f"{who}{first.type.value} on {where}: {first.reason}"


def _where(clusters: Sequence[str]) -> str:
    if not clusters:
        return "the fleet"
    if len(clusters) <= 3:
        return ", ".join(clusters)
    return f"{len(clusters)} clusters"


def worst(events: Iterable[Event]) -> Severity:
    return max((e.level for e in events), key=lambda s: s.rank, default=Severity.INFO)
