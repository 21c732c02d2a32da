"""The local fleet is three real, working Kubernetes clusters (acceptance of the test bed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.conftest import LocalCluster, LocalFleet


def api_client(cluster: LocalCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


def wait_until(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def test_three_clusters_with_their_labels(local_fleet: LocalFleet) -> None:
    assert set(local_fleet.clusters) == {"dev-eu", "prod-eu", "prod-us"}
    assert local_fleet.clusters["prod-us"].labels == {"env": "prod", "region": "us"}
    servers = {c.server for c in local_fleet.clusters.values()}
    assert len(servers) == 3  # separate API servers on separate ports


def test_version_is_a_real_kubernetes_release(local_fleet: LocalFleet) -> None:
    for cluster in local_fleet.clusters.values():
        info = client.VersionApi(api_client(cluster)).get_code()
        assert info.git_version == "v1.36.3"
        assert (info.major, info.minor) == ("1", "36")


def test_objects_are_created_and_read_back_in_each_cluster(local_fleet: LocalFleet) -> None:
    for cluster in local_fleet.clusters.values():
        core = client.CoreV1Api(api_client(cluster))
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="testbed-marker"), data={"cluster": cluster.name}
        )
        try:
            core.create_namespaced_config_map("default", body)
        except ApiException as err:
            if err.status != 409:
                raise
            core.replace_namespaced_config_map("testbed-marker", "default", body)
    # read back separately: each cluster holds its own object, nothing is shared
    for cluster in local_fleet.clusters.values():
        core = client.CoreV1Api(api_client(cluster))
        cm = core.read_namespaced_config_map("testbed-marker", "default")
        assert cm.data == {"cluster": cluster.name}


def test_rbac_is_enforced(local_fleet: LocalFleet) -> None:
    """A user that is not bound to any role is forbidden (authorization-mode=RBAC)."""
    cluster = local_fleet.clusters["dev-eu"]
    api = api_client(cluster)
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user="nobody",
                resource_attributes=client.V1ResourceAttributes(
                    verb="list", resource="secrets", namespace="default"
                ),
            )
        )
    )
    assert review.status.allowed is False


def test_deployment_becomes_available_on_a_kwok_node(local_fleet: LocalFleet) -> None:
    cluster = local_fleet.clusters["prod-eu"]
    api = api_client(cluster)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    labels = {"app": "testbed-web"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="testbed-web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="web", image="example/web:1.0")]
                ),
            ),
        ),
    )
    apps.create_namespaced_deployment("default", deployment)

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("testbed-web", "default").status
        conditions = {c.type: c.status for c in status.conditions or []}
        return status.available_replicas == 2 and conditions.get("Available") == "True"

    wait_until(available, "Deployment testbed-web Available")
    pods = core.list_namespaced_pod("default", label_selector="app=testbed-web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name and pod.spec.node_name.startswith("kwok-")
        assert pod.status.phase == "Running"
    apps.delete_namespaced_deployment("testbed-web", "default")


def test_namespace_delete_completes(local_fleet: LocalFleet) -> None:
    """The namespace controller (kube-controller-manager) finalizes a deleted namespace."""
    cluster = local_fleet.clusters["prod-us"]
    core = client.CoreV1Api(api_client(cluster))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="testbed-ns")))
    core.create_namespaced_config_map(
        "testbed-ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="inside"))
    )
    core.delete_namespace("testbed-ns")

    def gone() -> bool:
        try:
            core.read_namespace("testbed-ns")
        except ApiException as err:
            return err.status == 404
        return False

    wait_until(gone, "namespace testbed-ns to be deleted")
