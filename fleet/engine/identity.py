"""Who an object is and whose it is: object keys, owners, and what a commit claims.

Three ideas keep fleet from deleting what Git still wants:

- **An object is its key**: (API group, kind, namespace, name), never its apiVersion string.
  `autoscaling/v1` and `autoscaling/v2` HorizontalPodAutoscaler `web` are one object: moving
  a manifest to a newer version changes how fleet reads it, not what it is. (The live uid
  settles the rest: an object fleet just applied is never pruned, whatever it was read as.)
- **An object has one owner**: a (fleet, bundle) pair, written on the object as labels and
  annotations (`fleet.engine.labels`) and as its own server-side-apply field manager
  `fleet/<fleet>/<bundle>`, so the API server itself sees two bundles setting one field.
- **A commit's claims**: for one cluster, which bundles of the fleet render each object at
  the commit being rolled out (`Claims`, built by the runtime from the desired state).
  Claims decide the two questions a single bundle cannot answer alone: is an object owned
  by another bundle still wanted by it (then it is a conflict) or was it handed over (then
  the new bundle takes it, and the old one must not delete it on its way out)?
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fleet.engine.kube import ObjectRef
from fleet.engine.labels import (
    ANN_BUNDLE,
    ANN_FLEET,
    FIELD_MANAGER,
    LABEL_BUNDLE,
    LABEL_FLEET,
)
from fleet.manifest import Manifest

# (group, kind, namespace or None, name)
ObjectKey = tuple[str, str, str | None, str]

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_FIELD_MANAGER = 128


def key_of(ref: ObjectRef) -> ObjectKey:
    """The identity of the object `ref` addresses, whatever version it is read through."""
    return (ref.group, ref.kind, ref.namespace, ref.name)


def short_name(name: str, limit: int = 63) -> str:
    """`name` if it is a valid label value of at most `limit` characters and lower case,
    else a deterministic short form: invalid characters become `-`, and a prefix gets a
    10-hex sha256 suffix of the original, so two names never collapse into one."""
    if len(name) <= limit and _LABEL_VALUE.match(name) and name == name.lower():
        return name
    return _hashed(name, limit)


def dns_label(name: str, limit: int = 63) -> str:
    """Like `short_name`, but a DNS label (no `_` or `.`): usable in object names."""
    if len(name) <= limit and _DNS_LABEL.match(name):
        return name
    return _hashed(name, limit)


def _hashed(name: str, limit: int) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    head = cleaned[: limit - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else digest


@dataclass(frozen=True)
class Owner:
    """The (fleet, bundle) an object belongs to. `fleet` is None only for the engine's own
    tests and tools that deploy a bundle outside any fleet definition."""

    bundle: str
    fleet: str | None = None

    @property
    def field_manager(self) -> str:
        """`fleet/<fleet>/<bundle>` (at most 128 characters, as the API server requires)."""
        parts = [FIELD_MANAGER, *([self.fleet] if self.fleet else []), self.bundle]
        text = "/".join(parts)
        if len(text) <= MAX_FIELD_MANAGER:
            return text
        fleet = f"{short_name(self.fleet, 40)}/" if self.fleet else ""
        return f"{FIELD_MANAGER}/{fleet}{short_name(self.bundle, 80)}"

    def labels(self) -> dict[str, str]:
        out = {LABEL_BUNDLE: short_name(self.bundle)}
        if self.fleet:
            out[LABEL_FLEET] = short_name(self.fleet)
        return out

    def annotations(self) -> dict[str, str]:
        out = {ANN_BUNDLE: self.bundle}
        if self.fleet:
            out[ANN_FLEET] = self.fleet
        return out

    @property
    def selector(self) -> str:
        """The label selector of this owner's objects."""
        return ",".join(f"{k}={v}" for k, v in self.labels().items())

    def __str__(self) -> str:
        return f"bundle {self.bundle}" + (f" of fleet {self.fleet}" if self.fleet else "")

    @classmethod
    def of_live(cls, live: Manifest) -> Owner | None:
        """The owner written on a live object, or None when fleet did not create it."""
        meta = live.get("metadata") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        label = labels.get(LABEL_BUNDLE)
        if not label:
            return None
        bundle = annotations.get(ANN_BUNDLE) or label
        if short_name(bundle) != label:  # a copied annotation: trust the label
            bundle = label
        fleet = annotations.get(ANN_FLEET) or labels.get(LABEL_FLEET) or None
        return cls(bundle, fleet)

    def owns(self, live: Manifest) -> bool:
        """True when the live object is this owner's. An object from before fleets were
        written on objects (no fleet on it) is its bundle's in whatever fleet asks."""
        found = Owner.of_live(live)
        if found is None or short_name(found.bundle) != short_name(self.bundle):
            return False
        return found.fleet is None or self.fleet is None or found.fleet == self.fleet


@dataclass
class Claims:
    """Which bundles of one fleet render each object on one cluster, at one commit.

    Built from every unit the commit targets at the cluster (rendered manifests plus each
    unit's default namespace). A cluster-scoped object is matched by (group, kind, name):
    the namespace a manifest carries for it means nothing.
    """

    by_key: dict[ObjectKey, set[str]] = field(default_factory=dict)
    by_name: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)  # every namespace an object is in

    @classmethod
    def of(cls, units: Iterable[tuple[str, Iterable[Manifest], str]]) -> Claims:
        """`units`: (bundle, rendered manifests, default namespace) per unit."""
        claims = cls()
        for bundle, manifests, default_ns in units:
            for manifest in manifests:
                claims.add(bundle, manifest, default_ns)
        return claims

    def add(self, bundle: str, manifest: Manifest, default_ns: str) -> None:
        ref = ObjectRef.of(manifest)
        is_namespace = (ref.group, ref.kind) == ("", "Namespace")
        namespace = None if is_namespace else ref.namespace or default_ns or None
        self.by_key.setdefault((ref.group, ref.kind, namespace, ref.name), set()).add(bundle)
        self.by_name.setdefault((ref.group, ref.kind, ref.name), set()).add(bundle)
        if namespace:
            self.namespaces.add(namespace)

    def bundles(self, ref: ObjectRef) -> set[str]:
        """The bundles that render the object `ref` addresses (its scope as resolved)."""
        if ref.namespace is None:
            return set(self.by_name.get((ref.group, ref.kind, ref.name), ()))
        return set(self.by_key.get(key_of(ref), ()))

    def others(self, ref: ObjectRef, bundle: str) -> list[str]:
        """The other bundles that render it, sorted."""
        return sorted(self.bundles(ref) - {bundle})


ClaimsSource = Callable[[], "Claims | None"]
