"""Look at a deployed unit without writing: drift first, then health.

`fleet status`, `fleet explain` and the workers' drift checks use it; it prepares the
objects exactly as a sync does (`fleet.engine.sync_pass.dedupe`), so what it compares is
what a sync would apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleet.engine.apply import live_objects, prepare, resolve
from fleet.engine.drift import DriftItem, detect_drift
from fleet.engine.health import Health
from fleet.engine.identity import Owner
from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.engine.sync_pass import dedupe
from fleet.engine.wait import evaluate, first_unready
from fleet.manifest import Manifest
from fleet.spec.bundle_options import BundleOptions
from fleet.states import BundleState


@dataclass
class Inspection:
    """What a deployed unit looks like live: drift first, then health (nothing written)."""

    state: BundleState  # Modified (drift), NotReady (health) or Ready
    message: str
    drift: list[DriftItem] = field(default_factory=list)
    objects: int = 0
    health: dict[ObjectRef, Health] = field(default_factory=dict)  # per object, apply order


def inspect(
    conn: ClusterConnection,
    bundle: str,
    deployment_id: str,
    manifests: list[Manifest],
    options: BundleOptions,
    *,
    health: bool = True,
    fleet: str | None = None,
) -> Inspection:
    """Look at a unit the cluster runs: one prepare, one resolve, one LIST per kind.

    Server-side dry runs only: nothing is written. Objects changed by hand come back as
    `modified` drift (with the JSON pointers that differ), deleted ones as `missing`, and the
    unit is Modified; otherwise, with `health`, the health rules judge the live objects.
    The same objects as a sync would apply (duplicates deduplicated the same way). With
    `health`, `Inspection.health` holds every object's verdict, drift or not (`fleet
    status --tree`, `fleet explain` show them); it costs no request beyond the LISTs.
    """
    owner = Owner(bundle, fleet)
    desired = dedupe(prepare(manifests, owner, deployment_id, options.target_namespace))
    for item in desired:
        resolve(conn, item)
    live = {
        ref: obj
        for ref, obj in live_objects(conn, owner, desired, full=True).items()
        if owner.owns(obj)
    }
    patches = options.diff.compare_patches if options.diff else []
    drift = detect_drift(conn, desired, live, patches)
    verdicts = evaluate([d for d in desired if d.res is not None], live) if health else {}
    if drift:
        more = f" (+{len(drift) - 1} more)" if len(drift) > 1 else ""
        message = f"{drift[0]}{more}"
        return Inspection(BundleState.MODIFIED, message, drift, len(desired), verdicts)
    unready = first_unready(verdicts)
    if unready is not None:
        ref, verdict = unready
        message = f"{ref}: {verdict.message}"
        return Inspection(BundleState.NOT_READY, message, [], len(desired), verdicts)
    message = f"{len(desired)} objects ready, no drift" if health else "no drift"
    return Inspection(BundleState.READY, message, [], len(desired), verdicts)


def check_drift(
    conn: ClusterConnection,
    bundle: str,
    deployment_id: str,
    manifests: list[Manifest],
    options: BundleOptions,
    *,
    fleet: str | None = None,
) -> list[DriftItem]:
    """The drift items alone (`inspect` without the health verdict)."""
    return inspect(conn, bundle, deployment_id, manifests, options, health=False, fleet=fleet).drift


def drift_state(items: list[DriftItem]) -> BundleState:
    """Modified when anything drifted, else Ready (health is judged separately)."""
    return BundleState.MODIFIED if items else BundleState.READY
