"""Which notifier gets which event: the definition's `notifiers`, and their secrets.

A notifier's route is its `events` (types, `subject.*`, `*`; empty = `DEFAULT_EVENTS`),
`severities`, `bundles` and `clusters` (globs); every given filter must match. A recovery
(`unit.applied` that ends a failure) goes wherever the failure went, so an alert that
fired always resolves. Secrets come from the operator's environment only:
`FLEET_NOTIFIER_<CREDENTIAL>` (the secret) and `FLEET_NOTIFIER_<CREDENTIAL>_URL` (where a
notifier that sends a token may send it), never from Git.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleet.events.alerts import group, is_recovery
from fleet.events.model import Event, EventType, Notification, NotifierTarget
from fleet.spec.definition import NotifierSpec

DEFAULT_EVENTS = (
    "commit.detected",
    "commit.rejected",
    "unit.failed",
    "drift.detected",
    "wave.failed",
    "rollout.*",
    "cluster.*",
)
RECOVERY_OF = {
    EventType.UNIT_APPLIED: EventType.UNIT_FAILED,
    EventType.BUNDLE_REMOVED: EventType.UNIT_FAILED,
    EventType.CLUSTER_RECOVERED: EventType.CLUSTER_UNREACHABLE,
}
SECRET_PREFIX = "FLEET_NOTIFIER_"


def credential_env(credential: str) -> str:
    """`ops-chat` -> `FLEET_NOTIFIER_OPS_CHAT`."""
    return SECRET_PREFIX + re.sub(r"[^A-Z0-9]", "_", credential.upper())


def _type_matches(patterns: Sequence[str], kind: EventType) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == kind.value:
            return True
        if pattern.endswith(".*") and kind.value.startswith(pattern[:-1]):
            return True
    return False


@dataclass(frozen=True)
class Route:
    """One notifier: its target (with the secrets) and the filters from the definition."""

    target: NotifierTarget
    events: tuple[str, ...]
    severities: tuple[str, ...] = ()
    bundles: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()

    def wants(self, event: Event) -> bool:
        kind = event.type
        if not _type_matches(self.events, kind):
            failure = RECOVERY_OF.get(kind)
            if not (is_recovery(event) and failure and _type_matches(self.events, failure)):
                return False
        if self.severities and event.level.value not in self.severities and not is_recovery(event):
            return False
        if self.bundles and not _glob(event.bundle, self.bundles):
            return False
        return not (self.clusters and not _glob(event.cluster, self.clusters))


def _glob(value: str | None, patterns: Sequence[str]) -> bool:
    """Events about the whole fleet (no bundle, no cluster) pass bundle/cluster filters."""
    return value is None or any(fnmatch.fnmatchcase(value, p) for p in patterns)


def routes(
    specs: Sequence[NotifierSpec],
    fleet: str,
    env: Mapping[str, str],
    *,
    backoff: float = 1.0,
) -> list[Route]:
    """The routes of a definition's notifiers, secrets resolved from `env`."""
    out = []
    for spec in specs:
        secret = api_url = None
        if spec.credential:
            name = credential_env(spec.credential)
            secret = env.get(name) or None
            api_url = env.get(f"{name}_URL") or None
        options = {"fleet": fleet, "context": spec.context or f"fleet/{fleet}"}
        if spec.repository:
            options["repository"] = spec.repository
        if spec.credential:
            options["credentialEnv"] = credential_env(spec.credential)
        target = NotifierTarget(
            spec.name,
            spec.type,
            url=spec.url,
            secret=secret,
            api_url=api_url,
            options=options,
            timeout=float(spec.timeout_seconds),
            retries=spec.retries,
            backoff=backoff,
        )
        out.append(
            Route(
                target,
                tuple(spec.events) or DEFAULT_EVENTS,
                tuple(spec.severities),
                tuple(spec.bundles),
                tuple(spec.clusters),
            )
        )
    return out


def notifications_for(
    route: Route, events: Sequence[Event], *, status_url: str = "", repeat: bool = False
) -> list[Notification]:
    """The grouped notifications of `events` this route wants."""
    wanted = [e for e in events if route.wants(e)]
    return group(wanted, status_url=status_url, repeat=repeat) if wanted else []
