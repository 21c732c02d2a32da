"""Built-in registry provider `dockerhub`: Docker Hub's rules, which references rely on.

- A reference without a host (`nginx:1.27`) is Docker Hub's, and a one-part name is an
  official image under `library/` (`nginx` -> `library/nginx`); `docker.io`,
  `index.docker.io` and `registry-1.docker.io` are the same registry.
- The API lives on `registry-1.docker.io`; tokens come from Docker Hub's token service
  (`auth.docker.io`, service `registry.docker.io`), the only realm credentials go to.
- Rate limits: `ratelimit-limit: 100;w=21600`, `ratelimit-remaining: 76;w=21600` and
  `docker-ratelimit-source` (who is counted). A manifest `HEAD` does not count as a pull,
  which is why the client resolves digests with HEAD.
A personal access token goes in the credential's password, the Docker ID in its username.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from fleet.plugin import (
    ImageReference,
    RateLimit,
    RegistryProvider,
    RegistrySpec,
    hookimpl,
    parse_quota,
)

HUB = "docker.io"
HOSTS = frozenset({"", HUB, "index.docker.io", "registry-1.docker.io"})
API_HOST = "registry-1.docker.io"
TOKEN_REALM_HOST = "auth.docker.io"


class DockerHub(RegistryProvider):
    name = "dockerhub"

    def normalize(self, reference: ImageReference) -> ImageReference:
        repository = reference.repository
        if "/" not in repository:
            repository = f"library/{repository}"
        return ImageReference(HUB, repository, reference.tag, reference.digest)

    def api_host(self, host: str) -> str:
        return API_HOST

    def realm_allowed(self, realm: str, api_host: str) -> bool:
        parts = urlsplit(realm)
        return parts.scheme == "https" and parts.hostname == TOKEN_REALM_HOST

    def rate_limit(self, headers: Mapping[str, str]) -> RateLimit | None:
        limit, window = parse_quota(headers.get("ratelimit-limit"))
        remaining, window_left = parse_quota(headers.get("ratelimit-remaining"))
        if limit is None and remaining is None:
            return None
        source = headers.get("docker-ratelimit-source")
        return RateLimit(limit, remaining, window or window_left, source)


@hookimpl
def fleet_registry(host: str, spec: RegistrySpec | None) -> RegistryProvider | None:
    if spec is not None:
        return DockerHub() if spec.type == "dockerhub" else None
    return DockerHub() if host.lower() in HOSTS else None
