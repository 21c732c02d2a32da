"""Where rendered manifests name container images, and rewriting them to pinned references.

Digest pinning (`fleet.registry.image_pins`) needs two things of the manifests: every image
reference they hold, and a way to replace each by `name:tag@sha256:...`. Both walk the same
places: the pod spec of a Pod, of every workload with a pod template (Deployment,
StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, PodTemplate) and of a
CronJob's `jobTemplate`, and in each its `containers`, `initContainers` and
`ephemeralContainers`. `attach_pull_secrets` lists pull Secrets (`images.pullSecrets`, by
name only) in the same pod specs. Pure functions of the manifests: no registry is asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fleet.manifest import Manifest

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_TEMPLATED = {
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
}


def _get(obj: object, *path: str) -> object:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def pod_spec(manifest: Manifest) -> dict[str, Any] | None:
    """The pod spec `manifest` runs (None for a kind that runs no pods, or none given)."""
    kind = manifest.get("kind")
    if kind == "Pod":
        found = _get(manifest, "spec")
    elif kind in _TEMPLATED:
        found = _get(manifest, "spec", "template", "spec")
    elif kind == "CronJob":
        found = _get(manifest, "spec", "jobTemplate", "spec", "template", "spec")
    elif kind == "PodTemplate":
        found = _get(manifest, "template", "spec")
    else:
        return None
    return found if isinstance(found, dict) else None


def containers(manifest: Manifest) -> Iterator[dict[str, Any]]:
    """Every container entry of the manifest's pod spec (init and ephemeral included)."""
    spec = pod_spec(manifest)
    if spec is None:
        return
    for field in CONTAINER_LISTS:
        entries = spec.get(field)
        if isinstance(entries, list):
            yield from (entry for entry in entries if isinstance(entry, dict))


def container_images(manifests: list[Manifest]) -> list[str]:
    """Every image reference the manifests run, as written, once each, in order."""
    seen: dict[str, None] = {}
    for manifest in manifests:
        for container in containers(manifest):
            image = container.get("image")
            if isinstance(image, str) and image:
                seen.setdefault(image, None)
    return list(seen)


def rewrite_images(manifests: list[Manifest], rewrite: Callable[[str], str]) -> int:
    """Replace every container image by `rewrite(image)` in place; how many changed."""
    changed = 0
    for manifest in manifests:
        for container in containers(manifest):
            image = container.get("image")
            if isinstance(image, str) and image:
                new = rewrite(image)
                if new != image:
                    container["image"] = new
                    changed += 1
    return changed


def pinned_reference(image: str, digest: str) -> str:
    """`image` with `@digest` (`nginx` -> `nginx:latest@sha256:...`, as the runtime pulls
    `latest` for a reference without tag; one already pinned is returned as it is)."""
    if "@" in image:
        return image
    last = image.rsplit("/", 1)[-1]
    tagged = image if ":" in last else f"{image}:latest"
    return f"{tagged}@{digest}"


def pin_images(manifests: list[Manifest], digests: Mapping[str, str]) -> int:
    """Rewrite each image found in `digests` (image as written -> digest) to its pinned
    reference, in place; images not in `digests` stay as they are. How many changed."""
    return rewrite_images(
        manifests,
        lambda image: pinned_reference(image, digests[image]) if image in digests else image,
    )


def attach_pull_secrets(manifests: list[Manifest], names: list[str]) -> int:
    """Add each name to `imagePullSecrets` of every pod spec, in place, after the ones the
    manifest lists already (none twice). How many pod specs changed. Only Secret names go
    into manifests (`images.pullSecrets`): the Secrets are made at apply time."""
    changed = 0
    for manifest in manifests:
        spec = pod_spec(manifest)
        if spec is None or not names:
            continue
        listed = spec.get("imagePullSecrets")
        entries = list(listed) if isinstance(listed, list) else []
        have = {e.get("name") for e in entries if isinstance(e, dict)}
        missing = [{"name": n} for n in names if n not in have]
        if missing:
            spec["imagePullSecrets"] = entries + missing
            changed += 1
    return changed
