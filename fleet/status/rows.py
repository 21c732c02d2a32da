"""One status row per unit, in the same words whichever mode built it.

`fleet sync` (after its pass), `fleet status` (live from the clusters) and `fleet serve`'s
`/status` (from the Redis cache and the last plan) each know different things about a
unit. Each hands what it knows to `unit_row` (and `removal_row` for a bundle that left
Git) and the same case reads the same everywhere. The first that applies wins:

1. the result of a sync done in this pass (`fleet sync`, `fleet diff`);
2. the cluster is down: ErrApplied, "cluster unreachable: <why>" (and "; <reason>" when
   the planner holds the unit back, e.g. "offline (skipped by the wave's offline policy)");
3. the cluster runs the desired id: its state, and its message (or "in sync" when Ready,
   "last sync failed" when ErrApplied, when nobody recorded a message);
4. the last attempt failed and we know why (ErrApplied with a message): that message;
5. the cluster's inventories were not read yet (`fleet serve` after a start or a loss);
6. the planner holds the unit back (rollout wave, dependsOn): Pending, the reason;
7. nothing deployed: OutOfSync, "not deployed"; another id: OutOfSync,
   "runs <id>, Git wants <id>". `fleet serve` adds "; dispatched" (it has sent the task).

`fleet status` then looks live at the units of case 3 that are not ErrApplied
(`needs_look`) and replaces their state and message with what it sees.
"""

from __future__ import annotations

from fleet.engine import RemovalResult, UnitResult
from fleet.states import ActualUnit, BundleState
from fleet.status.model import UnitStatus
from fleet.targeting.units import DeploymentUnit

INVENTORIES_UNREAD = "waiting for the cluster's inventories to be read"
_NO_MESSAGE = {BundleState.READY: "in sync", BundleState.ERR_APPLIED: "last sync failed"}


def at_desired(unit: DeploymentUnit, actual: ActualUnit | None) -> bool:
    """The cluster runs the deployment id Git wants for this unit."""
    return actual is not None and actual.deployment_id == unit.deployment_id


def needs_look(unit: DeploymentUnit, actual: ActualUnit | None) -> bool:
    """A unit `fleet status` inspects live: deployed at its id and not failed."""
    return at_desired(unit, actual) and (
        actual is not None and actual.state is not BundleState.ERR_APPLIED
    )


def unit_row(
    unit: DeploymentUnit,
    actual: ActualUnit | None,
    *,
    result: UnitResult | None = None,
    dry_run: bool = False,
    down: str | None = None,
    inventories_unread: bool = False,
    waiting: str | None = None,
    dispatched: bool = False,
    wave: str = "",
) -> UnitStatus:
    """The row of one desired unit; see the module docstring for the order of the cases."""
    row = UnitStatus(
        unit.cluster,
        unit.bundle,
        BundleState.PENDING,
        unit.deployment_id,
        actual.commit if actual is not None else "",
        wave=wave,
    )
    then = "; dispatched" if dispatched else ""
    if result is not None:
        row.state, row.message, row.writes = result.state, result.message, result.writes
        if dry_run and result.diff:
            row.message = f"would change: {len(result.diff.splitlines())} diff lines"
        if not dry_run and result.state is not BundleState.ERR_APPLIED:
            row.commit = result.commit
    elif down is not None:
        row.state, row.message = BundleState.ERR_APPLIED, f"cluster unreachable: {down}"
        if waiting is not None:  # e.g. the wave's offline policy skipped it
            row.message += f"; {waiting}"
    elif actual is not None and at_desired(unit, actual):
        row.state = actual.state
        row.message = actual.message or _NO_MESSAGE.get(actual.state, "")
    elif actual is not None and actual.state is BundleState.ERR_APPLIED and actual.message:
        row.state, row.message = BundleState.ERR_APPLIED, actual.message
    elif inventories_unread:
        row.message = INVENTORIES_UNREAD
    elif waiting is not None:
        row.message = waiting
    elif actual is None:
        row.state, row.message = BundleState.OUT_OF_SYNC, f"not deployed{then}"
    else:
        row.state = BundleState.OUT_OF_SYNC
        row.message = f"runs {actual.deployment_id[:12]}, Git wants {unit.short_id}{then}"
    return row


def removal_row(
    bundle: str,
    cluster: str,
    actual: ActualUnit | None,
    *,
    result: RemovalResult | None = None,
    next_step: str = "the next sync removes it",
) -> UnitStatus:
    """The row of a bundle that left Git (or this cluster): removed, failed, or due."""
    commit = actual.commit if actual is not None else ""
    if result is not None:
        commit = result.commit or commit
        return UnitStatus(cluster, bundle, result.state, "", commit, result.message)
    message = f"left Git: {next_step}"
    if actual is not None and actual.state is BundleState.ERR_APPLIED and actual.message:
        message = actual.message  # the last removal attempt failed: say why
    return UnitStatus(cluster, bundle, BundleState.OUT_OF_SYNC, "", commit, message)
