"""Each unit's revision history, kept in the cluster: what a rollback puts back.

A rollback must put back exactly what ran before, not a re-render of whatever an old
commit resolves to today (a chart version may be gone, a tag may have moved). So after
each successful apply `fleet.engine.unit` records the manifests it was given (rendered,
before fleet's own labels and annotations are stamped) and the bundle options it applied
them with, next to the inventory: one **Secret** per revision in `fleet-system`, named
`<inventory>.r<N>` (`fleet.engine.inventory.inventory_name` is at most 127 characters,
so the name stays far below the 253 allowed). A Secret, not a ConfigMap, because the
manifests may be Secrets themselves; Helm keeps its releases in Secrets for the same reason.

Layout of one revision (`kubectl get secrets -n fleet-system -l fleet-gitops.io/history`):

- labels `history: "true"`, the bundle's and fleet's labels, `revision` (the number) and
  `revision-status`, so one metadata-only LIST with a label selector finds a unit's
  revisions and their state without reading any manifest;
- annotations: deployment id, commit, `applied-at` (last applied), `sequence` (the order
  revisions were last applied in: a rollback re-applies an old number), `revision-digest`,
  and what the rollout layer set (`revision-reason`, `revision-details`);
- `data["revision.json.gz"]`: gzip of canonical JSON (sorted keys) of what never changes
  for a revision: bundle, fleet, deployment id, commit, the options
  (`BundleOptions.model_dump(by_alias=True, mode="json")`) and the manifests.

The status is metadata, not part of the compressed JSON, so marking a revision is one
small merge patch and listing shows it. Statuses: `applied` (written; not Ready yet),
`ready` (the unit became Ready at that deployment id), `failed` and `rolledBack` (set by
the rollout layer and `fleet.engine.rollback`, with a one-line reason and, for
rolledBack, free-form JSON details). A sync of the same deployment id updates its
revision (a retry or a drift pass is no new revision) and only ever moves it from
`applied` to `ready`; re-deploying an id after another one ran (a rollback) resets it.

Bounds: the last `FLEET_HISTORY_LIMIT` revisions (default 10, at least 2), in the order
they were last applied, are kept; older ones are deleted when a new one is added, and a
bundle's removal deletes its history. A revision whose compressed payload does not fit
a Secret (1 MiB) is kept without manifests, `not-rollbackable` with the reason. History
is never the reason a sync fails: a refused history write is logged and retried at the
next sync (`fleet.engine.unit`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import ValidationError

from fleet.engine.identity import Owner, short_name
from fleet.engine.inventory import INVENTORY_NAMESPACE, MERGE_PATCH, inventory_name
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, KubeError, ObjectRef
from fleet.engine.labels import (
    ANN_APPLIED_AT,
    ANN_BUNDLE,
    ANN_COMMIT,
    ANN_DEPLOYMENT,
    ANN_DETAILS,
    ANN_DIGEST,
    ANN_FLEET,
    ANN_NOT_ROLLBACKABLE,
    ANN_REASON,
    ANN_SEQUENCE,
    LABEL_FLEET,
    LABEL_HISTORY,
    LABEL_MANAGED_BY,
    LABEL_REVISION,
    LABEL_REVISION_STATUS,
    MANAGED_BY,
)
from fleet.errors import UserError
from fleet.manifest import Manifest
from fleet.spec.bundle_options import BundleOptions

log = logging.getLogger(__name__)

RevisionStatus = Literal["applied", "ready", "failed", "rolledBack"]
STATUSES: tuple[RevisionStatus, ...] = ("applied", "ready", "failed", "rolledBack")
SECRET_TYPE = "fleet-gitops.io/revision.v1"
PAYLOAD_KEY = "revision.json.gz"
MAX_PAYLOAD_BYTES = 1_000_000  # a Secret's data may hold 1 MiB; room left for the rest
MAX_DETAILS_BYTES = 64 * 1024  # annotations hold 256 KiB in all
MAX_REASON = 300
REVISION_REF = ObjectRef("v1", "Secret", INVENTORY_NAMESPACE, "")


class HistoryUnreadable(UserError):
    """A revision that is not there, not this unit's, or whose payload cannot be decoded."""


@dataclass
class Revision:
    """One revision of a (bundle, cluster) unit, as its history Secret records it.

    From `list_revisions` only the record is known (`loaded` is False: `manifests` and
    `options` are None); `read_revision` (or `load`) reads the payload too."""

    bundle: str
    fleet: str | None
    number: int
    deployment_id: str
    commit: str
    applied_at: str
    status: RevisionStatus
    reason: str = ""
    details: Any = None
    sequence: int = 0  # the order revisions were last applied in (higher: later)
    rollbackable: bool = True
    not_rollbackable_reason: str = ""  # why its manifests were not kept (too big)
    digest: str = ""
    manifests: list[Manifest] | None = field(default=None, repr=False)
    options: BundleOptions | None = field(default=None, repr=False)

    @property
    def loaded(self) -> bool:
        """True when the payload was read (`manifests` is None for an unrollbackable one)."""
        return self.options is not None

    @property
    def name(self) -> str:
        return revision_name(self.bundle, self.fleet, self.number)

    def load(self, conn: ClusterConnection) -> Revision:
        """This revision with its manifests and options (one GET)."""
        return self if self.loaded else read_revision(conn, self.bundle, self.fleet, self.number)


def revision_name(bundle: str, fleet: str | None, number: int) -> str:
    """`<fleet>.bundle-<bundle>.r<N>`: the inventory's name (hashed where long) plus the
    number, at most 127 + 12 characters."""
    return f"{inventory_name(bundle, fleet)}.r{number}"


def selector(owner: Owner) -> str:
    """The label selector of one unit's revisions (a fleet-less owner excludes fleets')."""
    parts = [f"{LABEL_HISTORY}=true", owner.selector]
    if owner.fleet is None:
        parts.append(f"!{LABEL_FLEET}")
    return ",".join(parts)


# ---------------------------------------------------------------------- the payload


@dataclass(frozen=True)
class Payload:
    """A revision's compressed JSON, its digest, and why it holds no manifests (if so)."""

    data: bytes
    digest: str
    not_rollbackable: str = ""


def encode_payload(
    owner: Owner,
    deployment_id: str,
    commit: str,
    manifests: list[Manifest],
    options: BundleOptions,
    *,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Payload:
    """Canonical JSON (sorted keys, no spaces), gzipped; without manifests when too big.

    The digest is the sha256 of the JSON: the same manifests and options at the same id
    and commit give the same digest, so a re-sync need not rewrite the payload."""
    body: dict[str, Any] = {
        "version": 1,
        "bundle": owner.bundle,
        "fleet": owner.fleet,
        "deploymentId": deployment_id,
        "commit": commit,
        "options": options.model_dump(mode="json", by_alias=True, exclude_none=True),
        "manifests": manifests,
    }
    text = _canonical(body)
    digest = hashlib.sha256(text.encode()).hexdigest()
    data = gzip.compress(text.encode(), compresslevel=6, mtime=0)
    if len(data) <= max_bytes:
        return Payload(data, digest)
    why = (
        f"manifests too big to keep ({len(data)} bytes compressed, a revision holds at most "
        f"{max_bytes})"
    )
    small = _canonical({**body, "manifests": None, "options": None})
    return Payload(gzip.compress(small.encode(), mtime=0), digest, why)


def decode_payload(data: bytes) -> tuple[list[Manifest] | None, BundleOptions | None, str]:
    """(manifests, options, commit) from a payload; `ValueError` when it is not one."""
    try:
        raw = json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(f"not a gzipped JSON revision ({type(err).__name__})") from None
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise ValueError("not a version 1 revision payload")
    manifests = raw.get("manifests")
    if manifests is not None and not (
        isinstance(manifests, list) and all(isinstance(m, dict) for m in manifests)
    ):
        raise ValueError("its manifests are not a list of objects")
    options = raw.get("options")
    try:
        parsed = BundleOptions.model_validate(options) if options is not None else None
    except ValidationError as err:
        raise ValueError(f"its options do not validate ({err.error_count()} errors)") from None
    return manifests, parsed, str(raw.get("commit", ""))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------- Secrets <-> Revision


def revision_secret(
    owner: Owner,
    number: int,
    *,
    deployment_id: str,
    commit: str,
    status: RevisionStatus,
    sequence: int,
    payload: Payload,
    applied_at: str | None = None,
) -> Manifest:
    """The Secret of a new revision."""
    annotations = {
        **owner.annotations(),
        ANN_DEPLOYMENT: deployment_id,
        ANN_COMMIT: commit,
        ANN_APPLIED_AT: applied_at or now(),
        ANN_SEQUENCE: str(sequence),
        ANN_DIGEST: payload.digest,
    }
    if payload.not_rollbackable:
        annotations[ANN_NOT_ROLLBACKABLE] = payload.not_rollbackable
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": revision_name(owner.bundle, owner.fleet, number),
            "namespace": INVENTORY_NAMESPACE,
            "labels": {
                LABEL_HISTORY: "true",
                **owner.labels(),
                LABEL_REVISION: str(number),
                LABEL_REVISION_STATUS: status,
                LABEL_MANAGED_BY: MANAGED_BY,
            },
            "annotations": annotations,
        },
        "data": {PAYLOAD_KEY: base64.b64encode(payload.data).decode()},
    }


def revision_of(secret: Manifest, owner: Owner) -> Revision | None:
    """The record a Secret (whole or metadata only) holds; None when it is not one of
    `owner`'s revisions (another fleet's bundle whose names shorten to the same labels)."""
    meta = secret.get("metadata") or {}
    labels, ann = meta.get("labels") or {}, meta.get("annotations") or {}
    if ann.get(ANN_BUNDLE) != owner.bundle or ann.get(ANN_FLEET) != owner.fleet:
        return None
    number = str(labels.get(LABEL_REVISION, ""))
    if not number.isdigit():
        return None
    status = labels.get(LABEL_REVISION_STATUS)
    why = ann.get(ANN_NOT_ROLLBACKABLE, "")
    return Revision(
        owner.bundle,
        owner.fleet,
        int(number),
        ann.get(ANN_DEPLOYMENT, ""),
        ann.get(ANN_COMMIT, ""),
        ann.get(ANN_APPLIED_AT, ""),
        cast(RevisionStatus, status) if status in STATUSES else "applied",
        ann.get(ANN_REASON, ""),
        _details(ann.get(ANN_DETAILS)),
        int(ann[ANN_SEQUENCE]) if str(ann.get(ANN_SEQUENCE, "")).isdigit() else 0,
        rollbackable=not why,
        not_rollbackable_reason=why,
        digest=ann.get(ANN_DIGEST, ""),
    )


def _details(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- reading and marking


def list_revisions(conn: ClusterConnection, bundle: str, fleet: str | None) -> list[Revision]:
    """The unit's revisions, oldest first by number: one metadata-only LIST, no payload
    read (`Revision.load` or `read_revision` reads one). `KubeError`s propagate."""
    owner = Owner(bundle, fleet)
    res = conn.resource("v1", "Secret")
    items = conn.list_objects(
        res, INVENTORY_NAMESPACE, label_selector=selector(owner), metadata_only=True
    )
    found = [r for r in (revision_of(item, owner) for item in items) if r is not None]
    return sorted(found, key=lambda r: r.number)


def list_rolled_back(conn: ClusterConnection, fleet: str) -> list[Revision]:
    """Every `rolledBack` revision of `fleet`'s bundles on this cluster (their records
    only): one metadata-only LIST with a label selector on the status, however many
    bundles the fleet has. What a runtime rebuilds its rejected revisions from when its
    rollout records were lost. `KubeError`s propagate."""
    res = conn.resource("v1", "Secret")
    labels = [f"{LABEL_HISTORY}=true", f"{LABEL_FLEET}={short_name(fleet)}",
              f"{LABEL_REVISION_STATUS}=rolledBack"]  # fmt: skip
    items = conn.list_objects(
        res, INVENTORY_NAMESPACE, label_selector=",".join(labels), metadata_only=True
    )
    found = []
    for item in items:
        bundle = ((item.get("metadata") or {}).get("annotations") or {}).get(ANN_BUNDLE)
        revision = revision_of(item, Owner(bundle, fleet)) if bundle else None
        if revision is not None and revision.status == "rolledBack":
            found.append(revision)
    return sorted(found, key=lambda r: (r.bundle, r.number))


def read_revision(conn: ClusterConnection, bundle: str, fleet: str | None, number: int) -> Revision:
    """Revision `number` with its manifests and options; `HistoryUnreadable` (one line,
    naming the bundle and the cluster) when there is none or it cannot be decoded."""
    owner = Owner(bundle, fleet)
    name = revision_name(bundle, fleet, number)
    where = f"{conn.name}: revision {number} of bundle {bundle}"
    secret = conn.get(replace(REVISION_REF, name=name))
    revision = revision_of(secret, owner) if secret is not None else None
    if secret is None or revision is None:
        raise HistoryUnreadable(f"{where}: no such revision (Secret {INVENTORY_NAMESPACE}/{name})")
    try:
        raw = base64.b64decode((secret.get("data") or {})[PAYLOAD_KEY])
        manifests, options, _ = decode_payload(raw)
    except (KeyError, TypeError, ValueError) as err:
        raise HistoryUnreadable(f"{where}: Secret {INVENTORY_NAMESPACE}/{name}: {err}") from None
    if options is None:
        options = BundleOptions()  # an unrollbackable revision keeps neither
    revision.manifests, revision.options = manifests, options
    if manifests is None and revision.rollbackable:
        revision.rollbackable = False
        revision.not_rollbackable_reason = "its manifests were not kept"
    return revision


def mark_revision(
    conn: ClusterConnection,
    bundle: str,
    fleet: str | None,
    deployment_id: str,
    status: RevisionStatus,
    reason: str = "",
    details: Any = None,
) -> Revision | None:
    """Set the status of the unit's revision at `deployment_id` (one LIST, one merge
    patch of its metadata); None when the history has no revision for that id.

    `reason` is one line (cut at 300 characters); `details` any JSON value, at most
    64 KiB encoded (`ValueError` above), replaced (None removes them)."""
    if status not in STATUSES:
        raise ValueError(f"unknown revision status {status!r} (one of {', '.join(STATUSES)})")
    text = _canonical(details) if details is not None else None
    if text is not None and len(text.encode()) > MAX_DETAILS_BYTES:
        raise ValueError(f"revision details of {len(text)} bytes (at most {MAX_DETAILS_BYTES})")
    revision = latest_for(list_revisions(conn, bundle, fleet), deployment_id)
    if revision is None:
        log.warning(
            "%s: bundle %s has no revision at %s to mark %s",
            conn.name,
            bundle,
            deployment_id[:12],
            status,
        )
        return None
    patch = {
        "metadata": {
            "labels": {LABEL_REVISION_STATUS: status},
            "annotations": {ANN_REASON: one_line(reason) or None, ANN_DETAILS: text},
        }
    }
    updated = patch_secret(conn, revision.name, patch, f"mark revision {revision.number} {status}")
    return revision_of(updated, Owner(bundle, fleet))


def one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_REASON]


def latest_for(revisions: list[Revision], deployment_id: str) -> Revision | None:
    """The last applied revision at `deployment_id` (there is one, unless two writers raced)."""
    mine = [r for r in revisions if r.deployment_id == deployment_id]
    return max(mine, key=_order) if mine else None


def previous_good(revisions: list[Revision], current_deployment_id: str) -> Revision | None:
    """What a rollback from `current_deployment_id` returns to: the revision applied
    last before the current one whose status is `ready` (failed and rolled-back ones are
    skipped). When the current id has no revision, the last `ready` one of another id."""
    current = latest_for(revisions, current_deployment_id)
    before = [
        r
        for r in revisions
        if r.deployment_id != current_deployment_id
        and r.status == "ready"
        and (current is None or _order(r) < _order(current))
    ]
    return max(before, key=_order) if before else None


def _order(revision: Revision) -> tuple[int, int]:
    return (revision.sequence, revision.number)


def patch_secret(conn: ClusterConnection, name: str, body: Manifest, what: str) -> Manifest:
    res = conn.resource("v1", "Secret")
    return conn.request(
        "PATCH",
        res.object_path(INVENTORY_NAMESPACE, name),
        body=body,
        content_type=MERGE_PATCH,
        what=what,
        kind="Secret",
    )


def delete_history(conn: ClusterConnection, bundle: str, fleet: str | None) -> int:
    """Delete every revision of a removed bundle; how many. A refused LIST or delete is
    logged (the Secrets stay, harmless: a later deploy numbers on from them)."""
    try:
        revisions = list_revisions(conn, bundle, fleet)
        for revision in revisions:
            conn.delete(replace(REVISION_REF, name=revision.name))
    except ClusterUnreachable:
        raise
    except KubeError as err:
        log.warning("%s; the history of bundle %s is left in %s", err, bundle, INVENTORY_NAMESPACE)
        return 0
    return len(revisions)
