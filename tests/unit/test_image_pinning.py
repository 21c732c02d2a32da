"""Digest pinning's pure parts: where manifests name images, and the rewrite."""

from __future__ import annotations

import copy
from typing import Any

from fleet.registry.access import Registries
from fleet.registry.image_pins import ImagePin, ImagePins
from fleet.render.images import container_images, pin_images, pinned_reference, pod_spec
from fleet.spec.bundle_options import BundleOptions, ImageOptions
from fleet.spec.definition import RegistrySpec

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def pod(*images: str) -> dict[str, Any]:
    return {
        "containers": [{"name": "main", "image": images[0]}],
        "initContainers": [{"name": "init", "image": images[1]}],
        "ephemeralContainers": [{"name": "debug", "image": images[2]}],
    }


def workloads(*images: str) -> list[dict[str, Any]]:
    template = {"template": {"spec": pod(*images)}}
    kinds = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]
    found: list[dict[str, Any]] = [
        {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w"}, "spec": template}
        for kind in kinds
    ]
    found.append(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod(*images)}
    )
    found.append(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": template}},
        }
    )
    return [copy.deepcopy(m) for m in found]  # each its own objects, as rendered


def test_every_pod_spec_location_is_found() -> None:
    manifests = workloads("web:1", "init:2", "debug:3")
    manifests.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                      "data": {"image": "not-a-container:1"}})  # fmt: skip
    assert container_images(manifests) == ["web:1", "init:2", "debug:3"]
    assert pod_spec(manifests[-1]) is None


def test_every_location_is_rewritten_and_other_objects_are_not() -> None:
    manifests = workloads("web:1", "init:2", "debug:3")
    digests = {"web:1": DIGEST, "init:2": OTHER, "debug:3": DIGEST}
    assert pin_images(manifests, digests) == 3 * len(manifests)
    for manifest in manifests:
        spec = pod_spec(manifest)
        assert spec is not None
        assert spec["containers"][0]["image"] == f"web:1@{DIGEST}"
        assert spec["initContainers"][0]["image"] == f"init:2@{OTHER}"
        assert spec["ephemeralContainers"][0]["image"] == f"debug:3@{DIGEST}"


def test_references_keep_their_form_and_gain_the_digest() -> None:
    assert pinned_reference("nginx", DIGEST) == f"nginx:latest@{DIGEST}"
    assert pinned_reference("library/nginx:1.27", DIGEST) == f"library/nginx:1.27@{DIGEST}"
    assert pinned_reference("localhost:5000/team/web", DIGEST) == (
        f"localhost:5000/team/web:latest@{DIGEST}"
    )
    assert pinned_reference("localhost:5000/team/web:1.2", DIGEST) == (
        f"localhost:5000/team/web:1.2@{DIGEST}"
    )
    pinned = f"quay.io/org/app:1@{OTHER}"
    assert pinned_reference(pinned, DIGEST) == pinned


def test_images_not_resolved_are_left_as_written() -> None:
    manifests = workloads("web:1", "init:2", "debug:3")[:1]
    assert pin_images(manifests, {"web:1": DIGEST}) == 1
    spec = pod_spec(manifests[0])
    assert spec is not None
    assert spec["initContainers"][0]["image"] == "init:2"


class NoProviders:
    def registry_provider(self, host: str, spec: RegistrySpec | None) -> None:
        return None


def test_an_unlisted_registry_is_not_contacted_but_warned_about() -> None:
    registries = Registries(
        [RegistrySpec(name="ours", type="oci", host="localhost:5000")], NoProviders()
    )
    asked: list[tuple[str, str | None]] = []

    def resolver(image: str, spec: RegistrySpec | None) -> str | None:
        asked.append((image, spec.name if spec else None))
        return DIGEST

    pins = ImagePins(registries, resolver)
    images = ["localhost:5000/web:1", "quay.io/other/app:2", "nginx:1.27", f"web@{OTHER}"]
    pins.pin_bundle("web", images, ImageOptions())
    assert asked == [("localhost:5000/web:1", "ours")]
    assert pins.of("web") == [ImagePin("localhost:5000/web:1", DIGEST)]
    assert len(pins.warnings) == 2 and "quay.io" in pins.warnings[0]
    assert "Docker Hub" in pins.warnings[1]
    opted = ImageOptions.model_validate({"pinDigests": True, "unlistedRegistries": "resolve"})
    pins.pin_bundle("web", images, opted)
    assert [a[0] for a in asked[1:]] == ["quay.io/other/app:2", "nginx:1.27"]
    assert pins.identity("web").count("=" + DIGEST) == 3


def test_preset_pins_give_the_same_identity() -> None:
    registries = Registries([], NoProviders())
    pins = ImagePins.preset(registries, {"web": [ImagePin("b:1", OTHER), ImagePin("a:1", DIGEST)]})
    assert pins.identity("web") == f"a:1={DIGEST} b:1={OTHER}"
    assert ImagePins.preset(registries, pins.all()).identity("web") == pins.identity("web")


def test_the_option_parses_from_fleet_yaml() -> None:
    options = BundleOptions.model_validate({"images": {"pinDigests": True}})
    assert options.images is not None and options.images.pin_digests
    assert options.images.unlisted_registries == "skip"
