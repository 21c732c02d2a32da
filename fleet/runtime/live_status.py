"""`fleet status`: what the clusters run compared with what Git wants, without writing.

Per (bundle, cluster): the inventory says which deployment id the cluster runs. A unit at
its desired id is then looked at live: `fleet.engine.inspect` (server-side dry runs) finds
objects edited or deleted by hand -> Modified; the health rules judge the live objects ->
NotReady. A unit the planner holds back (dependsOn, a wave, a window; asked without the
rollout tracker, clusters found down as offline) is Pending with the planner's reason; a
unit at another id is OutOfSync, one never deployed too; a bundle this fleet
deployed that left Git is listed as a removal the next sync will do. The clusters are a
`fleet.runtime.clusters.ClusterSet`, as for `fleet sync`, without its orchestrator.

With `objects` (`fleet status --tree`) each unit looked at live keeps every object's
verdict (`UnitStatus.objects`): the same LISTs, no extra request. Units not looked at
(another id, failed, cluster down) keep None: there is nothing live to judge yet.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from pathlib import Path

from fleet import config, engine
from fleet.desired import load_desired
from fleet.engine.kube import ClusterConnection, KubeError
from fleet.manifest import Manifest
from fleet.plugin.manager import FleetPlugins
from fleet.rollout.planner import plan
from fleet.runtime.clusters import ClusterLink, ClusterSet
from fleet.runtime.embedded import Progress
from fleet.source.local import resolve_source
from fleet.states import BundleState
from fleet.status.model import FleetStatus, ObjectHealth, UnitStatus
from fleet.status.rows import needs_look, removal_row, unit_row
from fleet.targeting.selectors import selector_matches
from fleet.targeting.units import DeploymentUnit


def _look(
    link: ClusterLink,
    unit: DeploymentUnit,
    manifests: list[Manifest],
    row: UnitStatus,
    fleet: str,
    objects: bool = False,
) -> None:
    def inspect(conn: ClusterConnection) -> engine.Inspection:
        return engine.inspect(
            conn, unit.bundle, unit.deployment_id, manifests, unit.options, fleet=fleet
        )

    try:
        seen = link.call(f"inspect {unit.bundle}", inspect)
        row.state, row.message = seen.state, seen.message
        if objects:
            row.objects = object_health(seen)
    except KubeError as err:
        row.state, row.message = BundleState.ERR_APPLIED, err.reason


def object_health(seen: engine.Inspection) -> list[ObjectHealth]:
    """Every object's verdict of a live look, in apply order."""
    return [ObjectHealth(str(ref), h.ready, h.message) for ref, h in seen.health.items()]


def fleet_status(
    source: str | Path,
    *,
    branch: str | None = None,
    clusters: Collection[str] = (),
    progress: Progress | None = None,
    env: Mapping[str, str] | None = None,
    plugins: FleetPlugins | None = None,
    retries: int = 1,
    backoff: float = 0.5,
    objects: bool = False,
) -> FleetStatus:
    """The live status of every unit of the source's commit (see module docstring)."""
    say = progress or (lambda line: None)
    checkout = resolve_source(source, branch)
    desired = load_desired(
        checkout.path, checkout.commit, plugins or FleetPlugins.load(), clusters=clusters
    )
    specs = {c.name: c for c in desired.repo.definition.clusters}
    units = {u.key: u for u in desired.units}
    status = FleetStatus(desired.fleet_name, desired.commit)
    if objects:
        status.groups = {
            g.name: [c for c in desired.clusters if selector_matches(g.selector, specs[c].labels)]
            for g in desired.repo.definition.groups
        }
    with ClusterSet(
        [specs[name] for name in desired.clusters], retries=retries, backoff=backoff, log=say
    ) as run:
        run.connect(config.current().env if env is None else env)
        actual = {
            key: rec.to_actual()
            for key, rec in run.read_deployed(desired.fleet_name, units).items()
        }
        rollout = desired.repo.definition.rollout
        planned = plan(desired.units, actual, rollout, now=time.time(), offline=list(run.down))
        waves = planned.unit_waves
        waiting = {w.unit.key: w.reason for w in planned.waiting}

        def look(link_name: str) -> list[UnitStatus]:
            link = run[link_name]
            rows = []
            for unit in desired.units:
                if unit.cluster != link_name:
                    continue
                record = actual.get(unit.key)
                row = unit_row(unit, record, down=link.down, wave=waves.get(unit.key, ""),
                               waiting=waiting.get(unit.key))  # fmt: skip
                if link.down is None and needs_look(unit, record):
                    _look(link, unit, desired.manifests(unit), row, desired.fleet_name, objects)
                rows.append(row)
            return rows

        started = time.monotonic()
        found = run.each(lambda link: look(link.name))
        for name in desired.clusters:
            rows = found.get(name)
            if rows is None:  # unreachable from the start
                rows = look(name)
            status.units.extend(rows)
        for bundle, cluster in sorted(k for k in actual if k not in units):
            status.removed.append(removal_row(bundle, cluster, actual[(bundle, cluster)]))
        say(f"looked at {len(status.units)} units in {time.monotonic() - started:.1f}s")
    return status
