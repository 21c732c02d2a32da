"""JSON patch / merge patch / strategic merge patch, chosen from content like Rancher Fleet."""

from __future__ import annotations

import pytest

from fleet.render.patching import PatchError, apply_patch, choose_strategy, merge_patch

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
    "spec": {
        "replicas": 1,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "app:1",
                        "args": ["--a", "--b"],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 80, "name": "http"}],
                        "volumeMounts": [{"mountPath": "/data", "name": "data"}],
                    },
                    {"name": "sidecar", "image": "side:1"},
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
            }
        },
    },
}


def test_strategy_is_chosen_from_content() -> None:
    assert choose_strategy(DEPLOYMENT, [{"op": "remove", "path": "/spec"}]) == "json"
    assert choose_strategy(DEPLOYMENT, {"spec": {}}) == "strategic"
    assert choose_strategy({"apiVersion": "v1", "kind": "Service"}, {}) == "strategic"
    custom = {"apiVersion": "example.com/v1", "kind": "Widget"}
    assert choose_strategy(custom, {"spec": {}}) == "merge"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"}
    assert choose_strategy(crd, {}) == "merge"
    assert choose_strategy({"just": "data"}, {}) == "merge"


def test_json_patch() -> None:
    result = apply_patch(
        DEPLOYMENT,
        [
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/env", "value": "prod"},
        ],
    )
    assert result["spec"]["replicas"] == 3
    assert result["metadata"]["labels"]["env"] == "prod"
    assert DEPLOYMENT["spec"]["replicas"] == 1  # input untouched


def test_json_patch_failure_is_a_patch_error() -> None:
    with pytest.raises(PatchError, match="JSON patch failed"):
        apply_patch(DEPLOYMENT, [{"op": "remove", "path": "/nope"}])
    with pytest.raises(PatchError):
        apply_patch(DEPLOYMENT, [{"path": "/spec"}])


def test_merge_patch_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "list": [3]}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "list": [3]}
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"items": [{"name": "x"}]}}
    # custom resource: lists replace, no merge keys
    patched = apply_patch(widget, {"spec": {"items": [{"name": "y"}]}})
    assert patched["spec"]["items"] == [{"name": "y"}]


def test_strategic_merge_by_name_and_keys() -> None:
    patch = {
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:2",
                            "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                            "ports": [{"containerPort": 443, "name": "https"}],
                            "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                            "args": ["--only"],
                        }
                    ],
                    "volumes": [{"name": "cache", "emptyDir": {}}],
                }
            },
        },
        "metadata": {"labels": {"tier": None}},
    }
    result = apply_patch(DEPLOYMENT, patch)
    containers = result["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"]
    app = containers[0]
    assert app["image"] == "app:2"
    assert app["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]
    assert [p["containerPort"] for p in app["ports"]] == [80, 443]
    assert app["volumeMounts"] == [{"mountPath": "/data", "name": "data", "readOnly": True}]
    assert app["args"] == ["--only"]  # no merge key: replaced, as in Kubernetes
    assert [v["name"] for v in result["spec"]["template"]["spec"]["volumes"]] == ["data", "cache"]
    assert result["metadata"]["labels"] == {"app": "web"}
    assert result["spec"]["replicas"] == 2


def test_strategic_merge_directives() -> None:
    delete_sidecar = {
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}
    }
    result = apply_patch(DEPLOYMENT, delete_sidecar)
    assert [c["name"] for c in result["spec"]["template"]["spec"]["containers"]] == ["app"]

    replace_labels = {"metadata": {"labels": {"$patch": "replace", "only": "this"}}}
    assert apply_patch(DEPLOYMENT, replace_labels)["metadata"]["labels"] == {"only": "this"}

    replace_list = {
        "spec": {
            "template": {
                "spec": {"containers": [{"$patch": "replace"}, {"name": "new", "image": "n:1"}]}
            }
        }
    }
    containers = apply_patch(DEPLOYMENT, replace_list)["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "new", "image": "n:1"}]

    drop_map = {"spec": {"template": {"$patch": "delete"}}}
    assert "template" not in apply_patch(DEPLOYMENT, drop_map)["spec"]


def test_service_ports_merge_on_port() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
    }
    result = apply_patch(
        service, {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}
    )
    assert result["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


def test_bad_patch_shapes() -> None:
    with pytest.raises(PatchError):
        apply_patch(DEPLOYMENT, "just a string")
    with pytest.raises(PatchError, match="unknown \\$patch"):
        apply_patch(DEPLOYMENT, {"metadata": {"$patch": "explode"}})
