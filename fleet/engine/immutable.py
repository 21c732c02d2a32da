"""Immutable fields: name the field that blocks an apply, and recreate the object on request.

Some fields can only be set when an object is created: a Deployment's `spec.selector`, a
Job's `spec.template`, a Service's `clusterIP`, most of a StatefulSet's or a PVC's spec.
Changing one in Git makes every apply fail with the same Invalid error. Without an
opt-in that stays an error (ErrApplied), but one that says which field is immutable and
how to opt in. With one, the object is deleted (uid precondition: never an object
created since it was read), fleet waits until it is gone and creates it from Git, the way
Rancher Fleet's `helm.force` (`helm upgrade --force`) and Argo CD's
`argocd.argoproj.io/sync-options: Force=true,Replace=true` do.

The opt-ins (`force_wanted`):

- `helm.force: true` in the bundle's `fleet.yaml` (Rancher's "override immutable
  resources"): every apply of the bundle may recreate;
- `correctDrift.force: true`: a drift correction may recreate (Rancher's meaning);
- per object, the annotation `fleet-gitops.io/force: "true"` on the manifest in Git, or
  Argo CD's `argocd.argoproj.io/sync-options` with both `Force=true` and `Replace=true`.

Before anything is deleted the new object is validated by a server-side dry-run create:
an object the API server would refuse to create is not deleted (the error is reported
and the live object keeps running).
"""

from __future__ import annotations

import logging
import re
import time

from fleet.engine.apply import Action, Desired, ObjectResult, apply_one
from fleet.engine.identity import Owner
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, Conflict, Invalid, KubeError
from fleet.engine.labels import PREFIX
from fleet.manifest import Manifest
from fleet.spec.bundle_options import BundleOptions
from fleet.states import BundleState

log = logging.getLogger(__name__)

ANN_FORCE = f"{PREFIX}/force"
ARGO_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
GONE_WAIT_SECONDS = 60.0
# The API server's wording for "only settable at creation" (apimachinery's
# ValidateImmutableField, Service clusterIPs, StatefulSet, PVC and Pod spec rules).
_IMMUTABLE = re.compile(
    r"immutable|may not change once set|updates to .+ are forbidden|"
    r"may not change fields other than",
    re.IGNORECASE,
)
_FIELD_IN_MESSAGE = re.compile(r"([A-Za-z][\w.\[\]-]*): (?:Invalid value|Forbidden)")
OPT_IN_HINT = (
    "set helm.force: true in the bundle's fleet.yaml or annotate the object "
    'fleet-gitops.io/force: "true" to delete and recreate it'
)


def immutable_fields(err: KubeError) -> list[str]:
    """The field paths an Invalid error refuses because they cannot change; [] otherwise."""
    if not isinstance(err, Invalid):
        return []
    fields = [c.field or "(unnamed field)" for c in err.causes if _IMMUTABLE.search(c.message)]
    if fields or err.causes:
        return sorted(set(fields))
    if not _IMMUTABLE.search(err.reason):  # no causes: the one-line message alone
        return []
    return sorted(set(_FIELD_IN_MESSAGE.findall(err.reason))) or ["(unnamed field)"]


def annotation_forces(body: Manifest) -> bool:
    """The manifest asks to be recreated when an immutable field changes."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(ANN_FORCE, "")).lower() == "true":
        return True
    options = {o.strip() for o in str(annotations.get(ARGO_SYNC_OPTIONS, "")).split(",")}
    return {"Force=true", "Replace=true"} <= options


def force_wanted(options: BundleOptions, *, drift: bool) -> bool:
    """The bundle lets fleet recreate objects: `helm.force`, or `correctDrift.force` for a
    drift correction (`drift`)."""
    if options.helm is not None and options.helm.force:
        return True
    return drift and options.correct_drift is not None and options.correct_drift.force


def apply_or_recreate(
    conn: ClusterConnection,
    desired: Desired,
    owner: Owner,
    *,
    exists: bool,
    force: bool,
    recreate: bool,
    live: Manifest | None,
    dry_run: bool = False,
    timeout: float = GONE_WAIT_SECONDS,
) -> ObjectResult:
    """`apply_one`, and when that fails on an immutable field: recreate (opted in) or say
    which field and how to opt in."""
    result = apply_one(conn, desired, owner, exists=exists, force=force, dry_run=dry_run)
    if result.action is not Action.FAILED or result.error is None:
        return result
    fields = immutable_fields(result.error)
    if not fields or not exists:
        return result
    what = f"{desired.ref}: immutable field{'s' if len(fields) > 1 else ''} {', '.join(fields)}"
    if not (recreate or annotation_forces(desired.body)):
        result.message = f"{what} differs from Git; {OPT_IN_HINT}"
        return result
    return recreate_object(conn, desired, owner, live, what, dry_run=dry_run, timeout=timeout)


def recreate_object(
    conn: ClusterConnection,
    desired: Desired,
    owner: Owner,
    live: Manifest | None,
    what: str,
    *,
    dry_run: bool = False,
    timeout: float = GONE_WAIT_SECONDS,
) -> ObjectResult:
    """Validate the new object, delete the live one (uid precondition), wait until it is
    gone (at most `GONE_WAIT_SECONDS`), create it from Git. Every failure is a result;
    nothing is deleted unless the new object passed the server's validation."""
    ref = desired.ref
    timeout = min(timeout, GONE_WAIT_SECONDS)

    def failed(message: str) -> ObjectResult:
        log.warning("%s", message)
        return ObjectResult(ref, Action.FAILED, BundleState.ERR_APPLIED, message)

    try:
        problem = _create_refused(conn, desired)
        if problem:
            return failed(f"{what} differs; not recreated, the new object is refused: {problem}")
        if dry_run:
            return ObjectResult(ref, Action.RECREATED, message=f"{what}: would recreate",
                                hash=desired.hash, live=desired.body)  # fmt: skip
        current = live if live is not None and _uid(live) else conn.get(ref)
        uid = _uid(current) if current is not None else ""
        if current is not None:
            conn.delete(ref, uid=uid or None)
            log.info("%s: deleted %s to recreate it (%s)", conn.name, ref, what)
            if not _wait_gone(conn, desired, uid, timeout):
                return failed(
                    f"{what}: deleted, still terminating after {timeout:.0f}s "
                    "(finalizers?); it is created at the next sync"
                )
    except ClusterUnreachable:
        raise
    except Conflict as err:  # the uid precondition: someone recreated it meanwhile
        return failed(f"{what}: not recreated, it changed meanwhile ({err.reason})")
    except KubeError as err:
        return failed(f"{what}: not recreated ({err.reason})")
    result = apply_one(conn, desired, owner, exists=False, force=True)
    if result.action is Action.CREATED:
        result.action, result.message = Action.RECREATED, f"{what}: recreated"
        log.info("%s: recreated %s", conn.name, ref)
    return result


def _create_refused(conn: ClusterConnection, desired: Desired) -> str:
    """'' when the API server would create this object (dry run), else its reason.

    A dry-run create of an existing name validates the object and then answers 409
    AlreadyExists, which means "valid"."""
    ref = desired.ref
    res = desired.res or conn.resource(ref.api_version, ref.kind)
    try:
        conn.request(
            "POST",
            res.collection_path(ref.namespace if res.namespaced else None),
            query=[("dryRun", "All")],
            body=desired.body,
            what=f"dry-run create {ref}",
            kind=ref.kind,
        )
    except Conflict:
        return ""
    except ClusterUnreachable:
        raise
    except KubeError as err:
        return err.reason
    return ""


def _uid(obj: Manifest) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _wait_gone(conn: ClusterConnection, desired: Desired, uid: str, timeout: float) -> bool:
    """Poll until the object with `uid` no longer exists (True), or `timeout` (False)."""
    deadline = time.monotonic() + timeout
    pause = 0.1
    while True:
        current = conn.get(desired.ref)
        if current is None or (uid and _uid(current) != uid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
