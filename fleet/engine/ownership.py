"""Before fleet writes an object: whose is it, and may this bundle write it?

One decision per desired object, from its live state (`fleet.engine.apply.live_objects`
reads it, whoever owns it) and the commit's claims (`fleet.engine.identity.Claims`):

| live object                                   | verdict                               |
|-----------------------------------------------|---------------------------------------|
| none                                          | CREATE (never forced)                 |
| this bundle's                                 | OURS                                  |
| another bundle's, which still renders it      | CONFLICT: an error naming both        |
| another bundle's, which no longer renders it  | HANDOVER: taken over, same uid        |
| another fleet's                               | OTHER_FLEET: an error, never touched  |
| not fleet's (kubectl, Helm, a controller)     | FOREIGN: an error, unless the bundle  |
|                                               | sets `helm.takeOwnership` (ADOPT)     |

Without claims (the engine used outside a fleet), another bundle's object is a conflict:
fleet cannot tell whether that bundle still wants it, so it does not take it.

A handover or an adoption is a forced server-side apply by the new owner's field manager
(the old owner's manager holds the bundle label, so an unforced apply conflicts); after a
handover the old bundle's manager entries are dropped from `managedFields`, so a field the
new bundle leaves out later is really removed rather than kept alive by a ghost manager.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from fleet.engine.identity import Claims, Owner
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, KubeError, ObjectRef
from fleet.engine.labels import FIELD_MANAGER
from fleet.manifest import Manifest

log = logging.getLogger(__name__)

JSON_PATCH = "application/json-patch+json"


class Claim(StrEnum):
    CREATE = "create"
    OURS = "ours"
    HANDOVER = "handover"
    ADOPT = "adopt"
    CONFLICT = "conflict"
    OTHER_FLEET = "other-fleet"
    FOREIGN = "foreign"

    @property
    def may_write(self) -> bool:
        return self in (Claim.CREATE, Claim.OURS, Claim.HANDOVER, Claim.ADOPT)

    @property
    def forced(self) -> bool:
        """Takes fields from another manager: only when the object changes hands."""
        return self in (Claim.HANDOVER, Claim.ADOPT)


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    message: str = ""
    previous: Owner | None = None


def decide(
    ref: ObjectRef,
    live: Manifest | None,
    owner: Owner,
    claims: Callable[[], Claims | None],
    *,
    take_ownership: bool = False,
) -> Verdict:
    """May `owner` write the object `ref`, live as `live`? See the module docstring.
    `claims` is called only when another bundle owns the object."""
    if live is None:
        return Verdict(Claim.CREATE)
    if owner.owns(live):
        return Verdict(Claim.OURS)
    previous = Owner.of_live(live)
    if previous is None:
        if take_ownership:
            return Verdict(Claim.ADOPT, f"{ref}: adopted (helm.takeOwnership)")
        managers = _managers(live)
        by = f" (managed by {', '.join(managers)})" if managers else ""
        return Verdict(
            Claim.FOREIGN,
            f"{ref} already exists and fleet did not create it{by}; not applied. Set "
            "helm.takeOwnership: true in the bundle's fleet.yaml to adopt it",
        )
    if previous.fleet and owner.fleet and previous.fleet != owner.fleet:
        return Verdict(
            Claim.OTHER_FLEET,
            f"{ref} belongs to bundle {previous.bundle} of fleet {previous.fleet}; not "
            f"applied for bundle {owner.bundle}: fleets never take each other's objects",
            previous,
        )
    known = claims()
    if known is None or previous.bundle in known.bundles(ref):
        return Verdict(
            Claim.CONFLICT,
            f"{ref} is rendered by bundles {previous.bundle} and {owner.bundle}; "
            f"{previous.bundle} owns it, so {owner.bundle}'s copy is not applied: "
            "render each object in one bundle only",
            previous,
        )
    return Verdict(Claim.HANDOVER, f"{ref}: taken over from bundle {previous.bundle}", previous)


def conflict_message(ref: ObjectRef, owner: Owner, error: KubeError) -> str:
    """A 409 from the API server on a write that was not forced: when the other manager is
    another bundle's (it created the object a moment ago), name both bundles."""
    text = str(error)
    prefix = f"{FIELD_MANAGER}/"
    for word in text.replace('"', " ").split():
        if word.startswith(prefix) and word != owner.field_manager:
            other = word.rsplit("/", 1)[-1]
            return (
                f"{ref} is rendered by bundles {other} and {owner.bundle}; {other} owns it, "
                f"so {owner.bundle}'s copy is not applied: render each object in one bundle only"
            )
    return text


def release_previous(
    conn: ClusterConnection, ref: ObjectRef, applied: Manifest, previous: Owner
) -> bool:
    """After a handover: drop the previous owner's field manager from `managedFields`
    (one JSON patch, guarded by the resourceVersion just returned). False when there was
    nothing to drop or the patch was refused (logged; the handover itself stands)."""
    meta = applied.get("metadata") or {}
    entries = meta.get("managedFields") or []
    stale = {previous.field_manager, Owner(previous.bundle).field_manager, FIELD_MANAGER}
    kept = [e for e in entries if e.get("manager") not in stale]
    if len(kept) == len(entries) or not kept:
        return False
    res = conn.resource(ref.api_version, ref.kind)
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
        {"op": "replace", "path": "/metadata/managedFields", "value": kept},
    ]
    try:
        conn.request(
            "PATCH",
            res.object_path(ref.namespace if res.namespaced else None, ref.name),
            body=patch,
            content_type=JSON_PATCH,
            what=f"release {ref} from bundle {previous.bundle}'s field manager",
            kind=ref.kind,
        )
    except ClusterUnreachable:
        raise
    except KubeError as err:
        log.warning("%s; the handover stands", err)
        return False
    return True


def _managers(live: Manifest) -> list[str]:
    entries = (live.get("metadata") or {}).get("managedFields") or []
    return sorted({str(e.get("manager")) for e in entries if e.get("manager")})
