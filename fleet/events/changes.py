"""From what the runtimes have to `Event`s: the engine's results, commits, cluster links.

Pure functions. A result becomes an event only when something changed compared with what
the cluster ran before (`previous`, the planner's `ActualUnit`: from the inventories in
`fleet sync`, from the state cache in a worker):

- ErrApplied -> `unit.failed`, unless the unit already failed at the same deployment id
  (a retry that fails again is not news; a new commit that fails is);
- applied objects, a new deployment id, or a new state (NotReady -> Ready, ErrApplied ->
  Ready: `details.recovered`) -> `unit.applied`;
- pruned objects -> `unit.pruned`; objects put back by correctDrift -> `drift.corrected`;
  drift found on a unit that was not Modified -> `drift.detected`;
- a removal -> `bundle.removed` (or `unit.failed` when a delete failed).

A dry run is never an event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from fleet.engine import Action, ObjectResult, RemovalResult, UnitResult
from fleet.engine.drift import DriftItem
from fleet.events.model import Event, EventType, Severity
from fleet.events.wave_summary import WaveTally, describe_waves
from fleet.states import ActualUnit, BundleState

APPLIED_ACTIONS = (Action.CREATED, Action.CONFIGURED, Action.RECREATED)


def unit_events(fleet: str, previous: ActualUnit | None, result: UnitResult) -> list[Event]:
    """The events of one `engine.deploy` result (see the module docstring)."""
    if result.dry_run:
        return []

    def event(
        kind: EventType,
        message: str,
        objects: Iterable[str] = (),
        *,
        reason: str = "",
        severity: Severity | None = None,
        details: dict[str, str] | None = None,
    ) -> Event:
        return Event(
            kind,
            message,
            fleet=fleet,
            bundle=result.bundle,
            cluster=result.cluster,
            commit=result.commit,
            deployment_id=result.deployment_id,
            objects=tuple(objects),
            reason=cluster_free(reason or message, result.cluster),
            severity=severity,
            details=details or {},
        )

    same_id = previous is not None and previous.deployment_id == result.deployment_id
    was = previous.state if previous is not None else None
    out: list[Event] = []
    if result.state is BundleState.ERR_APPLIED:
        if not (same_id and was is BundleState.ERR_APPLIED):
            failed = _names(o for o in result.objects if o.action is Action.FAILED)
            out.append(
                event(
                    EventType.UNIT_FAILED,
                    f"{result.state.value}: {result.message}",
                    failed,
                    reason=f"{result.state.value}: {result.message}",
                )
            )
        return out
    applied = _names(o for o in result.objects if o.action in APPLIED_ACTIONS)
    if applied or not same_id or was is not result.state:
        recovered = was is BundleState.ERR_APPLIED
        level = Severity.WARNING if result.state is BundleState.NOT_READY else Severity.INFO
        details = {"state": result.state.value, "writes": str(result.writes)}
        if recovered:
            details["recovered"] = "true"
        out.append(
            event(
                EventType.UNIT_APPLIED,
                f"{result.state.value}: {result.message}",
                applied,
                severity=level,
                details=details,
                reason=result.state.value,
            )
        )
    pruned = _names(o for o in result.objects if o.action is Action.PRUNED)
    if pruned:
        out.append(event(EventType.UNIT_PRUNED, f"pruned {len(pruned)} objects", pruned))
    corrected = _names(o for o in result.objects if o.action is Action.CORRECTED)
    if corrected:
        out.append(
            event(EventType.DRIFT_CORRECTED, f"corrected drift of {len(corrected)}", corrected)
        )
    elif result.drift and result.state is BundleState.MODIFIED and was is not BundleState.MODIFIED:
        out.append(drift_event(fleet, result.bundle, result.cluster, result.commit,
                               result.deployment_id, result.drift))  # fmt: skip
    return out


def drift_event(
    fleet: str,
    bundle: str,
    cluster: str,
    commit: str,
    deployment_id: str,
    items: Sequence[DriftItem],
) -> Event:
    """`drift.detected` for the drifted objects of one unit."""
    shown = "; ".join(str(i) for i in items[:3]) + (" ..." if len(items) > 3 else "")
    return Event(
        EventType.DRIFT_DETECTED,
        f"{len(items)} objects drifted: {shown}",
        fleet=fleet,
        bundle=bundle,
        cluster=cluster,
        commit=commit,
        deployment_id=deployment_id,
        objects=tuple(str(i.ref) for i in items),
        reason=f"{len(items)} objects drifted",
    )


def drift_events(
    fleet: str,
    previous: ActualUnit | None,
    bundle: str,
    cluster: str,
    deployment_id: str,
    items: Sequence[DriftItem],
) -> list[Event]:
    """A worker's read-only drift check: an event when a unit becomes Modified."""
    if not items or (previous is not None and previous.state is BundleState.MODIFIED):
        return []
    commit = previous.commit if previous is not None else ""
    return [drift_event(fleet, bundle, cluster, commit, deployment_id, items)]


def removal_events(fleet: str, cluster: str, result: RemovalResult) -> list[Event]:
    """`bundle.removed`, or `unit.failed` when the removal failed."""
    if result.dry_run:
        return []
    if result.state is BundleState.ERR_APPLIED:
        message = f"removal failed: {result.message}"
        return [
            Event(
                EventType.UNIT_FAILED,
                message,
                fleet=fleet,
                bundle=result.bundle,
                cluster=cluster,
                commit=result.commit,
                objects=_names(result.failed),
                reason=cluster_free(message, cluster),
            )
        ]
    deleted = _names(o for o in result.objects if o.action is Action.PRUNED)
    return [
        Event(
            EventType.BUNDLE_REMOVED,
            result.message,
            fleet=fleet,
            bundle=result.bundle,
            cluster=cluster,
            commit=result.commit,
            objects=deleted,
            reason="bundle removed",
        )
    ]


def failure_event(
    fleet: str, bundle: str, cluster: str, commit: str, deployment_id: str, message: str
) -> Event:
    """A task that could not do its work at all (render on the worker, no credential)."""
    return Event(
        EventType.UNIT_FAILED,
        f"ErrApplied: {message}",
        fleet=fleet,
        bundle=bundle,
        cluster=cluster,
        commit=commit,
        deployment_id=deployment_id,
        reason=cluster_free(f"ErrApplied: {message}", cluster),
    )


def cluster_unreachable(fleet: str, cluster: str, reason: str) -> Event:
    return Event(
        EventType.CLUSTER_UNREACHABLE,
        f"cluster {cluster} unreachable: {reason}",
        fleet=fleet,
        cluster=cluster,
        reason=cluster_free(f"unreachable: {reason}", cluster),
    )


def cluster_recovered(fleet: str, cluster: str) -> Event:
    return Event(
        EventType.CLUSTER_RECOVERED,
        f"cluster {cluster} answers again",
        fleet=fleet,
        cluster=cluster,
        reason="cluster answers again",
    )


def commit_detected(fleet: str, commit: str, units: int, clusters: int) -> Event:
    return Event(
        EventType.COMMIT_DETECTED,
        f"commit {commit[:12]}: {units} units on {clusters} clusters, rolling out what differs",
        fleet=fleet,
        commit=commit,
        reason="commit detected",
    )


def image_updated(fleet: str, commit: str, branch: str, changes: Sequence[str]) -> Event:
    """Image policies' new tags committed back (`changes`: "path:line policy old -> new")."""
    shown = "; ".join(changes[:3]) + (f" (+{len(changes) - 3})" if len(changes) > 3 else "")
    return Event(
        EventType.IMAGE_UPDATED,
        f"commit {commit[:12]} on {branch} updates {len(changes)} image markers: {shown}",
        fleet=fleet,
        commit=commit,
        reason="image markers updated",
        details={"branch": branch, "changes": "\n".join(changes)},
    )


def image_scan_failed(fleet: str, policy: str, reason: str) -> Event:
    """One policy's scan failed (the reason is the registry client's, credential-free)."""
    return Event(
        EventType.IMAGE_SCAN_FAILED,
        reason,
        fleet=fleet,
        reason=f"image policy {policy} scan failed",
        details={"policy": policy},
    )


def image_promotion_held(
    fleet: str, policy: str, tag: str, bundle: str, wave: str, reason: str
) -> Event:
    """A tag promoted wave by wave stops before `wave` of `bundle`: the wave before it
    failed, halted or was rolled back (`reason`, the rollout's own words)."""
    return Event(
        EventType.IMAGE_PROMOTION_HELD,
        f"image policy {policy}: {tag} is held before {wave} of bundle {bundle}: {reason}",
        fleet=fleet,
        bundle=bundle,
        wave=wave,
        reason=f"image policy {policy} promotion held",
        details={"policy": policy, "tag": tag},
    )


def commit_rejected(fleet: str, commit: str, problems: Sequence[str]) -> Event:
    shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3})" if len(problems) > 3 else "")
    return Event(
        EventType.COMMIT_REJECTED,
        f"commit {commit[:12]} is not applied: {shown}",
        fleet=fleet,
        commit=commit,
        reason="commit rejected",
    )


def rollout_finished(
    fleet: str,
    commit: str,
    counts: dict[str, int],
    ok: bool,
    waves: Sequence[WaveTally] = (),
) -> Event:
    """`rollout.succeeded` / `rollout.failed` for a commit, fleet-wide; `counts` per state,
    `waves` where the commit got to per wave (`fleet.events.wave_summary`): in the message
    when there are several waves, and in `details.waves` (and `details.wave.<name>`)."""
    shown = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    kind = EventType.ROLLOUT_SUCCEEDED if ok else EventType.ROLLOUT_FAILED
    verb = "rolled out" if ok else "failed"
    details = {state: str(n) for state, n in counts.items()}
    message = f"commit {commit[:12]} {verb}: {shown}"
    if waves:
        details["waves"] = describe_waves(waves)
        details.update({f"wave.{w.name}": w.describe().partition(": ")[2] for w in waves})
        if len(waves) > 1:
            message += f" ({details['waves']})"
    return Event(
        kind,
        message,
        fleet=fleet,
        commit=commit,
        reason=f"rollout {verb}",
        details=details,
    )


def cluster_free(message: str, cluster: str | None) -> str:
    """The message without the cluster's name, so the same cause on two clusters compares
    equal (`prod-eu: Deployment web/web: ...` -> `Deployment web/web: ...`)."""
    text = message
    if cluster:
        text = re.sub(rf"(?<![\w-]){re.escape(cluster)}(?![\w-]):\s*", "", text)
        text = re.sub(rf"(?<![\w-]){re.escape(cluster)}(?![\w-])", "<cluster>", text)
    return " ".join(text.split())


def _names(objects: Iterable[ObjectResult]) -> tuple[str, ...]:
    return tuple(str(o.ref) for o in objects)


def rollout_event(
    fleet: str,
    commit: str,
    kind: str,
    bundle: str,
    wave: str,
    message: str,
    revision: str,
    clusters: Sequence[str] = (),
) -> Event:
    """A progressive-delivery verdict (`wave.passed`, `wave.failed`, `rollout.succeeded`,
    `rollout.failed`, `rollout.rolledBack`) of one bundle's revision."""
    where = f" wave {wave}" if wave else ""
    return Event(
        EventType(kind),
        f"{bundle}{where} (revision {revision}): {message}",
        fleet=fleet,
        bundle=bundle,
        commit=commit,
        wave=wave,
        reason=f"{kind}{where}: {message}",
        details={"revision": revision, **({"clusters": ",".join(clusters)} if clusters else {})},
    )
