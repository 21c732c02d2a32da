"""The registries of one fleet: which provider and credential serve a reference.

`Registries` joins three things: the definition's `registries` (a host, a provider `type`,
a `credential` name), the `fleet_registry` plugins (first answer by host), and the
credentials of the worker's environment. It keeps one client per registry host and one
token cache for all of them, so a scan or a render asks each registry for a token once per
scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from fleet import config
from fleet.errors import UserError
from fleet.registry.credentials import Credential, credential_from_env
from fleet.registry.provider import RegistryProvider
from fleet.registry.reference import ImageReference, parse_reference
from fleet.spec.definition import RegistrySpec

if TYPE_CHECKING:  # httpx is imported when a registry is first asked, not with fleet.desired
    import httpx

    from fleet.registry.client import RegistryClient, TokenCache


class ProviderSource(Protocol):
    """What `Registries` asks of the plugins (`FleetPlugins` implements it)."""

    def registry_provider(
        self, host: str, spec: RegistrySpec | None
    ) -> RegistryProvider | None: ...


def spec_host(spec: RegistrySpec) -> str | None:
    """`host[:port]` a registries entry serves (`host`, or the host of its `url`)."""
    if spec.host:
        return spec.host.lower()
    if spec.url:
        return urlsplit(spec.url if "://" in spec.url else f"https://{spec.url}").netloc.lower()
    return None


def registry_credential(
    specs: Sequence[RegistrySpec], host: str, settings: config.Settings | None = None
) -> Credential | None:
    """The credential the definition's `registries` name for `host`, from the environment
    of `settings` (default: the process's); None when no entry names one for that host."""
    for spec in specs:
        if spec_host(spec) == host.lower() and spec.credential:
            env = (settings or config.current()).env
            return credential_from_env(spec.credential, env, host=host)
    return None


class Registries:
    def __init__(
        self,
        specs: Sequence[RegistrySpec],
        providers: ProviderSource,
        *,
        settings: config.Settings | None = None,
        tokens: TokenCache | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.specs = list(specs)
        self.providers = providers
        self.settings = settings or config.current()
        self._tokens = tokens
        self.transport = transport  # tests replay recorded exchanges through one
        self._clients: dict[str, RegistryClient] = {}

    def spec_for(self, host: str) -> RegistrySpec | None:
        """The entry for `host`: the one naming it, else one without an address whose
        `type` is the provider that claims the host (`type: dockerhub` and no `host`
        serves every Docker Hub reference)."""
        for spec in self.specs:
            if spec_host(spec) == host.lower():
                return spec
        unaddressed = [s for s in self.specs if spec_host(s) is None]
        if unaddressed:
            claimed = self.providers.registry_provider(host, None)
            for spec in unaddressed:
                if claimed is not None and spec.type == claimed.name:
                    return spec
        return None

    def provider(self, host: str) -> RegistryProvider:
        spec = self.spec_for(host)
        provider = self.providers.registry_provider(host, spec)
        if provider is None:
            what = f"registry {spec.name!r} (type {spec.type!r})" if spec else f"host {host!r}"
            raise UserError(f"no registry plugin serves {what}")
        return provider

    def resolve(self, text: str) -> tuple[RegistryClient, ImageReference]:
        """The client for a reference, and the reference as its registry's API names it."""
        reference = parse_reference(text)
        reference = self.provider(reference.host).normalize(reference)
        return self.client(reference.host), reference

    def credential(self, host: str) -> Credential | None:
        spec = self.spec_for(host)
        if spec is None or not spec.credential:
            return None
        return credential_from_env(spec.credential, self.settings.env, host=host)

    @property
    def tokens(self) -> TokenCache:
        if self._tokens is None:
            from fleet.registry.client import TokenCache

            self._tokens = TokenCache()
        return self._tokens

    def client(self, host: str) -> RegistryClient:
        from fleet.registry.client import RegistryClient

        found = self._clients.get(host)
        if found is None:
            found = RegistryClient(
                host,
                self.provider(host),
                self.credential(host),
                settings=self.settings,
                tokens=self.tokens,
                transport=self.transport,
            )
            self._clients[host] = found
        return found

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
