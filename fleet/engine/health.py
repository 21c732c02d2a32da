"""Is a live object healthy? kstatus-style rules as pure functions over the object's dict.

Rancher Fleet decides Ready with kstatus (sigs.k8s.io/cli-utils); fleet follows the same
rules so a bundle is Ready here exactly when a Rancher or Flux user would expect: a
Deployment once its rollout is complete, a Job once it completed, a PVC once Bound, a CRD
once Established, any object with standard conditions once they say so, and everything else
as soon as it exists. The rules are pure so they are unit-tested without a cluster; the wait
loop that polls the cluster lives in `fleet.engine.wait`.

Each rule returns a `Health`: `CURRENT` (ready), `IN_PROGRESS` (not yet; keep waiting) or
`FAILED` (will not get better by itself; waiting stops early when only failures remain).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Obj = dict[str, Any]


class HealthStatus(StrEnum):
    CURRENT = "Current"
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"


@dataclass(frozen=True)
class Health:
    """The verdict on one object; `message` says why it is not ready (empty when ready)."""

    status: HealthStatus
    message: str = ""

    @property
    def ready(self) -> bool:
        return self.status is HealthStatus.CURRENT


READY = Health(HealthStatus.CURRENT)


def _progress(message: str) -> Health:
    return Health(HealthStatus.IN_PROGRESS, message)


def _failed(message: str) -> Health:
    return Health(HealthStatus.FAILED, message)


def _status(obj: Obj) -> Obj:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _conditions(obj: Obj) -> dict[str, Obj]:
    found: dict[str, Obj] = {}
    for cond in _status(obj).get("conditions") or []:
        if isinstance(cond, dict) and isinstance(cond.get("type"), str):
            found[cond["type"]] = cond
    return found


def _why(cond: Obj) -> str:
    reason = str(cond.get("reason") or "")
    message = str(cond.get("message") or "")
    return ": ".join(p for p in (reason, message) if p)


def _generation_observed(obj: Obj) -> Health | None:
    """kstatus' first rule for every kind: the controller must have seen the latest spec."""
    generation = obj.get("metadata", {}).get("generation")
    observed = _status(obj).get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        return _progress(f"controller has not observed generation {generation} yet")
    return None


def _deployment(obj: Obj) -> Health:
    status, conds = _status(obj), _conditions(obj)
    progressing = conds.get("Progressing", {})
    if progressing.get("status") == "False":  # ProgressDeadlineExceeded and friends
        return _failed(f"rollout failed: {_why(progressing)}")
    if "observedGeneration" not in status:
        return _progress("rollout not started")
    replicas = _int(_spec(obj).get("replicas"), 1)
    updated = _int(status.get("updatedReplicas"))
    available = _int(status.get("availableReplicas"))
    total = _int(status.get("replicas"))
    if updated < replicas:
        return _progress(f"rollout: {updated}/{replicas} replicas updated")
    if total > updated:
        return _progress(f"rollout: {total - updated} old replicas pending termination")
    if available < replicas:
        return _progress(f"rollout: {available}/{replicas} replicas available")
    return READY


def _statefulset(obj: Obj) -> Health:
    status, spec = _status(obj), _spec(obj)
    if "observedGeneration" not in status:
        return _progress("rollout not started")
    replicas = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    if ready < replicas:
        return _progress(f"{ready}/{replicas} replicas ready")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return READY  # OnDelete: pods update when someone deletes them
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
    updated = _int(status.get("updatedReplicas"))
    if partition > 0:
        if updated < replicas - partition:
            return _progress(f"partitioned rollout: {updated}/{replicas - partition} updated")
        return READY
    if updated < replicas:
        return _progress(f"rollout: {updated}/{replicas} replicas updated")
    if status.get("currentRevision") != status.get("updateRevision"):
        return _progress("rollout: waiting for currentRevision to reach updateRevision")
    return READY


def _daemonset(obj: Obj) -> Health:
    status = _status(obj)
    if "observedGeneration" not in status:
        return _progress("rollout not started")
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    if updated < desired:
        return _progress(f"rollout: {updated}/{desired} pods updated")
    if available < desired:
        return _progress(f"rollout: {available}/{desired} pods available")
    return READY


def _replicaset(obj: Obj) -> Health:
    status, conds = _status(obj), _conditions(obj)
    failure = conds.get("ReplicaFailure", {})
    if failure.get("status") == "True":
        return _failed(f"replica failure: {_why(failure)}")
    replicas = _int(_spec(obj).get("replicas"), 1)
    ready = _int(status.get("readyReplicas"))
    available = _int(status.get("availableReplicas"))
    if ready < replicas:
        return _progress(f"{ready}/{replicas} replicas ready")
    if available < replicas:
        return _progress(f"{available}/{replicas} replicas available")
    return READY


def _job(obj: Obj) -> Health:
    conds = _conditions(obj)
    if conds.get("Failed", {}).get("status") == "True":
        return _failed(f"job failed: {_why(conds['Failed'])}")
    if conds.get("Complete", {}).get("status") == "True":
        return READY
    status, spec = _status(obj), _spec(obj)
    completions = _int(spec.get("completions"), 1)
    return _progress(f"job running: {_int(status.get('succeeded'))}/{completions} succeeded")


def _pod(obj: Obj) -> Health:
    phase = _status(obj).get("phase")
    if phase == "Succeeded":
        return READY
    if phase == "Failed":
        return _failed(f"pod failed: {_status(obj).get('reason') or 'Failed'}")
    ready = _conditions(obj).get("Ready", {})
    if ready.get("status") == "True":
        return READY
    return _progress(f"pod {phase or 'Pending'}" + (f": {_why(ready)}" if _why(ready) else ""))


def _pvc(obj: Obj) -> Health:
    phase = _status(obj).get("phase")
    if phase == "Bound":
        return READY
    if phase == "Lost":
        return _failed("volume claim lost its volume")
    return _progress(f"volume claim {phase or 'Pending'}, not Bound")


def _service(obj: Obj) -> Health:
    if _spec(obj).get("type") != "LoadBalancer":
        return READY
    ingress = (_status(obj).get("loadBalancer") or {}).get("ingress")
    return READY if ingress else _progress("load balancer has no ingress address yet")


def _crd(obj: Obj) -> Health:
    conds = _conditions(obj)
    names = conds.get("NamesAccepted", {})
    if names.get("status") == "False":
        return _failed(f"names not accepted: {_why(names)}")
    if conds.get("Established", {}).get("status") == "True":
        return READY
    return _progress("not Established yet")


def _namespace(obj: Obj) -> Health:
    if _status(obj).get("phase") == "Terminating":
        return _progress("namespace is terminating")
    return READY


def _generic(obj: Obj) -> Health:
    """Standard conditions (kstatus' abnormal-true and Ready/Available), else ready."""
    conds = _conditions(obj)
    stalled = conds.get("Stalled", {})
    if stalled.get("status") == "True":
        return _failed(f"stalled: {_why(stalled)}")
    reconciling = conds.get("Reconciling", {})
    if reconciling.get("status") == "True":
        return _progress(f"reconciling: {_why(reconciling)}")
    for kind in ("Ready", "Available"):
        cond = conds.get(kind, {})
        if cond.get("status") == "False":
            return _progress(f"{kind} is False" + (f": {_why(cond)}" if _why(cond) else ""))
    return READY


RULES: dict[tuple[str, str], Callable[[Obj], Health]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("batch", "Job"): _job,
    ("", "Pod"): _pod,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("", "Namespace"): _namespace,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
}

# Kinds with no status at all: a metadata-only read is enough to judge them (they are
# ready once they exist), which saves reading e.g. every Secret's data.
STATUSLESS_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "ServiceAccount"),
        ("", "Endpoints"),
        ("", "LimitRange"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "StorageClass"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("networking.k8s.io", "IngressClass"),
    }
)


def api_group(api_version: str) -> str:
    """`apps/v1` -> `apps`; `v1` -> `` (the core group)."""
    return api_version.rpartition("/")[0]


def assess(obj: Obj) -> Health:
    """Health of one live object (as read from the API server)."""
    if obj.get("metadata", {}).get("deletionTimestamp"):
        return _progress("being deleted")
    observed = _generation_observed(obj)
    if observed is not None:
        return observed
    key = (api_group(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
    if key in STATUSLESS_KINDS:
        return READY
    return RULES.get(key, _generic)(obj)
