"""What the image-automation stages hand each other: a policy's choice, a marker change,
a marker as a survey found it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageChoice:
    """The image a policy picks now, from one scan of its repository's tags."""

    policy: str  # the policy's name in the definition's `imagePolicies`
    repository: str  # the image name as the policy writes it: "registry.example:5000/team/web"
    tag: str
    digest: str | None = None  # "sha256:..." of the tag's manifest, when it was resolved

    @property
    def reference(self) -> str:
        """`repository:tag`, what a full `{"$imagepolicy": "NAME"}` marker writes."""
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class MarkerChange:
    """One marker line of a bundle file whose value a choice rewrites."""

    path: str  # the file, relative to the repository root, with "/" separators
    line: int  # 1-based
    policy: str
    old: str  # the scalar as it was written
    new: str  # the scalar written instead
    wave: str | None = None  # the marker's `$wave`


CURRENT, BEHIND, BROKEN = "current", "behind", "broken"


@dataclass(frozen=True)
class MarkerSite:
    """One marker of a policy, as a survey found it (nothing rewritten): its `state` is
    `current` (the choice's value already), `behind` (a rewrite would change it) or
    `broken` (it cannot be rewritten: the warning says why)."""

    path: str
    line: int
    policy: str
    wave: str | None
    state: str
