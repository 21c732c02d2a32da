"""Built-in registry provider `ghcr`: GitHub's container registry.

Public images need no credential: the registry answers 401 with a Bearer challenge
(realm `https://ghcr.io/token`) and hands out an anonymous pull token. Private images need
a personal access token (classic, `read:packages`) as the credential's password, with the
GitHub user name as its username; the token service then issues a token for the scope.
Credentials go only to that realm.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fleet.plugin import RegistryProvider, RegistrySpec, hookimpl

HOST = "ghcr.io"


class GitHubContainerRegistry(RegistryProvider):
    name = "ghcr"

    def realm_allowed(self, realm: str, api_host: str) -> bool:
        parts = urlsplit(realm)
        return parts.scheme == "https" and parts.hostname == HOST


@hookimpl
def fleet_registry(host: str, spec: RegistrySpec | None) -> RegistryProvider | None:
    if spec is not None:
        return GitHubContainerRegistry() if spec.type == "ghcr" else None
    return GitHubContainerRegistry() if host.lower() == HOST else None
