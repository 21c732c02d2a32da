"""`fleet status`: what the clusters run compared with what Git wants, without writing.

Per (bundle, cluster): the inventory says which deployment id the cluster runs. A unit at
its desired id is then looked at live: `fleet.engine.unit.check_drift` (server-side dry
runs) finds objects edited or deleted by hand -> Modified; the health rules judge the
live objects -> NotReady. A unit at another id is OutOfSync, one never deployed too; a
bundle this fleet deployed that left Git is listed as a removal the next sync will do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping
from pathlib import Path

from fleet.desired import load_desired
from fleet.engine.apply import live_objects, prepare, resolve
from fleet.engine.kube import ClusterConnection, KubeError
from fleet.engine.unit import check_drift
from fleet.engine.wait import evaluate, first_unready
from fleet.manifest import Manifest
from fleet.plugin.manager import FleetPlugins
from fleet.runtime.clusters import ClusterLink
from fleet.runtime.embedded import Progress, SyncRun
from fleet.source.local import resolve_source
from fleet.spec.bundle_options import BundleOptions
from fleet.states import BundleState
from fleet.status.model import FleetStatus, UnitStatus
from fleet.targeting.units import DeploymentUnit


def inspect_unit(
    conn: ClusterConnection,
    bundle: str,
    deployment_id: str,
    manifests: list[Manifest],
    options: BundleOptions,
) -> tuple[BundleState, str]:
    """Modified (drift), NotReady (health) or Ready for a unit the cluster runs."""
    drift = check_drift(conn, bundle, deployment_id, manifests, options)
    if drift:
        more = f" (+{len(drift) - 1} more)" if len(drift) > 1 else ""
        return BundleState.MODIFIED, f"{drift[0]}{more}"
    default_ns = options.namespace or options.default_namespace or "default"
    desired = prepare(manifests, bundle, deployment_id, default_ns)
    for item in desired:
        resolve(conn, item)
    live = live_objects(conn, bundle, desired)
    unready = first_unready(evaluate([d for d in desired if d.res is not None], live))
    if unready is not None:
        ref, verdict = unready
        return BundleState.NOT_READY, f"{ref}: {verdict.message}"
    return BundleState.READY, f"{len(desired)} objects ready, no drift"


def _look(
    link: ClusterLink, unit: DeploymentUnit, manifests: list[Manifest], row: UnitStatus
) -> None:
    def inspect(conn: ClusterConnection) -> tuple[BundleState, str]:
        return inspect_unit(conn, unit.bundle, unit.deployment_id, manifests, unit.options)

    try:
        row.state, row.message = link.call(f"inspect {unit.bundle}", inspect)
    except KubeError as err:
        row.state, row.message = BundleState.ERR_APPLIED, str(err)


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
) -> FleetStatus:
    """The live status of every unit of the source's commit (see module docstring)."""
    say = progress or (lambda line: None)
    checkout = resolve_source(source, branch)
    desired = load_desired(
        checkout.path, checkout.commit, plugins or FleetPlugins.load(), clusters=clusters
    )
    run = SyncRun(desired, say, retries=retries, backoff=backoff)
    status = FleetStatus(desired.fleet_name, desired.commit)
    try:
        run.connect(os.environ if env is None else env)
        run.read_actual()
        waves = run.plan().waves

        def look(link_name: str) -> list[UnitStatus]:
            link = run.links[link_name]
            rows = []
            for unit in desired.units:
                if unit.cluster != link_name:
                    continue
                key = (unit.bundle, unit.cluster)
                record = run.actual.get(key)
                row = UnitStatus(
                    unit.cluster,
                    unit.bundle,
                    BundleState.OUT_OF_SYNC,
                    unit.deployment_id,
                    record.commit if record else "",
                    wave=waves.get(unit.cluster, ""),
                )
                if link.down is not None:
                    row.state, row.message = BundleState.ERR_APPLIED, f"unreachable: {link.down}"
                elif record is None:
                    row.message = "not deployed"
                elif record.deployment_id != unit.deployment_id:
                    row.message = f"runs {record.deployment_id[:12]}, Git wants {unit.short_id}"
                elif record.state is BundleState.ERR_APPLIED:
                    row.state, row.message = record.state, "last sync failed"
                else:
                    _look(link, unit, desired.manifests[key], row)
                rows.append(row)
            return rows

        started = time.monotonic()
        found = run._each_cluster(lambda link: look(link.name))
        for name in desired.clusters:
            rows = found.get(name)
            if rows is None:  # unreachable from the start
                rows = look(name)
            status.units.extend(rows)
        for bundle, cluster in sorted(k for k in run.actual if k not in run.units):
            record = run.actual[(bundle, cluster)]
            status.removed.append(
                UnitStatus(
                    cluster,
                    bundle,
                    BundleState.OUT_OF_SYNC,
                    "",
                    record.commit,
                    "left Git: the next sync removes it",
                )
            )
        say(f"looked at {len(status.units)} units in {time.monotonic() - started:.1f}s")
    finally:
        run.close()
    return status
