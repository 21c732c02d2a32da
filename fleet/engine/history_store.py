"""What a sync writes to the unit's revision history (`fleet.engine.history`), and when.

`fleet.engine.unit` calls `history_due` and `keep_revision` after a successful apply and
before it writes the inventory. The inventory's current revision carries the number of
its history revision (`DeployedRevision.history`), so a no-op sync (same id, same state,
same objects, a number recorded) asks nothing of the history: no request at all. Work is
due when the inventory changes (a new id, a new state, other objects) or when the current
revision has no number yet (fleet upgraded to one that keeps history, or an earlier
history write was refused): one metadata LIST of the unit's revisions, then at most one
create or one patch, and the deletes of revisions beyond the limit.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, replace

from fleet.engine.history import (
    PAYLOAD_KEY,
    REVISION_REF,
    Payload,
    Revision,
    RevisionStatus,
    encode_payload,
    latest_for,
    list_revisions,
    now,
    patch_secret,
    revision_secret,
)
from fleet.engine.identity import Owner
from fleet.engine.inventory import INVENTORY_NAMESPACE, Inventory, ensure_system_namespace
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, Conflict, KubeError, NotFound
from fleet.engine.labels import (
    ANN_APPLIED_AT,
    ANN_COMMIT,
    ANN_DETAILS,
    ANN_DIGEST,
    ANN_NOT_ROLLBACKABLE,
    ANN_REASON,
    ANN_SEQUENCE,
    LABEL_REVISION_STATUS,
)
from fleet.manifest import Manifest
from fleet.spec.bundle_options import BundleOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """What one successful (not dry-run) sync applied: what its revision records."""

    owner: Owner
    deployment_id: str
    commit: str
    manifests: list[Manifest]
    options: BundleOptions
    ready: bool  # the unit is Ready at this id now

    @property
    def status(self) -> RevisionStatus:
        return "ready" if self.ready else "applied"


def history_due(old: Inventory, new: Inventory | None) -> bool:
    """Does this sync have history work? Not when the inventory stays as it was and its
    current revision already has its history number (a no-op sync)."""
    current = old.current
    return new is not None or current is None or current.history == 0


def is_redeploy(old: Inventory, deployment_id: str) -> bool:
    """True when `deployment_id` is not what the unit ran until now (a new deployment,
    or an older one back, as in a rollback): its revision's status starts over."""
    return old.current is None or old.current.deployment_id != deployment_id


def with_history(old: Inventory, new: Inventory | None, number: int | None) -> Inventory | None:
    """The inventory to write once the revision is kept as `number` (None: not kept)."""
    base = new if new is not None else old
    current = base.current
    if number is None or current is None or current.history == number:
        return new
    revisions = [*base.revisions[:-1], replace(current, history=number)]
    return replace(base, revisions=revisions)


def keep_revision(
    conn: ClusterConnection, applied: Applied, *, redeploy: bool, limit: int
) -> int | None:
    """Record `applied` in the history; its revision number, or None when the history
    could not be written (logged: history never fails a sync). `ClusterUnreachable`
    propagates like everywhere in the engine."""
    try:
        return _keep(conn, applied, redeploy=redeploy, limit=limit)
    except ClusterUnreachable:
        raise
    except (KubeError, TypeError, ValueError) as err:
        log.warning(
            "%s: revision history of bundle %s not written (%s); the next sync tries again",
            conn.name,
            applied.owner.bundle,
            err,
        )
        return None


def _keep(conn: ClusterConnection, applied: Applied, *, redeploy: bool, limit: int) -> int:
    owner = applied.owner
    revisions = list_revisions(conn, owner.bundle, owner.fleet)
    payload = encode_payload(
        owner, applied.deployment_id, applied.commit, applied.manifests, applied.options
    )
    if payload.not_rollbackable:
        log.warning("%s: bundle %s: %s", conn.name, owner.bundle, payload.not_rollbackable)
    sequence = max((r.sequence for r in revisions), default=0) + 1
    existing = latest_for(revisions, applied.deployment_id)
    if existing is None:
        number = max((r.number for r in revisions), default=0) + 1
        _create(conn, applied, number, sequence, payload)
        log.info("%s: bundle %s: revision %d kept", conn.name, owner.bundle, number)
        _evict(conn, revisions, limit - 1)
        return number
    patch = _update(existing, applied, payload, redeploy=redeploy, sequence=sequence)
    if patch:
        patch_secret(conn, existing.name, patch, f"update revision {existing.number}")
    return existing.number


def _create(
    conn: ClusterConnection, applied: Applied, number: int, sequence: int, payload: Payload
) -> None:
    body = revision_secret(
        applied.owner,
        number,
        deployment_id=applied.deployment_id,
        commit=applied.commit,
        status=applied.status,
        sequence=sequence,
        payload=payload,
    )
    res = conn.resource("v1", "Secret")
    path = res.collection_path(INVENTORY_NAMESPACE)
    what = f"create revision {number} of bundle {applied.owner.bundle}"
    try:
        conn.request("POST", path, body=body, what=what, kind="Secret")
    except NotFound:  # the first write to this cluster: no fleet-system yet
        ensure_system_namespace(conn)
        conn.request("POST", path, body=body, what=what, kind="Secret")


def _update(
    existing: Revision, applied: Applied, payload: Payload, *, redeploy: bool, sequence: int
) -> Manifest:
    """The merge patch that brings an existing revision up to date; {} when it is."""
    labels: dict[str, str] = {}
    annotations: dict[str, str | None] = {}
    if redeploy:  # it runs again after another one: a fresh record
        labels[LABEL_REVISION_STATUS] = applied.status
        annotations |= {ANN_APPLIED_AT: now(), ANN_SEQUENCE: str(sequence)}
        annotations |= {ANN_REASON: None, ANN_DETAILS: None}
    elif existing.status == "applied" and applied.ready:
        labels[LABEL_REVISION_STATUS] = "ready"
    patch: Manifest = {}
    if existing.digest != payload.digest:  # other manifests at the same id (a retry)
        annotations |= {
            ANN_DIGEST: payload.digest,
            ANN_COMMIT: applied.commit,
            ANN_NOT_ROLLBACKABLE: payload.not_rollbackable or None,
        }
        patch["data"] = {PAYLOAD_KEY: base64.b64encode(payload.data).decode()}
    if labels or annotations:
        patch["metadata"] = {"labels": labels, "annotations": annotations}
    return patch


def _evict(conn: ClusterConnection, revisions: list[Revision], keep: int) -> None:
    """Delete the revisions applied longest ago, so `keep` of them remain (plus the new one)."""
    by_age = sorted(revisions, key=lambda r: (r.sequence, r.number))
    for revision in by_age[: max(0, len(by_age) - keep)]:
        try:
            conn.delete(replace(REVISION_REF, name=revision.name))
        except Conflict:
            continue
        log.info("%s: bundle %s: revision %d dropped", conn.name, revision.bundle, revision.number)
