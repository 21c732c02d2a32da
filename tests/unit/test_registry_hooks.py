"""Registry push webhooks (fleet.images.hooks): the three documented payload shapes, the
shared token in a header or the path, and which image policies a push concerns."""

from __future__ import annotations

import json

import pytest

from fleet.images.hooks import (
    DISTRIBUTION_TYPE,
    HookRejected,
    PushedImage,
    authorized,
    is_hook_path,
    matching_policies,
    parse_pushes,
    redact_path,
)
from fleet.registry.reference import ImageReference

# Docker Hub's documented example payload (docs.docker.com, "Webhooks", example payload)
DOCKER_HUB = {
    "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
    "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": "latest"},
    "repository": {
        "comment_count": 0,
        "date_created": 1417494799,
        "description": "",
        "is_official": False,
        "is_private": True,
        "is_trusted": True,
        "name": "testhook",
        "namespace": "svendowideit",
        "owner": "svendowideit",
        "repo_name": "svendowideit/testhook",
        "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/",
        "star_count": 0,
        "status": "Active",
    },
}

# Quay's documented "Repository Push" notification (docs.quay.io, notifications)
QUAY = {
    "name": "repository",
    "repository": "mynamespace/repository",
    "namespace": "mynamespace",
    "docker_url": "quay.io/mynamespace/repository",
    "homepage": "https://quay.io/repository/mynamespace/repository",
    "updated_tags": ["latest", "1.2.0"],
}

# distribution's notification envelope (docs/notifications.md): a layer push, the manifest
# push with its tag, a pull, and a manifest pushed by digest
DIGEST = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"
LAYER = "sha256:" + "a" * 64
DISTRIBUTION = {
    "events": [
        {
            "id": "asdf-asdf-asdf-asdf-0",
            "timestamp": "2006-01-02T15:04:05Z",
            "action": "push",
            "target": {
                "mediaType": "application/octet-stream",
                "size": 1234,
                "digest": LAYER,
                "length": 1234,
                "repository": "library/test",
                "url": "http://example.com/v2/library/test/blobs/" + LAYER,
            },
            "request": {
                "id": "r0",
                "addr": "client.local",
                "host": "registry.example:5000",
                "method": "PUT",
                "useragent": "test/0.1",
            },
            "actor": {"name": "test-actor"},
            "source": {"addr": "hostname.local:port"},
        },
        {
            "id": "asdf-asdf-asdf-asdf-1",
            "timestamp": "2006-01-02T15:04:05Z",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "size": 708,
                "digest": DIGEST,
                "length": 708,
                "repository": "team/web",
                "url": "http://example.com/v2/team/web/manifests/" + DIGEST,
                "tag": "1.1.0",
            },
            "request": {
                "id": "r1",
                "addr": "client.local",
                "host": "registry.example:5000",
                "method": "PUT",
                "useragent": "test/0.1",
            },
            "actor": {"name": "test-actor"},
            "source": {"addr": "hostname.local:port"},
        },
        {
            "id": "asdf-asdf-asdf-asdf-2",
            "action": "pull",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": DIGEST,
                "repository": "team/api",
                "tag": "2.0.0",
            },
            "request": {"host": "registry.example:5000", "method": "GET"},
        },
        {
            "id": "asdf-asdf-asdf-asdf-3",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": DIGEST,
                "repository": "team/worker",
            },
            "request": {"host": "registry.example:5000", "method": "PUT"},
        },
    ]
}


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_docker_hub_push() -> None:
    assert parse_pushes({"Content-Type": "application/json"}, body(DOCKER_HUB)) == [
        PushedImage("docker.io", "svendowideit/testhook", "latest")
    ]


def test_docker_hub_official_image_is_under_library() -> None:
    payload = {"push_data": {"tag": "1.27"}, "repository": {"repo_name": "nginx"}}
    assert parse_pushes({}, body(payload)) == [PushedImage("docker.io", "library/nginx", "1.27")]


def test_quay_push_names_every_updated_tag() -> None:
    assert parse_pushes({"Content-Type": "application/json"}, body(QUAY)) == [
        PushedImage("quay.io", "mynamespace/repository", "latest"),
        PushedImage("quay.io", "mynamespace/repository", "1.2.0"),
    ]


def test_distribution_keeps_manifest_pushes_only() -> None:
    pushed = parse_pushes({"Content-Type": DISTRIBUTION_TYPE}, body(DISTRIBUTION))
    assert pushed == [
        PushedImage("registry.example:5000", "team/web", "1.1.0", DIGEST),
        PushedImage("registry.example:5000", "team/worker", None, DIGEST),
    ]


def test_distribution_of_pulls_only_is_ignored() -> None:
    pulls = {"events": [DISTRIBUTION["events"][2]]}
    with pytest.raises(HookRejected) as caught:
        parse_pushes({"Content-Type": DISTRIBUTION_TYPE}, body(pulls))
    assert caught.value.status == 202 and "ignored" in caught.value.reason


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        body({"hello": "world"}),
        body({"push_data": {"tag": "1"}, "repository": {}}),
        body({"repository": "a/b", "docker_url": "quay.io/a/b", "updated_tags": "latest"}),
        body({"events": {"action": "push"}}),
    ],
)
def test_malformed_payloads_are_400(raw: bytes) -> None:
    with pytest.raises(HookRejected) as caught:
        parse_pushes({}, raw)
    assert caught.value.status == 400


def test_token_in_bearer_header_or_path() -> None:
    token = "s3cret-token"
    assert authorized(token, "/hooks/registry", {"Authorization": f"Bearer {token}"})
    assert authorized(token, "/hooks/registry", {"authorization": f"bearer {token}"})
    assert authorized(token, f"/hooks/registry/{token}", {})
    assert authorized(token, f"/hooks/registry/{token}?x=1", {})
    assert not authorized(token, "/hooks/registry", {})
    assert not authorized(token, "/hooks/registry/wrong", {"Authorization": "Bearer wrong"})
    assert not authorized(token, "/hooks/registry", {"Authorization": f"Basic {token}"})
    assert not authorized(token, f"/hooks/registry/{token}/more", {})
    assert not authorized("", "/hooks/registry/", {"Authorization": "Bearer "})
    assert not authorized(None, "/hooks/registry/x", {"Authorization": "Bearer x"})


def test_hook_path_and_redaction() -> None:
    assert is_hook_path("/hooks/registry") and is_hook_path("/hooks/registry/tok?a=b")
    assert not is_hook_path("/hooks/registryx") and not is_hook_path("/hooks/git")
    line = '"POST /hooks/registry/s3cret-token HTTP/1.1" 202 -'
    assert redact_path(line) == '"POST /hooks/registry/*** HTTP/1.1" 202 -'
    assert "s3cret" not in redact_path(line)


def hub_normalize(ref: ImageReference) -> ImageReference:
    """Docker Hub's rules (the dockerhub plugin's), the generic ones for other hosts."""
    if ref.host in ("", "docker.io", "index.docker.io"):
        repository = ref.repository if "/" in ref.repository else f"library/{ref.repository}"
        return ImageReference("docker.io", repository, ref.tag, ref.digest)
    return ref


def test_matching_policies_normalises_both_sides() -> None:
    policies = {
        "web": "registry.example:5000/team/web",
        "nginx": "nginx",
        "hub-web": "docker.io/svendowideit/testhook",
        "other": "registry.example:5000/team/api",
        "broken": "Not A Reference!",
    }
    pushed = [
        PushedImage("registry.example:5000", "team/web", "1.1.0"),
        PushedImage("docker.io", "library/nginx", "1.27"),
        PushedImage("index.docker.io", "svendowideit/testhook", "latest"),
        PushedImage("elsewhere.example", "team/web", "9"),
    ]
    assert matching_policies(pushed, policies, hub_normalize) == ["web", "nginx", "hub-web"]


def test_push_without_host_matches_on_repository() -> None:
    policies = {"web": "registry.example:5000/team/web"}
    pushed = [PushedImage(None, "team/web", "1.1.0")]
    assert matching_policies(pushed, policies, hub_normalize) == ["web"]
    assert matching_policies([PushedImage(None, "team/api", "1")], policies, hub_normalize) == []
