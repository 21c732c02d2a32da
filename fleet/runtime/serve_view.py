"""What `fleet serve` shows: the status model (`/status`) and Prometheus metrics (`/metrics`).

`/status` is the same `fleet.status.model.FleetStatus` that `fleet status -o json` prints (rows of
cluster x bundle with Rancher Fleet's states and the roll-ups), built from the scheduler's
last tick (desired units, the Redis cache, the plan) instead of from the clusters, plus a
`source` section: the revision in force, the last Git error and a broken commit's problems,
and `rollouts`: each bundle's rollout record as `fleet rollout status` shows it (waves,
verdicts, gate messages, what is not rolled out again; the unit rows say why each waits).

`/metrics` is the Prometheus text exposition format (version 0.0.4): the scheduler's own
families written here, then the workers' (`fleet.runtime.metrics`, pushed through Redis,
rendered by prometheus-client; the clusters' reachability from
`fleet.runtime.reachability`); every family has HELP and TYPE lines.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from fleet.rollout import record as rec
from fleet.rollout.mass_delete import SERVE_ALLOW
from fleet.rollout.tracker import RolloutTracker
from fleet.runtime.metrics import queue_depths, workers_exposition
from fleet.runtime.reachability import read_reachability
from fleet.runtime.scheduler import Scheduler
from fleet.runtime.tasks import CONTROL_QUEUE, apply_queue
from fleet.states import BundleState
from fleet.status.model import FleetStatus
from fleet.status.rollouts import rollout_json, wave_phase
from fleet.status.rows import removal_row, unit_row

log = logging.getLogger(__name__)
CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"


def fleet_status(scheduler: Scheduler) -> FleetStatus:
    """Rows for every desired unit and every removal due, from the last tick."""
    desired, current = scheduler.desired, scheduler.plan
    if desired is None:
        return FleetStatus("", "")
    status = FleetStatus(desired.fleet_name, desired.commit)
    waiting = (
        {(w.unit.bundle, w.unit.cluster): w.reason for w in current.waiting} if current else {}
    )
    waves = current.unit_waves if current else {}
    for unit in desired.units:
        rec = scheduler.cached.get(unit.key)
        seen = scheduler.known.get(unit.cluster)
        error = str(seen["error"]) if seen is not None and seen.get("error") else None
        row = unit_row(
            unit,
            rec,
            down=error if rec is None else None,  # else the cache's last view stands
            inventories_unread=seen is None,
            waiting=waiting.get(unit.key),
            dispatched=True,
            wave=waves.get(unit.key, ""),
        )
        status.units.append(row)
    if current is not None:
        held = scheduler.mass_delete is not None
        step = "held by the mass-delete guard (see massDelete)" if held else "removal dispatched"
        for removal in current.removals:
            rec = scheduler.cached.get((removal.bundle, removal.cluster))
            status.removed.append(removal_row(removal.bundle, removal.cluster, rec, next_step=step))
    return status


def source_section(scheduler: Scheduler) -> dict[str, Any]:
    poller, revision = scheduler.poller, scheduler.revision
    return {
        "url": scheduler.source.display_url,
        "ref": scheduler.source.ref,
        "revision": revision.sha if revision else None,
        "revisionMessage": revision.message if revision else None,
        "error": poller.last_error,
        "failedPolls": poller.failures,
        "commitError": scheduler.commit_error,
    }


def rollouts_section(scheduler: Scheduler) -> list[dict[str, Any]]:
    """Each bundle of the commit in force with a rollout record (the last tick's
    tracker): `fleet.status.rollouts.rollout_json`. The unit rows say why each unit waits."""
    tracker = scheduler.tracker
    if tracker is None:
        return []
    return [
        rollout_json(tracker.records[bundle], tracker.controls.get(bundle))
        for bundle in sorted(tracker.revisions)
        if bundle in tracker.records
    ]


def status_json(scheduler: Scheduler) -> str:
    status = fleet_status(scheduler)
    body = {
        **status.to_json(),
        "rollouts": rollouts_section(scheduler),
        "source": source_section(scheduler),
        "unknownClusters": scheduler.stats.unknown_clusters,
        "massDelete": (
            scheduler.mass_delete.to_json(SERVE_ALLOW) if scheduler.mass_delete else None
        ),
        "scheduler": scheduler.leader.status() if scheduler.leader else {"leader": True},
        "converged": bool(scheduler.plan and scheduler.plan.converged) and status.ready,
    }
    return json.dumps(body, indent=2) + "\n"


def metrics_text(scheduler: Scheduler) -> str:
    """The Prometheus exposition of the scheduler's counters and gauges."""
    status = fleet_status(scheduler)
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {_number(value)}")

    counts = status.counts()
    family(
        "fleet_units",
        "gauge",
        "Deployment units by state at the revision in force.",
        [(f'{{state="{s.value}"}}', counts.get(s, 0)) for s in BundleState],
    )
    family(
        "fleet_tasks_dispatched_total",
        "counter",
        "Tasks sent to the workers since start, by task name.",
        [(f'{{task="{t}"}}', n) for t, n in sorted(scheduler.totals.items())],
    )
    family("fleet_ticks_total", "counter", "Scheduler ticks since start.", [("", scheduler.ticks)])
    family(
        "fleet_image_scans_total",
        "counter",
        "Image policy scans of the image loop since start, by result (ok, failed, error).",
        [(f'{{result="{r}"}}', n) for r, n in sorted(scheduler.image_scans.items())],
    )
    leading = scheduler.leader is None or scheduler.leader.leader
    family(
        "fleet_scheduler_leader",
        "gauge",
        "1 while this fleet serve holds the fleet's leader lease and dispatches, else 0.",
        [("", 1 if leading else 0)],
    )
    family(
        "fleet_tick_duration_seconds",
        "gauge",
        "Duration of the last scheduler tick.",
        [("", scheduler.stats.seconds)],
    )
    revision = scheduler.revision
    family(
        "fleet_revision_info",
        "gauge",
        "The commit in force (last good revision).",
        [(f'{{commit="{revision.sha}"}}', 1)] if revision else [],
    )
    synced = (
        revision is not None and status.ready and bool(scheduler.plan and scheduler.plan.converged)
    )
    family(
        "fleet_last_sync_commit_info",
        "gauge",
        "The commit every unit is Ready at (present once converged).",
        [(f'{{commit="{revision.sha}"}}', 1)] if synced and revision else [],
    )
    family(
        "fleet_converged",
        "gauge",
        "1 when every unit is Ready at its desired id.",
        [("", 1 if synced else 0)],
    )
    family(
        "fleet_source_up",
        "gauge",
        "1 when the last Git fetch succeeded.",
        [("", 0 if scheduler.poller.last_error else 1)],
    )
    family(
        "fleet_source_failed_polls",
        "gauge",
        "Git fetches failed in a row.",
        [("", scheduler.poller.failures)],
    )
    family(
        "fleet_commit_broken",
        "gauge",
        "1 when the newest commit failed to load and is not applied.",
        [("", 1 if scheduler.commit_error else 0)],
    )
    held = len(scheduler.plan.removals) if scheduler.mass_delete and scheduler.plan else 0
    family(
        "fleet_removals_held",
        "gauge",
        "Removals the mass-delete guard holds (see /status massDelete).",
        [("", held)],
    )
    family(
        "fleet_redis_data_lost_total",
        "counter",
        "Times Redis lost its data.",
        [("", scheduler.redis_lost)],
    )
    sent = scheduler.events.notifier.sender.results if scheduler.events else {}
    family(
        "fleet_notifications_total",
        "counter",
        "Notifications handed to notifier plugins, by notifier and result (ok, failed, dropped).",
        [(f'{{notifier="{n}",result="{r}"}}', v) for (n, r), v in sorted(sent.items())],
    )
    family(
        "fleet_unit_info",
        "gauge",
        "One series per unit: its state and the commit it runs (revision).",
        [
            (f'{{bundle="{u.bundle}",cluster="{u.cluster}",state="{u.state.value}",'
             f'revision="{u.commit[:12]}"}}', 1)
            for u in status.units
        ],
    )  # fmt: skip
    family(
        "fleet_rollout_wave",
        "gauge",
        "1 for each bundle's wave in its current phase (pending, progressing, verifying, "
        "passed, failed, halted, rolledBack).",
        [
            (f'{{bundle="{bundle}",wave="{wave}",phase="{phase}"}}', 1)
            for (bundle, wave), phase in sorted(wave_phases(status, scheduler.tracker).items())
        ],
    )
    family(
        "fleet_gate_result",
        "gauge",
        "1 for each gate of each bundle's wave at its current revision, by its last answer "
        "(pending, passed, failed, inconclusive).",
        [
            (f'{{bundle="{b}",wave="{w}",gate="{g}",type="{t}",result="{r}"}}', 1)
            for b, w, g, t, r in gate_results(scheduler.tracker)
        ],
    )
    if scheduler.desired is not None:  # the workers' metrics, pushed through Redis
        clusters = scheduler.desired.repo.definition.clusters
        queues = sorted({apply_queue(c.effective_region) for c in clusters} | {CONTROL_QUEUE})
        ns, wanted = scheduler.desired.fleet_name, set(scheduler.desired.clusters)
        try:
            depths = queue_depths(scheduler.redis, queues)
            seen = {c: r for c, r in read_reachability(scheduler.redis, ns).items() if c in wanted}
            workers = workers_exposition(scheduler.redis, ns)
        except redis.RedisError as err:
            log.warning("/metrics without the workers' metrics: Redis failed (%s)", err)
            depths, seen, workers = {}, {}, ""
        family(
            "fleet_cluster_reachable",
            "gauge",
            "1 when the workers last reached the cluster's API server, 0 from a failed "
            "contact until the next successful one (no series: not tried yet).",
            [(f'{{cluster="{c}"}}', 1 if r.reachable else 0) for c, r in seen.items()],
        )
        family(
            "fleet_cluster_last_contact_timestamp_seconds",
            "gauge",
            "When a worker last reached the cluster's API server (Unix time).",
            [(f'{{cluster="{c}"}}', r.last_contact) for c, r in seen.items()
             if r.last_contact is not None],
        )  # fmt: skip
        family(
            "fleet_worker_queue_depth",
            "gauge",
            "Tasks waiting in each worker queue (fleet.apply.<region>, fleet.control).",
            [(f'{{queue="{q}"}}', n) for q, n in depths.items()],
        )
        return "\n".join(lines) + "\n" + workers
    return "\n".join(lines) + "\n"


def gate_results(tracker: RolloutTracker | None) -> list[tuple[str, str, str, str, str]]:
    """(bundle, wave, gate, type, last verdict) of every gate asked at the bundles'
    current revisions (label values are names: DNS labels and gate names, never text
    from a gate's message)."""
    if tracker is None:
        return []
    found = []
    for record in tracker.records.values():
        if record.revision != tracker.revisions.get(record.bundle):
            continue
        for wave in record.waves.values():
            for gate in wave.gates.values():
                found.append((record.bundle, wave.name, gate.name, gate.type, gate.verdict))
    return sorted(found)


def wave_phases(
    status: FleetStatus, tracker: RolloutTracker | None = None
) -> dict[tuple[str, str], str]:
    """(bundle, wave) -> its phase. The tracker's verdict on the wave at the bundle's
    current revision first (`fleet.status.rollouts.wave_phase`: verifying, passed,
    failed, halted, rolledBack; a wave not reached by a rollout that ended: pending, it
    will not start); else from the unit rows: failed (some unit ErrApplied), passed
    (every unit Ready or Modified at its desired id), pending (none started), else
    progressing."""
    states: dict[tuple[str, str], list[BundleState]] = {}
    for row in status.units:
        states.setdefault((row.bundle, row.wave or "-"), []).append(row.state)
    phases = {}
    for key, found in states.items():
        if BundleState.ERR_APPLIED in found:
            phases[key] = "failed"
        elif all(s in (BundleState.READY, BundleState.MODIFIED) for s in found):
            phases[key] = "passed"
        elif all(s is BundleState.PENDING for s in found):
            phases[key] = "pending"
        else:
            phases[key] = "progressing"
    if tracker is None:
        return phases
    for bundle, wave in list(phases):
        record = tracker.records.get(bundle)
        if record is None or record.revision != tracker.revisions.get(bundle):
            continue
        verdict = wave_phase(record.waves[wave]) if wave in record.waves else None
        if verdict is not None:
            phases[(bundle, wave)] = verdict
        elif record.finished and record.outcome != rec.SUCCEEDED:
            phases[(bundle, wave)] = "pending"
    return phases


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6f}"
