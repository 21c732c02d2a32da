"""The registry client against real registries: distribution 2.8 with htpasswd and token auth.

Images are written here as an OCI layout and pushed with skopeo: an OCI manifest, an OCI
index over two platforms, a Docker v2 schema 2 manifest and a Docker manifest list. Their
digests are known before the push, so a registry that down-converted a manifest (because
the client's Accept lacked its type) would show as a different digest.
"""

from __future__ import annotations

import base64
import http.server
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from fleet.config import Settings
from fleet.errors import FleetError, TransientError, UserError
from fleet.plugin import FleetPlugins
from fleet.registry.access import Registries
from fleet.registry.client import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Platform,
    RegistryClient,
)
from fleet.spec.definition import RegistrySpec
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer
from tests.support.tls import TlsFiles, https_server


@dataclass(frozen=True)
class Pushed:
    layout: Path
    oci: str  # digest of the single OCI manifest (tags 1.0.0, 1.1.0)
    index: str  # digest of the OCI index (2.0.0)


def _push_all(registry: RegistryServer, base: Path) -> Pushed:
    layout = OciLayout(base / f"layout-{registry.auth}")
    one, index = layout.image("one"), layout.multi_arch("multi")
    layout.tag(one, "one")
    layout.tag(index, "multi")
    for tag in ("1.0.0", "1.1.0", "1.2.0-rc.1"):
        registry.push_image(layout.root, "one", f"app/web:{tag}")
    registry.push_image(layout.root, "multi", "app/web:2.0.0", flags=("--all",))
    registry.push_image(layout.root, "one", "app/web:docker", flags=("--format", "v2s2"))
    registry.push_image(
        layout.root, "multi", "app/web:docker-list", flags=("--all", "--format", "v2s2")
    )
    registry.push_image(layout.root, "one", "public/web:1.0.0")
    return Pushed(layout.root, one.digest, index.digest)


@pytest.fixture(scope="module")
def htpasswd_images(
    htpasswd_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Pushed:
    return _push_all(htpasswd_registry, tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def token_images(
    token_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Pushed:
    return _push_all(token_registry, tmp_path_factory.mktemp("images"))


def _registries(
    registry: RegistryServer, tls: TlsFiles, *, credential: bool = True, password: str | None = None
) -> Registries:
    user, real_password = next(iter(registry.users.items()))
    env = {
        "SSL_CERT_FILE": str(tls.cert),
        "FLEET_REGISTRY_USERNAME_BED": user,
        "FLEET_REGISTRY_PASSWORD_BED": password or real_password,
    }
    spec = RegistrySpec(
        name="bed", type="oci", host=registry.host, credential="bed" if credential else None
    )
    return Registries([spec], FleetPlugins.load(entry_points=False), settings=Settings(env=env))


def _client(registries: Registries, registry: RegistryServer) -> RegistryClient:
    return registries.client(registry.host)


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_tags_and_all_four_manifest_types(
    auth: str, request: pytest.FixtureRequest, registry_tls: TlsFiles
) -> None:
    registry: RegistryServer = request.getfixturevalue(f"{auth}_registry")
    pushed: Pushed = request.getfixturevalue(f"{auth}_images")
    client = _client(_registries(registry, registry_tls), registry)
    assert sorted(client.tags("app/web")) == [
        "1.0.0",
        "1.1.0",
        "1.2.0-rc.1",
        "2.0.0",
        "docker",
        "docker-list",
    ]
    single = client.head_manifest("app/web", "1.0.0")
    assert (single.media_type, single.digest) == (OCI_MANIFEST, pushed.oci)
    index = client.head_manifest("app/web", "2.0.0")
    assert (index.media_type, index.digest) == (OCI_INDEX, pushed.index)
    assert client.head_manifest("app/web", "docker").media_type == DOCKER_MANIFEST
    assert client.head_manifest("app/web", "docker-list").media_type == DOCKER_LIST
    # GET agrees with HEAD on the digest
    assert client.get_manifest("app/web", "2.0.0")[0].digest == pushed.index


def test_multi_arch_platforms(
    htpasswd_registry: RegistryServer, registry_tls: TlsFiles, htpasswd_images: Pushed
) -> None:
    client = _client(_registries(htpasswd_registry, registry_tls), htpasswd_registry)
    for tag in ("2.0.0", "docker-list"):
        assert [str(p) for p in client.platforms("app/web", tag)] == [
            "linux/amd64",
            "linux/arm64/v8",
        ]
    assert client.platforms("app/web", "1.0.0") == []
    client.check_platform("app/web", "2.0.0", Platform("linux", "arm64"))
    with pytest.raises(FleetError, match=r"has no linux/s390x image \(platforms: linux/amd64, "):
        client.check_platform("app/web", "2.0.0", Platform("linux", "s390x"))


class _Paginating(http.server.BaseHTTPRequestHandler):
    """Tags in pages of `n` with a relative `Link: <...>; rel="next"`, as distribution 3 and
    most hosted registries answer (distribution 2.8 pages only the catalog, not tags)."""

    tags = [f"1.{minor}.0" for minor in range(7)]
    asked: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        n = int(query.get("n", "100"))
        last = query.get("last")
        start = self.tags.index(last) + 1 if last else 0
        page = self.tags[start : start + n]
        body = json.dumps({"name": "app", "tags": page}).encode()
        self.send_response(200)
        if start + n < len(self.tags):
            self.send_header("Link", f'</v2/app/tags/list?last={page[-1]}&n={n}>; rel="next"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_link_pagination_end_to_end(registry_tls: TlsFiles) -> None:
    _Paginating.asked = []
    settings = Settings(env={"SSL_CERT_FILE": str(registry_tls.cert)})
    with https_server(_Paginating, registry_tls) as url:
        client = RegistryClient(url.removeprefix("https://"), settings=settings)
        assert client.tags("app", page_size=3) == _Paginating.tags
    assert _Paginating.asked == [
        "/v2/app/tags/list?n=3",
        "/v2/app/tags/list?last=1.2.0&n=3",
        "/v2/app/tags/list?last=1.5.0&n=3",
    ]


def test_basic_auth_needs_the_credential(
    htpasswd_registry: RegistryServer, registry_tls: TlsFiles, htpasswd_images: Pushed
) -> None:
    anonymous = _client(
        _registries(htpasswd_registry, registry_tls, credential=False), htpasswd_registry
    )
    with pytest.raises(UserError, match=r"HTTP 401: UNAUTHORIZED .* \(denied anonymously\)$"):
        anonymous.tags("app/web")
    wrong = _client(
        _registries(htpasswd_registry, registry_tls, password="not-it-x9"), htpasswd_registry
    )
    with pytest.raises(UserError, match="denied with the credential") as err:
        wrong.tags("app/web")
    assert "not-it-x9" not in str(err.value)


def test_token_auth_is_cached_per_scope_and_anonymous_reads_public(
    token_registry: RegistryServer, registry_tls: TlsFiles, token_images: Pushed
) -> None:
    server = token_registry.token_server
    assert server is not None
    before = len(server.requests)
    client = _client(_registries(token_registry, registry_tls), token_registry)
    client.head_manifest("app/web", "1.0.0")
    client.head_manifest("app/web", "1.1.0")
    client.tags("app/web")
    asked = server.requests[before:]
    assert len(asked) == 1  # one token for (registry, repository:app/web:pull)
    assert asked[0]["query"]["scope"] == ["repository:app/web:pull"]
    assert asked[0]["query"]["service"] == ["fleet-test-registry"]
    user, password = next(iter(token_registry.users.items()))
    assert (
        asked[0]["authorization"]
        == "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    )

    anonymous = _client(_registries(token_registry, registry_tls, credential=False), token_registry)
    assert anonymous.tags("public/web") == ["1.0.0"]
    assert server.requests[-1]["authorization"] is None
    with pytest.raises(UserError, match="HTTP 401"):
        anonymous.tags("app/web")  # a token without access: the registry still says 401

    wrong = _client(_registries(token_registry, registry_tls, password="not-it-x9"), token_registry)
    with pytest.raises(UserError, match="the credential was refused") as err:
        wrong.tags("app/web")
    assert "not-it-x9" not in str(err.value)


class _Throttled(http.server.BaseHTTPRequestHandler):
    """429 with Retry-After twice, then the tags: a registry's rate limiter."""

    calls = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).calls += 1
        if type(self).calls <= 2:
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("RateLimit-Limit", "100;w=60")
            self.send_header("RateLimit-Remaining", "0;w=60")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"name": "app", "tags": ["1.0.0"]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def throttled(registry_tls: TlsFiles) -> Iterator[str]:
    _Throttled.calls = 0
    with https_server(_Throttled, registry_tls) as url:
        yield url.removeprefix("https://")


def test_429_retry_after_is_honoured_over_the_network(
    throttled: str, registry_tls: TlsFiles
) -> None:
    slept: list[float] = []
    settings = Settings(env={"SSL_CERT_FILE": str(registry_tls.cert)})
    client = RegistryClient(throttled, settings=settings, sleep=slept.append)
    assert client.tags("app") == ["1.0.0"]
    assert slept == [1.0, 1.0]
    assert _Throttled.calls == 3
    assert str(client.rate_limit) == "rate limit: 0 of 100 left per 60s"


def test_a_registry_that_is_down_is_a_transient_error(registry_tls: TlsFiles) -> None:
    from tests.support.servers import free_port

    settings = Settings(env={"SSL_CERT_FILE": str(registry_tls.cert)})
    client = RegistryClient(f"127.0.0.1:{free_port()}", settings=settings)
    with pytest.raises(TransientError, match=r"cannot reach 127\.0\.0\.1:\d+ \(ConnectError\)"):
        client.tags("app")
