"""Container images pinned to digests, resolved once per commit (`images.pinDigests`).

A tag can be pushed again: `web:1.4` may be other bytes in an hour, so two clusters or two
waves of one commit could run different images. With `images: {pinDigests: true}` in a
bundle's fleet.yaml (or the definition's `defaults`), every container image of the bundle's
rendered manifests (`fleet.render.images` says where they are) is rewritten to
`name:tag@sha256:...`. Each image is resolved once for the whole commit, when the commit is
loaded (by the scheduler or `fleet sync`): the `fleet_resolve_image` hook first (a plugin
may answer from a mirror or a catalogue), else the registry's manifest `HEAD` with all four
manifest media types in `Accept` (`RegistryClient.head_manifest`: without them a registry
down-converts and answers another digest). The scheduler hands the digests to its workers
through Redis (`StateCache.set_image_pins`), as it does chart pins, so a worker renders
exactly what the scheduler targeted. The digests are part of the bundle's deployment id: a
new image behind the same tag is a new deployment id, so a new rollout.

Which registries are asked: only the hosts the definition's `registries` name (a
`type: dockerhub` entry without a host serves `nginx:1.27`). An image on any other host is
left as written, with a warning, unless the bundle says `images.unlistedRegistries:
resolve` (then that registry is asked anonymously): fleet never contacts a host the user
did not name. An image already pinned (`@sha256:...`) is left as it is.

A registry that is down is a `TransientError` for the bundles that need it only: the
commit's other bundles are targeted and rolled out (`fleet.desired.DesiredState.deferred`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from fleet.errors import FleetError
from fleet.registry.access import Registries
from fleet.registry.reference import parse_reference
from fleet.spec.bundle_options import BundleOptions, ImageOptions
from fleet.spec.definition import RegistrySpec

log = logging.getLogger(__name__)

# (image as written, the definition's entry for its host or None) -> a digest, or None:
# the `fleet_resolve_image` hook (`FleetPlugins.resolve_image`)
ImageResolver = Callable[[str, RegistrySpec | None], str | None]


@dataclass(frozen=True)
class ImagePin:
    image: str  # as written in the rendered manifests
    digest: str  # sha256:... of the manifest (index or image) its tag names now

    def __str__(self) -> str:
        return f"{self.image}={self.digest}"


def pins_digests(options: BundleOptions) -> bool:
    """Does the bundle ask for digest pinning (its fleet.yaml or the definition's defaults)?"""
    return options.images is not None and options.images.pin_digests


@dataclass
class ImagePins:
    """The image pins of one commit: image -> digest, each resolved once, and which images
    each pinning bundle's manifests hold (its part of the deployment id)."""

    registries: Registries
    resolver: ImageResolver | None = None
    digests: dict[str, str] = field(default_factory=dict)
    bundles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def preset(
        cls,
        registries: Registries,
        pins: Mapping[str, Iterable[ImagePin]],
        resolver: ImageResolver | None = None,
    ) -> ImagePins:
        """Pins another process resolved, by bundle (a worker gets the scheduler's)."""
        found = cls(registries, resolver)
        for bundle, bundle_pins in pins.items():
            listed = sorted(bundle_pins, key=str)
            found.digests.update({p.image: p.digest for p in listed})
            found.bundles[bundle] = tuple(p.image for p in listed)
        return found

    def all(self) -> dict[str, list[ImagePin]]:
        """Every pinning bundle's pins (what the scheduler writes to Redis)."""
        return {bundle: self.of(bundle) for bundle in sorted(self.bundles)}

    def of(self, bundle: str) -> list[ImagePin]:
        images = self.bundles.get(bundle, ())
        return [ImagePin(i, self.digests[i]) for i in images if i in self.digests]

    def identity(self, bundle: str) -> str:
        """The bundle's pins as one string for its deployment id ("" when it pins none)."""
        return " ".join(str(pin) for pin in self.of(bundle))

    def pin_bundle(self, bundle: str, images: Iterable[str], options: ImageOptions) -> None:
        """Resolve every image of `bundle` not resolved yet (TransientError when a registry
        is down, UserError for an unknown tag or a bad reference)."""
        pinned: set[str] = set()
        for image in images:
            if "@" in image:
                continue  # pinned in Git already: left as it is
            if self.digest(image, options) is not None:
                pinned.add(image)
        self.bundles[bundle] = tuple(sorted(pinned))

    def digest(self, image: str, options: ImageOptions) -> str | None:
        """The digest of `image` (resolved at the first call), or None when its registry
        is not in the definition and the bundle does not opt in (a warning says so)."""
        found = self.digests.get(image)
        if found is not None:
            return found
        host = parse_reference(image).host
        spec = self.registries.spec_for(host)
        if spec is None and options.unlisted_registries != "resolve":
            warning = (
                f"image {image} is not pinned: its registry ({host or 'Docker Hub'}) is not "
                "in the definition's registries (add it, or set "
                "images.unlistedRegistries: resolve)"
            )
            if warning not in self.warnings:
                self.warnings.append(warning)
                log.warning("%s", warning)
            return None
        found = self.resolver(image, spec) if self.resolver is not None else None
        if found is None:
            found = resolve_digest(self.registries, image)
        self.digests[image] = found
        return found


def resolve_digest(registries: Registries, image: str) -> str:
    """The manifest digest of `image`'s tag (`latest` when it names none), asked of its
    registry with the manifest HEAD (all four media types accepted)."""
    client, reference = registries.resolve(image)
    try:
        info = client.head_manifest(reference.repository, reference.tag or "latest")
    except FleetError as err:
        raise type(err)(f"image {image}: {err.reason}") from None
    return info.digest
