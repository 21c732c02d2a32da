"""kstatus-style health rules on plain dicts (no cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.engine.health import HealthStatus, assess

CURRENT, PROGRESS, FAILED = HealthStatus.CURRENT, HealthStatus.IN_PROGRESS, HealthStatus.FAILED


def obj(api: str, kind: str, spec: Any = None, status: Any = None, gen: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": "x", "generation": gen},
    }
    if spec is not None:
        out["spec"] = spec
    if status is not None:
        out["status"] = status
    return out


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def deploy(replicas: int = 2, **status: Any) -> dict[str, Any]:
    return obj("apps/v1", "Deployment", {"replicas": replicas}, {"observedGeneration": 1, **status})


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (deploy(updatedReplicas=2, availableReplicas=2, replicas=2), CURRENT),
        (deploy(updatedReplicas=1, availableReplicas=1, replicas=2), PROGRESS),
        (deploy(updatedReplicas=2, availableReplicas=1, replicas=2), PROGRESS),
        (deploy(updatedReplicas=2, availableReplicas=2, replicas=3), PROGRESS),  # old pods left
        (deploy(2), PROGRESS),  # spec.replicas 2, nothing yet
        (deploy(0, observedGeneration=1), CURRENT),  # scaled to zero
        (obj("apps/v1", "Deployment", {"replicas": 1}, {}), PROGRESS),  # not observed at all
        (
            obj(
                "apps/v1",
                "Deployment",
                {},
                {
                    "observedGeneration": 1,
                    "updatedReplicas": 1,
                    "availableReplicas": 1,
                    "replicas": 1,
                },
            ),
            CURRENT,
        ),
    ],
)
def test_deployment(manifest: dict[str, Any], expected: HealthStatus) -> None:
    assert assess(manifest).status is expected


def test_deployment_progress_deadline_is_failed() -> None:
    manifest = deploy(
        updatedReplicas=2,
        availableReplicas=0,
        replicas=2,
        conditions=[cond("Progressing", "False", "ProgressDeadlineExceeded", "too slow")],
    )
    health = assess(manifest)
    assert health.status is FAILED
    assert "ProgressDeadlineExceeded" in health.message


def test_old_observed_generation_is_in_progress_for_any_kind() -> None:
    manifest = deploy(updatedReplicas=2, availableReplicas=2, replicas=2)
    manifest["metadata"]["generation"] = 2
    health = assess(manifest)
    assert health.status is PROGRESS and "generation 2" in health.message
    custom = obj("example.com/v1", "Widget", {}, {"observedGeneration": 1}, gen=3)
    assert assess(custom).status is PROGRESS


def test_not_ready_message_says_why() -> None:
    health = assess(deploy(updatedReplicas=2, availableReplicas=0, replicas=2))
    assert health.message == "rollout: 0/2 replicas available"


def sts(spec: dict[str, Any], **status: Any) -> dict[str, Any]:
    return obj(
        "apps/v1", "StatefulSet", {"replicas": 2, **spec}, {"observedGeneration": 1, **status}
    )


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            sts({}, readyReplicas=2, updatedReplicas=2, currentRevision="a", updateRevision="a"),
            CURRENT,
        ),
        (
            sts({}, readyReplicas=2, updatedReplicas=2, currentRevision="a", updateRevision="b"),
            PROGRESS,
        ),
        (
            sts({}, readyReplicas=1, updatedReplicas=2, currentRevision="a", updateRevision="a"),
            PROGRESS,
        ),
        (
            sts({}, readyReplicas=2, updatedReplicas=1, currentRevision="a", updateRevision="a"),
            PROGRESS,
        ),
        (
            sts({"updateStrategy": {"type": "OnDelete"}}, readyReplicas=2, updatedReplicas=0),
            CURRENT,
        ),
        (
            sts(
                {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}},
                readyReplicas=2,
                updatedReplicas=1,
                currentRevision="a",
                updateRevision="b",
            ),
            CURRENT,
        ),
    ],
)
def test_statefulset(manifest: dict[str, Any], expected: HealthStatus) -> None:
    assert assess(manifest).status is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}, CURRENT),
        (
            {"desiredNumberScheduled": 3, "updatedNumberScheduled": 2, "numberAvailable": 3},
            PROGRESS,
        ),
        (
            {"desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 1},
            PROGRESS,
        ),
        ({"desiredNumberScheduled": 0}, CURRENT),
    ],
)
def test_daemonset(status: dict[str, Any], expected: HealthStatus) -> None:
    manifest = obj("apps/v1", "DaemonSet", {}, {"observedGeneration": 1, **status})
    assert assess(manifest).status is expected


def test_replicaset() -> None:
    ready = obj(
        "apps/v1", "ReplicaSet", {"replicas": 2}, {"readyReplicas": 2, "availableReplicas": 2}
    )
    assert assess(ready).status is CURRENT
    short = obj("apps/v1", "ReplicaSet", {"replicas": 2}, {"readyReplicas": 1})
    assert assess(short).status is PROGRESS
    failed = obj(
        "apps/v1",
        "ReplicaSet",
        {"replicas": 2},
        {"conditions": [cond("ReplicaFailure", "True", "FailedCreate", "quota")]},
    )
    assert assess(failed).status is FAILED


def test_job() -> None:
    done = obj("batch/v1", "Job", {}, {"conditions": [cond("Complete", "True")]})
    assert assess(done).status is CURRENT
    failed = obj(
        "batch/v1", "Job", {}, {"conditions": [cond("Failed", "True", "BackoffLimitExceeded")]}
    )
    assert assess(failed).status is FAILED
    assert "BackoffLimitExceeded" in assess(failed).message
    running = obj("batch/v1", "Job", {"completions": 3}, {"succeeded": 1})
    assert assess(running).message == "job running: 1/3 succeeded"


def test_pvc() -> None:
    assert assess(obj("v1", "PersistentVolumeClaim", {}, {"phase": "Bound"})).status is CURRENT
    assert assess(obj("v1", "PersistentVolumeClaim", {}, {"phase": "Pending"})).status is PROGRESS
    assert assess(obj("v1", "PersistentVolumeClaim", {})).status is PROGRESS


def test_service() -> None:
    assert assess(obj("v1", "Service", {"type": "ClusterIP"})).status is CURRENT
    assert assess(obj("v1", "Service", {})).status is CURRENT
    lb = obj("v1", "Service", {"type": "LoadBalancer"}, {"loadBalancer": {}})
    assert assess(lb).status is PROGRESS
    lb["status"]["loadBalancer"]["ingress"] = [{"ip": "10.0.0.1"}]
    assert assess(lb).status is CURRENT


def test_crd() -> None:
    crd = "apiextensions.k8s.io/v1"
    kind = "CustomResourceDefinition"
    assert assess(obj(crd, kind, {}, {"conditions": [cond("Established", "True")]})).ready
    assert (
        assess(obj(crd, kind, {}, {"conditions": [cond("Established", "False")]})).status
        is PROGRESS
    )
    clash = obj(crd, kind, {}, {"conditions": [cond("NamesAccepted", "False", "NameConflict")]})
    assert assess(clash).status is FAILED


def test_pod() -> None:
    assert assess(
        obj("v1", "Pod", {}, {"phase": "Running", "conditions": [cond("Ready", "True")]})
    ).ready
    assert assess(obj("v1", "Pod", {}, {"phase": "Succeeded"})).ready
    assert assess(obj("v1", "Pod", {}, {"phase": "Pending"})).status is PROGRESS
    assert assess(obj("v1", "Pod", {}, {"phase": "Failed"})).status is FAILED


def test_generic_conditions() -> None:
    api, kind = "example.com/v1", "Widget"
    assert assess(obj(api, kind)).ready  # no status: ready once it exists
    not_ready = obj(api, kind, {}, {"conditions": [cond("Ready", "False", "Waiting", "for db")]})
    health = assess(not_ready)
    assert health.status is PROGRESS and health.message == "Ready is False: Waiting: for db"
    assert (
        assess(obj(api, kind, {}, {"conditions": [cond("Available", "False")]})).status is PROGRESS
    )
    assert assess(obj(api, kind, {}, {"conditions": [cond("Ready", "True")]})).ready
    assert assess(obj(api, kind, {}, {"conditions": [cond("Stalled", "True")]})).status is FAILED
    assert (
        assess(obj(api, kind, {}, {"conditions": [cond("Reconciling", "True")]})).status is PROGRESS
    )


def test_statusless_kinds_and_deleting() -> None:
    assert assess(obj("v1", "ConfigMap")).ready
    assert assess(obj("rbac.authorization.k8s.io/v1", "ClusterRole")).ready
    deleting = obj("v1", "ConfigMap")
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert assess(deleting).status is PROGRESS
    assert assess(obj("v1", "Namespace", {}, {"phase": "Terminating"})).status is PROGRESS
    assert assess(obj("v1", "Namespace", {}, {"phase": "Active"})).ready
