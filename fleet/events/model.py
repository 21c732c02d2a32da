"""The event record, and what a notifier plugin receives: `Notification`, `NotifierTarget`.

One `Event` per change, the same in both modes and in every sink (Redis stream, JSON lines,
Kubernetes Event, notifiers), so `fleet events -o json` reads what a webhook receives.

Types are dotted `subject.verb` names. The set covers what fleet does today (commits,
units, bundles, drift, clusters) and what progressive delivery will add: `wave.*` events
carry `wave`, `rollout.*` events are about one commit, fleet-wide (`bundle` None) or per
bundle. `details` holds extra string fields a type needs (a gate's result, a wave's
counts) without changing the record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """Every kind of event fleet emits."""

    COMMIT_DETECTED = "commit.detected"  # a new commit is loaded and will be rolled out
    COMMIT_REJECTED = "commit.rejected"  # a broken commit: applied nowhere (file:line)
    UNIT_APPLIED = "unit.applied"  # a bundle's new state reached a cluster (or recovered)
    UNIT_FAILED = "unit.failed"  # ErrApplied: apply, removal, render or health failed
    UNIT_PRUNED = "unit.pruned"  # objects that left the bundle were deleted
    BUNDLE_REMOVED = "bundle.removed"  # the bundle left Git (or this cluster): deleted
    DRIFT_DETECTED = "drift.detected"  # objects changed outside fleet (Modified)
    DRIFT_CORRECTED = "drift.corrected"  # correctDrift put Git's values back
    WAVE_STARTED = "wave.started"
    WAVE_PASSED = "wave.passed"
    WAVE_FAILED = "wave.failed"
    ROLLOUT_SUCCEEDED = "rollout.succeeded"  # every unit of the commit Ready
    ROLLOUT_FAILED = "rollout.failed"  # some unit of the commit ErrApplied
    ROLLOUT_ROLLED_BACK = "rollout.rolledBack"
    CLUSTER_UNREACHABLE = "cluster.unreachable"
    CLUSTER_RECOVERED = "cluster.recovered"
    NOTIFIER_FAILED = "notifier.failed"  # a notifier could not deliver (after its retries)
    IMAGE_UPDATED = "image.updated"  # image policies' new tags committed back to Git
    IMAGE_SCAN_FAILED = "image.scanFailed"  # an image policy picked nothing this scan
    IMAGE_PROMOTION_HELD = "image.promotionHeld"  # a tag's next wave waits on a failed one


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}

DEFAULT_SEVERITY: dict[EventType, Severity] = {
    EventType.COMMIT_REJECTED: Severity.ERROR,
    EventType.UNIT_FAILED: Severity.ERROR,
    EventType.DRIFT_DETECTED: Severity.WARNING,
    EventType.WAVE_FAILED: Severity.ERROR,
    EventType.ROLLOUT_FAILED: Severity.ERROR,
    EventType.ROLLOUT_ROLLED_BACK: Severity.WARNING,
    EventType.CLUSTER_UNREACHABLE: Severity.ERROR,
    EventType.NOTIFIER_FAILED: Severity.WARNING,
    EventType.IMAGE_SCAN_FAILED: Severity.WARNING,
    EventType.IMAGE_PROMOTION_HELD: Severity.WARNING,
}


def severity_of(kind: EventType) -> Severity:
    """The severity an event of this type has unless its emitter says otherwise."""
    return DEFAULT_SEVERITY.get(kind, Severity.INFO)


@dataclass(frozen=True)
class Event:
    """One change. `message` is one line for people; `reason` is the same cause without
    the cluster's name in it (what grouping across clusters compares); `objects` are
    `Kind namespace/name` of the objects involved. Never any Secret data or credential."""

    type: EventType
    message: str
    fleet: str = ""
    bundle: str | None = None
    cluster: str | None = None
    commit: str = ""
    deployment_id: str = ""
    severity: Severity | None = None  # None: the type's default (`severity_of`)
    time: float = field(default_factory=time.time)
    objects: tuple[str, ...] = ()
    reason: str = ""
    wave: str = ""
    details: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", EventType(self.type))
        level = severity_of(self.type) if self.severity is None else Severity(self.severity)
        object.__setattr__(self, "severity", level)
        object.__setattr__(self, "message", _one_line(self.message))
        object.__setattr__(self, "reason", _one_line(self.reason or self.message))
        object.__setattr__(self, "objects", tuple(self.objects))

    @property
    def level(self) -> Severity:
        """The severity, resolved (never None after construction)."""
        return self.severity or severity_of(self.type)

    @property
    def unit(self) -> tuple[str, str] | None:
        """(bundle, cluster) when the event is about one unit."""
        if self.bundle is None or self.cluster is None:
            return None
        return (self.bundle, self.cluster)

    def to_json(self) -> dict[str, Any]:
        """The JSON form every sink writes (keys in the README's camelCase)."""
        out: dict[str, Any] = {
            "type": self.type.value,
            "severity": self.level.value,
            "time": round(self.time, 3),
            "fleet": self.fleet,
            "bundle": self.bundle,
            "cluster": self.cluster,
            "commit": self.commit,
            "deploymentId": self.deployment_id,
            "message": self.message,
            "objects": list(self.objects),
            "reason": self.reason,
        }
        if self.wave:
            out["wave"] = self.wave
        if self.details:
            out["details"] = dict(self.details)
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Event:
        """An event read back from a sink; unknown keys are ignored (newer writers)."""
        return cls(
            type=EventType(str(raw["type"])),
            message=str(raw.get("message", "")),
            fleet=str(raw.get("fleet") or ""),
            bundle=_opt(raw.get("bundle")),
            cluster=_opt(raw.get("cluster")),
            commit=str(raw.get("commit") or ""),
            deployment_id=str(raw.get("deploymentId") or ""),
            severity=Severity(str(raw.get("severity") or severity_of(EventType(raw["type"])))),
            time=float(raw.get("time") or 0.0),
            objects=tuple(str(o) for o in raw.get("objects") or ()),
            reason=str(raw.get("reason") or ""),
            wave=str(raw.get("wave") or ""),
            details={str(k): str(v) for k, v in (raw.get("details") or {}).items()},
        )


@dataclass(frozen=True)
class Notification:
    """What a notifier sends: one message about one or more events of one kind.

    `events` share type, bundle and reason (the same failure on `clusters`); `title` is
    the line people read ("ErrApplied on 37 clusters: image pull back-off"). `resolved`
    marks a recovery: the units in `events` work again (Alertmanager ends their alerts,
    a commit status turns green). `status_url` links to `fleet serve`'s /status, when the
    operator set `FLEET_PUBLIC_URL`. `repeat` marks a reminder of failures still going
    on, sent every `FLEET_ALERT_RESEND` seconds so Alertmanager keeps them firing;
    notifiers that tell people (chat, webhooks, commit statuses) ignore reminders.
    """

    type: EventType
    title: str
    severity: Severity
    events: tuple[Event, ...]
    fleet: str = ""
    bundle: str | None = None
    commit: str = ""
    reason: str = ""
    resolved: bool = False
    status_url: str = ""
    repeat: bool = False  # a reminder of alerts still firing (for Alertmanager; chat ignores)

    @property
    def clusters(self) -> list[str]:
        return sorted({e.cluster for e in self.events if e.cluster})

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "title": self.title,
            "severity": self.severity.value,
            "fleet": self.fleet,
            "bundle": self.bundle,
            "commit": self.commit,
            "reason": self.reason,
            "resolved": self.resolved,
            "repeat": self.repeat,
            "clusters": self.clusters,
            "statusUrl": self.status_url or None,
            "events": [e.to_json() for e in self.events],
        }


@dataclass(frozen=True)
class NotifierTarget:
    """One entry of the definition's `notifiers`, as its plugin gets it.

    `url` comes from Git. `secret` and `api_url` come from the operator's environment
    (`FLEET_NOTIFIER_<CREDENTIAL>` and `FLEET_NOTIFIER_<CREDENTIAL>_URL`): a plugin that
    sends a token sends it only to `api_url` or its own default, never to a URL from Git.
    `options` are the type's own keys (`repository`, `project`, `context`, ...).
    """

    name: str
    type: str
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    api_url: str | None = None
    options: Mapping[str, str] = field(default_factory=dict, hash=False)
    timeout: float = 10.0  # seconds per attempt
    retries: int = 3  # attempts after the first, for errors that may pass (5xx, 429, network)
    backoff: float = 1.0  # first wait between attempts, doubled each time (fleet.backoff)


@dataclass(frozen=True)
class Delivery:
    """What a notifier plugin returns: delivered, or not and why (one line, no secret)."""

    ok: bool
    message: str = ""
    attempts: int = 1

    @classmethod
    def failed(cls, message: str, attempts: int = 1) -> Delivery:
        return cls(False, message, attempts)


def summarise(events: Sequence[Event]) -> str:
    """`Kind ns/name, Kind ns/name (+3)`: the objects of events, for a message."""
    names = sorted({o for e in events for o in e.objects})
    if len(names) <= 3:
        return ", ".join(names)
    return f"{', '.join(names[:3])} (+{len(names) - 3})"


def _opt(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _one_line(text: str) -> str:
    first = " ".join(str(text).split())
    return first if len(first) <= 500 else first[:497] + "..."
