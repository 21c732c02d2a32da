"""Image and chart references: `[host[:port]/]path[:tag][@digest]`, parsed once.

The grammar is distribution's (`reference.go`): the first path component is a host when it
has a `.` or a `:`, or is `localhost`; otherwise the reference has no host and the
provider of the default registry decides (Docker Hub's rules live in its plugin).
Components are lowercase alphanumerics with `.`, `_`, `__` or `-` separators; a tag is at
most 128 of `[\\w][\\w.-]*`; a digest is `algorithm:hex`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleet.errors import FleetError

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?)+(?::[0-9]+)?"  # name or IPv4, :port
    r"|\[[0-9a-fA-F:]+\](?::[0-9]+)?"  # [IPv6]:port
)


@dataclass(frozen=True)
class ImageReference:
    """A parsed reference. `host` is "" when the reference names none."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        name = f"{self.host}/{self.repository}" if self.host else self.repository
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    def with_repository(self, repository: str) -> ImageReference:
        return ImageReference(self.host, repository, self.tag, self.digest)


def parse_reference(text: str) -> ImageReference:
    """Parse `text` (an `oci://` prefix is dropped); FleetError with the reason if invalid."""
    raw = text.removeprefix("oci://")
    rest, _, digest = raw.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise FleetError(f"invalid image reference {text!r}: bad digest")
    head, slash, tail = rest.partition("/")
    host = ""
    if slash and ("." in head or ":" in head or head == "localhost"):
        if not _HOST.fullmatch(head):
            raise FleetError(f"invalid image reference {text!r}: bad host {head!r}")
        host, rest = head, tail
    path, tag = rest, None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        path, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise FleetError(f"invalid image reference {text!r}: bad tag {tag!r}")
    if not path or not all(_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise FleetError(f"invalid image reference {text!r}: bad repository {path!r}")
    return ImageReference(host, path, tag, digest or None)
