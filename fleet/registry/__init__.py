"""Container registries: the OCI distribution API client every registry plugin uses.

What enters: an image or chart reference (`host/repo:tag`), the registry's provider (a
`fleet_registry` plugin: generic OCI, Docker Hub, GHCR, Quay...) and a credential the
worker holds (`FLEET_REGISTRY_USERNAME_<NAME>` / `FLEET_REGISTRY_PASSWORD_<NAME>`, named
by the definition's `registries[].credential`, never from Git). What leaves: tags,
manifest digests, platform lists and the rate limit the registry announced.

Modules: `reference` (parse references), `challenge` (`WWW-Authenticate`), `provider`
(the base class provider plugins extend, rate limits), `client` (HTTP: auth, token cache,
pagination, retries), `credentials` (from the environment).
"""
