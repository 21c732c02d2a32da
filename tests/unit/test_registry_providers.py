"""Provider plugins against recorded (documented) challenge headers and responses.

Docker Hub, GHCR and Quay cannot be reached from the test bed, so their exchanges are
replayed: each handler answers exactly what the service documents (challenge header,
token response, rate-limit headers, Quay's REST tag pages) and records what fleet sent.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest

from fleet.config import Settings
from fleet.errors import FleetError, UserError
from fleet.plugin import FleetPlugins
from fleet.registry.access import Registries
from fleet.spec.definition import RegistrySpec

DIGEST = "sha256:" + "c" * 64
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(scope="module")
def plugins() -> FleetPlugins:
    return FleetPlugins.load(entry_points=False)


def _registries(
    plugins: FleetPlugins,
    handler: Handler,
    specs: list[RegistrySpec] | None = None,
    env: dict[str, str] | None = None,
) -> Registries:
    settings = Settings(env=env or {})
    transport = httpx.MockTransport(handler)
    return Registries(specs or [], plugins, settings=settings, transport=transport)


def _basic(request: httpx.Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


def test_provider_is_chosen_by_host_and_by_type(plugins: FleetPlugins) -> None:
    registries = Registries(
        [RegistrySpec(name="mirror", type="dockerhub", host="mirror.example")], plugins
    )
    assert registries.provider("").name == "dockerhub"
    assert registries.provider("docker.io").name == "dockerhub"
    assert registries.provider("ghcr.io").name == "ghcr"
    assert registries.provider("quay.io").name == "quay"
    assert registries.provider("reg.example:5000").name == "oci"
    assert registries.provider("mirror.example").name == "dockerhub"
    unknown = Registries([RegistrySpec(name="x", type="artifactory", host="x.example")], plugins)
    with pytest.raises(UserError, match=r"no registry plugin serves registry 'x' \(type 'artif"):
        unknown.provider("x.example")


def test_docker_hub_library_token_service_and_rate_limit_headers(plugins: FleetPlugins) -> None:
    seen: list[str] = []

    def hub(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        if request.url.host == "auth.docker.io":
            assert request.url.params["service"] == "registry.docker.io"
            assert request.url.params["scope"] == "repository:library/nginx:pull"
            assert "authorization" not in request.headers  # anonymous
            return httpx.Response(
                200,
                json={"token": "tok-1", "access_token": "tok-1", "expires_in": 300},
            )
        assert request.url.host == "registry-1.docker.io"
        if request.headers.get("authorization") != "Bearer tok-1":
            challenge = (
                'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                'scope="repository:library/nginx:pull"'
            )
            return httpx.Response(401, headers={"www-authenticate": challenge})
        return httpx.Response(
            200,
            headers={
                "docker-content-digest": DIGEST,
                "content-type": "application/vnd.oci.image.index.v1+json",
                "ratelimit-limit": "100;w=21600",
                "ratelimit-remaining": "98;w=21600",
                "docker-ratelimit-source": "203.0.113.7",
            },
        )

    registries = _registries(plugins, hub)
    client, reference = registries.resolve("nginx:1.27")
    assert (reference.host, reference.repository) == ("docker.io", "library/nginx")
    assert client.head_manifest(reference.repository, "1.27").digest == DIGEST
    assert str(client.rate_limit) == "rate limit: 98 of 100 left per 21600s"
    assert client.rate_limit is not None and client.rate_limit.source == "203.0.113.7"
    client.head_manifest(reference.repository, "1.27")  # the token is cached per scope
    assert [s.split("?")[0] for s in seen] == [
        "HEAD https://registry-1.docker.io/v2/library/nginx/manifests/1.27",
        "GET https://auth.docker.io/token",
        "HEAD https://registry-1.docker.io/v2/library/nginx/manifests/1.27",
        "HEAD https://registry-1.docker.io/v2/library/nginx/manifests/1.27",
    ]
    assert registries.resolve("docker.io/bitnami/redis")[1].repository == "bitnami/redis"


def test_an_entry_without_host_serves_its_providers_hosts(plugins: FleetPlugins) -> None:
    specs = [RegistrySpec(name="hub", type="dockerhub", credential="hub")]
    env = {"FLEET_REGISTRY_USERNAME_HUB": "me", "FLEET_REGISTRY_PASSWORD_HUB": "pat"}
    registries = Registries(specs, plugins, settings=Settings(env=env))
    assert registries.spec_for("docker.io") == specs[0]
    assert registries.credential("docker.io") is not None
    assert registries.spec_for("ghcr.io") is None


def test_docker_hub_sends_credentials_only_to_its_token_service(plugins: FleetPlugins) -> None:
    def hub(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "registry-1.docker.io", "credentials sent elsewhere"
        challenge = 'Bearer realm="https://collector.example/token",service="x"'
        return httpx.Response(401, headers={"www-authenticate": challenge})

    specs = [RegistrySpec(name="hub", type="dockerhub", host="docker.io", credential="hub")]
    env = {"FLEET_REGISTRY_USERNAME_HUB": "me", "FLEET_REGISTRY_PASSWORD_HUB": "pat"}
    client, reference = _registries(plugins, hub, specs, env).resolve("me/app:1")
    with pytest.raises(FleetError, match=r"token realm https://collector\.example refused"):
        client.head_manifest(reference.repository, "1")


def _ghcr(tokens: list[tuple[str, str] | None]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "ghcr.io"
        if request.url.path == "/token":
            tokens.append(_basic(request))
            return httpx.Response(200, json={"token": "djE6b3JnL2FwcDox"})
        if request.headers.get("authorization") != "Bearer djE6b3JnL2FwcDox":
            challenge = (
                'Bearer realm="https://ghcr.io/token",service="ghcr.io",'
                'scope="repository:org/app:pull"'
            )
            return httpx.Response(401, headers={"www-authenticate": challenge})
        return httpx.Response(200, json={"name": "org/app", "tags": ["1.0.0", "1.1.0"]})

    return handle


def test_ghcr_anonymous_token_for_a_public_image(plugins: FleetPlugins) -> None:
    tokens: list[tuple[str, str] | None] = []
    client, reference = _registries(plugins, _ghcr(tokens)).resolve("ghcr.io/org/app")
    assert client.tags(reference.repository) == ["1.0.0", "1.1.0"]
    assert tokens == [None]


def test_ghcr_personal_access_token_for_a_private_image(plugins: FleetPlugins) -> None:
    tokens: list[tuple[str, str] | None] = []
    specs = [RegistrySpec(name="gh", type="ghcr", host="ghcr.io", credential="gh")]
    env = {"FLEET_REGISTRY_USERNAME_GH": "octocat", "FLEET_REGISTRY_PASSWORD_GH": "ghp_x"}
    client, reference = _registries(plugins, _ghcr(tokens), specs, env).resolve("ghcr.io/org/app")
    assert client.tags(reference.repository) == ["1.0.0", "1.1.0"]
    assert tokens == [("octocat", "ghp_x")]


def test_quay_robot_account_keeps_its_plus(plugins: FleetPlugins) -> None:
    sent: list[tuple[str, str] | None] = []

    def quay(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/auth":
            sent.append(_basic(request))
            return httpx.Response(200, json={"token": "quay-tok"})
        if request.headers.get("authorization") != "Bearer quay-tok":
            challenge = (
                'Bearer realm="https://quay.io/v2/auth",service="quay.io",'
                'scope="repository:org/app:pull"'
            )
            return httpx.Response(401, headers={"www-authenticate": challenge})
        return httpx.Response(200, json={"name": "org/app", "tags": ["v1"]})

    specs = [RegistrySpec(name="quay", type="quay", host="quay.io", credential="quay-robot")]
    env = {
        "FLEET_REGISTRY_USERNAME_QUAY_ROBOT": "org+deployer",
        "FLEET_REGISTRY_PASSWORD_QUAY_ROBOT": "ROBOTTOKEN",
    }
    client, reference = _registries(plugins, quay, specs, env).resolve("quay.io/org/app:v1")
    assert client.tags(reference.repository) == ["v1"]
    assert sent == [("org+deployer", "ROBOTTOKEN")]


def test_quay_rest_tag_api_pages_with_only_active_tags(plugins: FleetPlugins) -> None:
    pages = {
        "1": {
            "tags": [
                {"name": "v2", "manifest_digest": DIGEST, "last_modified": "Tue, 01 Dec 2026"},
            ],
            "page": 1,
            "has_additional": True,
        },
        "2": {
            "tags": [{"name": "v1", "manifest_digest": "sha256:" + "d" * 64}],
            "page": 2,
            "has_additional": False,
        },
    }
    asked: list[dict[str, str]] = []

    def quay(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/repository/org/app/tag/"
        asked.append(dict(request.url.params))
        return httpx.Response(200, json=pages[request.url.params["page"]])

    client, reference = _registries(plugins, quay).resolve("quay.io/org/app")
    tags = client.provider.rest_tags(client, reference.repository)  # type: ignore[attr-defined]
    assert [(t.name, t.digest) for t in tags] == [("v2", DIGEST), ("v1", "sha256:" + "d" * 64)]
    assert tags[0].last_modified == "Tue, 01 Dec 2026"
    assert [a["onlyActiveTags"] for a in asked] == ["true", "true"]
    assert [a["page"] for a in asked] == ["1", "2"]


def test_distribution_link_pagination_with_relative_links(plugins: FleetPlugins) -> None:
    # distribution's own shape: `Link: </v2/<name>/tags/list?last=<tag>&n=<n>>; rel="next"`
    tags = [f"v{i}" for i in range(5)]

    def registry(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("n", "100"))
        last = request.url.params.get("last")
        start = tags.index(last) + 1 if last else 0
        page = tags[start : start + n]
        headers = {}
        if start + n < len(tags):
            headers["Link"] = f'</v2/app/tags/list?last={page[-1]}&n={n}>; rel="next"'
        return httpx.Response(200, json={"name": "app", "tags": page}, headers=headers)

    client, reference = _registries(plugins, registry).resolve("reg.example:5000/app")
    assert client.tags(reference.repository, page_size=2) == tags
