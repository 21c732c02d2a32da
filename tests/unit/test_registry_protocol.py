"""The registry client's protocol pieces: challenges, references, Link, Retry-After, 429."""

from __future__ import annotations

import httpx
import pytest

from fleet.config import Settings
from fleet.errors import FleetError, TransientError, UserError
from fleet.registry.challenge import parse_challenges
from fleet.registry.client import MANIFEST_TYPES, RegistryClient, next_link, retry_after
from fleet.registry.credentials import Credential, credential_from_env
from fleet.registry.reference import ImageReference, parse_reference

SETTINGS = Settings()


def test_bearer_challenge_with_a_scope_that_holds_commas() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:org/app:pull,push repository:org/other:pull",error="insufficient_scope"'
    )
    (challenge,) = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example/token"
    assert challenge.params["service"] == "registry.example"
    assert challenge.params["scope"] == "repository:org/app:pull,push repository:org/other:pull"
    assert challenge.params["error"] == "insufficient_scope"


def test_basic_challenge_and_several_challenges_in_one_header() -> None:
    assert parse_challenges('Basic realm="Registry Realm"')[0].params == {"realm": "Registry Realm"}
    both = parse_challenges('Bearer realm="https://a/t", scope="x:y:pull,push", Basic realm="b"')
    assert [c.scheme for c in both] == ["bearer", "basic"]
    assert both[0].params["scope"] == "x:y:pull,push"
    assert both[1].realm == "b"


def test_quoted_pair_escapes_and_unquoted_tokens() -> None:
    (challenge,) = parse_challenges(r'Bearer realm="https://a/t?x=\"y\"",service=reg')
    assert challenge.realm == 'https://a/t?x="y"'
    assert challenge.params["service"] == "reg"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", ImageReference("", "nginx")),
        ("nginx:1.27", ImageReference("", "nginx", "1.27")),
        ("org/app:v1", ImageReference("", "org/app", "v1")),
        ("localhost:5000/app", ImageReference("localhost:5000", "app")),
        ("127.0.0.1:5000/a/b:c", ImageReference("127.0.0.1:5000", "a/b", "c")),
        ("oci://reg.example/charts/web", ImageReference("reg.example", "charts/web")),
        (
            "reg.example/app:1@sha256:" + "a" * 64,
            ImageReference("reg.example", "app", "1", "sha256:" + "a" * 64),
        ),
    ],
)
def test_references(text: str, expected: ImageReference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text", ["", "UPPER/app", "app:-x", "app@sha256:zz", "a//b", "app:"])
def test_invalid_references_are_one_line_errors(text: str) -> None:
    with pytest.raises(FleetError, match="invalid image reference"):
        parse_reference(text)


def test_link_next_is_resolved_against_the_page() -> None:
    base = "https://reg.example/v2/org/app/tags/list?n=2"
    link = '</v2/org/app/tags/list?last=b&n=2>; rel="next"'
    assert next_link(link, base) == "https://reg.example/v2/org/app/tags/list?last=b&n=2"
    assert next_link('<https://other.example/x>; rel="prev"', base) is None
    assert next_link(None, base) is None


def test_retry_after_seconds_and_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after("soon") is None


def test_credentials_come_from_the_environment_by_name() -> None:
    env = {
        "FLEET_REGISTRY_USERNAME_QUAY_ROBOT": "org+deployer",
        "FLEET_REGISTRY_PASSWORD_QUAY_ROBOT": "s3cret",
    }
    credential = credential_from_env("quay-robot", env, host="quay.io")
    assert credential == Credential("org+deployer", "s3cret")
    assert "s3cret" not in repr(credential)
    with pytest.raises(UserError, match="FLEET_REGISTRY_USERNAME_OTHER and FLEET_REGISTRY_PASS"):
        credential_from_env("other", env, host="quay.io")


def _client(handler: httpx.MockTransport, **kwargs: object) -> RegistryClient:
    return RegistryClient("reg.example", transport=handler, settings=SETTINGS, **kwargs)  # type: ignore[arg-type]


def test_429_waits_retry_after_then_succeeds() -> None:
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3:
            return httpx.Response(429, headers={"Retry-After": "3"})
        return httpx.Response(200, json={"name": "app", "tags": ["1"]})

    slept: list[float] = []
    client = _client(httpx.MockTransport(handle), sleep=slept.append)
    assert client.tags("app") == ["1"]
    assert slept == [3.0, 3.0]


def test_429_without_end_is_a_transient_error_with_the_rate_limit() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        headers = {"Retry-After": "9999", "RateLimit-Limit": "100", "RateLimit-Remaining": "0"}
        return httpx.Response(429, headers=headers)

    slept: list[float] = []
    client = _client(httpx.MockTransport(handle), sleep=slept.append, max_retries=2)
    with pytest.raises(TransientError, match=r"HTTP 429 \(rate limit: 0 of 100 left\)") as err:
        client.tags("app")
    assert slept == [60.0, 60.0]  # a Retry-After of hours is cut
    assert err.value.retry_after == 9999.0


def test_manifest_head_asks_for_all_four_media_types() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["accept"])
        return httpx.Response(
            200,
            headers={
                "Docker-Content-Digest": "sha256:" + "b" * 64,
                "Content-Type": MANIFEST_TYPES[0],
                "Content-Length": "321",
            },
        )

    info = _client(httpx.MockTransport(handle)).head_manifest("app", "1")
    assert info.digest == "sha256:" + "b" * 64 and info.size == 321
    assert seen[0].split(", ") == list(MANIFEST_TYPES)


def test_pagination_to_another_host_is_refused() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        link = '<https://evil.example/v2/app/tags/list?last=a>; rel="next"'
        return httpx.Response(200, json={"tags": ["a"]}, headers={"Link": link})

    with pytest.raises(FleetError, match="pagination link to another host"):
        _client(httpx.MockTransport(handle)).tags("app")


def test_errors_never_carry_the_password() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "bad password hunter2"}]}
        return httpx.Response(401, json=body)

    client = _client(httpx.MockTransport(handle), credential=Credential("me", "hunter2"))
    with pytest.raises(UserError) as err:
        client.tags("app")
    assert "hunter2" not in str(err.value)
    assert str(err.value) == (
        "registry reg.example: tags of app: HTTP 401: UNAUTHORIZED bad password *** "
        "(denied with the credential)"
    )


def test_unreachable_registry_is_transient() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(TransientError, match=r"cannot reach reg\.example"):
        _client(httpx.MockTransport(handle)).tags("app")


def test_basic_is_sent_from_the_start_once_the_registry_asked_for_it() -> None:
    seen: list[bool] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append("authorization" in request.headers)
        if "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(200, json={"tags": ["1"]})

    client = _client(httpx.MockTransport(handle), credential=Credential("me", "pw"))
    assert client.tags("app") == ["1"]
    assert client.tags("app") == ["1"]
    assert seen == [False, True, True]
