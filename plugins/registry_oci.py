"""Built-in registry provider `oci`: any registry that speaks the OCI distribution API.

Tried last (`trylast`): it answers for `type: oci` entries of the definition's
`registries`, and for every host that no other plugin claims, with the generic behaviour
of `fleet.plugin.RegistryProvider` (token realms over https or on the registry's own host,
`RateLimit-*` / `X-RateLimit-*` headers).
"""

from __future__ import annotations

from fleet.plugin import RegistryProvider, RegistrySpec, hookimpl


class OciRegistry(RegistryProvider):
    name = "oci"


@hookimpl(trylast=True)
def fleet_registry(host: str, spec: RegistrySpec | None) -> RegistryProvider | None:
    if spec is not None:
        return OciRegistry() if spec.type == "oci" else None
    return OciRegistry() if host else None
