"""Built-in registry provider `quay`: Quay (quay.io, or a Red Hat Quay installation).

- Robot accounts are the usual credential: username `namespace+robotname`, password the
  robot's token (the `+` is part of the name and goes into Basic auth as it is). Tokens
  come from the realm Quay names (`https://quay.io/v2/auth`), on the registry's own host.
- `rest_tags` reads Quay's REST tag API (`/api/v1/repository/NS/REPO/tag/?onlyActiveTags=
  true`, pages of `limit` with `has_additional`): every tag with its manifest digest and
  last-modified time in one call per page, where the distribution API needs a HEAD per tag.
  It works anonymously for public repositories (the REST API takes OAuth tokens, not robot
  credentials, so a private repository falls back to `list_tags`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleet.plugin import FleetError, RegistryProvider, RegistrySpec, hookimpl

if TYPE_CHECKING:
    from fleet.plugin import RegistryClient

HOST = "quay.io"
PAGE_LIMIT = 100
MAX_PAGES = 1000


@dataclass(frozen=True)
class QuayTag:
    name: str
    digest: str | None
    last_modified: str | None


class Quay(RegistryProvider):
    name = "quay"

    def rest_tags(self, client: RegistryClient, repository: str) -> list[QuayTag]:
        """Active tags with digests and timestamps from Quay's REST API (all pages)."""
        found: list[QuayTag] = []
        for page in range(1, MAX_PAGES + 1):
            url = (
                f"{client.base_url}/api/v1/repository/{repository}/tag/"
                f"?onlyActiveTags=true&limit={PAGE_LIMIT}&page={page}"
            )
            response = client.send("GET", url, None, what=f"tags of {repository} (Quay API)")
            try:
                body: dict[str, Any] = response.json()
            except ValueError:
                raise FleetError(f"registry {client.host}: Quay tag API: not JSON") from None
            for tag in body.get("tags") or []:
                found.append(
                    QuayTag(tag["name"], tag.get("manifest_digest"), tag.get("last_modified"))
                )
            if not body.get("has_additional"):
                return found
        raise FleetError(f"registry {client.host}: tags of {repository}: over {MAX_PAGES} pages")


@hookimpl
def fleet_registry(host: str, spec: RegistrySpec | None) -> RegistryProvider | None:
    if spec is not None:
        return Quay() if spec.type == "quay" else None
    return Quay() if host.lower() == HOST else None
