"""Push webhooks: signatures checked before anything else, payloads of GitHub and GitLab."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from fleet.errors import FleetError
from fleet.source.webhooks import (
    PushEvent,
    WebhookRejected,
    github_signature,
    parse_push,
    webhook_secret_from_env,
)

SECRET = "It's a Secret to Everybody"
AFTER = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
BEFORE = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"

# Shaped after GitHub's documented `push` payload (trimmed: commits, pusher, sender...).
GITHUB_PUSH: dict[str, Any] = {
    "ref": "refs/heads/main",
    "before": BEFORE,
    "after": AFTER,
    "created": False,
    "deleted": False,
    "forced": False,
    "base_ref": None,
    "compare": f"https://github.com/acme/fleet-config/compare/{BEFORE[:12]}...{AFTER[:12]}",
    "repository": {
        "id": 186853002,
        "name": "fleet-config",
        "full_name": "acme/fleet-config",
        "private": True,
        "owner": {"name": "acme", "login": "acme"},
        "html_url": "https://github.com/acme/fleet-config",
        "url": "https://github.com/acme/fleet-config",
        "git_url": "git://github.com/acme/fleet-config.git",
        "ssh_url": "git@github.com:acme/fleet-config.git",
        "clone_url": "https://github.com/acme/fleet-config.git",
        "default_branch": "main",
    },
    "pusher": {"name": "octocat", "email": "octocat@github.com"},
    "head_commit": {
        "id": AFTER,
        "message": "Bump web to 1.4.2",
        "timestamp": "2024-05-02T10:04:11+02:00",
        "author": {"name": "Octo Cat", "email": "octocat@github.com", "username": "octocat"},
        "added": [],
        "removed": [],
        "modified": ["bundles/web/values.yaml"],
    },
    "commits": [],
}

# Shaped after GitLab's documented "Push Hook" payload (object_kind push).
GITLAB_PUSH: dict[str, Any] = {
    "object_kind": "push",
    "event_name": "push",
    "before": BEFORE,
    "after": AFTER,
    "ref": "refs/heads/main",
    "ref_protected": True,
    "checkout_sha": AFTER,
    "user_id": 4,
    "user_name": "John Smith",
    "user_username": "jsmith",
    "project_id": 15,
    "project": {
        "id": 15,
        "name": "fleet-config",
        "web_url": "https://gitlab.example.com/platform/fleet-config",
        "git_ssh_url": "git@gitlab.example.com:platform/fleet-config.git",
        "git_http_url": "https://gitlab.example.com/platform/fleet-config.git",
        "namespace": "Platform",
        "path_with_namespace": "platform/fleet-config",
        "default_branch": "main",
        "homepage": "https://gitlab.example.com/platform/fleet-config",
        "url": "git@gitlab.example.com:platform/fleet-config.git",
        "ssh_url": "git@gitlab.example.com:platform/fleet-config.git",
        "http_url": "https://gitlab.example.com/platform/fleet-config.git",
    },
    "commits": [
        {
            "id": AFTER,
            "message": "Bump web to 1.4.2\n",
            "timestamp": "2024-05-02T10:04:11+02:00",
            "author": {"name": "John Smith", "email": "jsmith@example.com"},
            "added": [],
            "modified": ["bundles/web/values.yaml"],
            "removed": [],
        }
    ],
    "total_commits_count": 1,
    "repository": {
        "name": "fleet-config",
        "url": "git@gitlab.example.com:platform/fleet-config.git",
        "homepage": "https://gitlab.example.com/platform/fleet-config",
        "git_http_url": "https://gitlab.example.com/platform/fleet-config.git",
        "git_ssh_url": "git@gitlab.example.com:platform/fleet-config.git",
        "visibility_level": 0,
    },
}


def github_request(
    payload: Any, *, secret: str = SECRET, event: str = "push"
) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": github_signature(secret, body),
    }
    return headers, body


def gitlab_request(
    payload: Any, *, token: str = SECRET, event: str = "Push Hook"
) -> tuple[dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": event, "X-Gitlab-Token": token}
    return headers, json.dumps(payload).encode()


def rejected(headers: dict[str, str], body: bytes) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as info:
        parse_push(SECRET, headers, body)
    return info.value


def test_github_signature_matches_githubs_documented_example() -> None:
    # The example from GitHub's "Validating webhook deliveries" page.
    assert github_signature(SECRET, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_github_push_is_parsed() -> None:
    event = parse_push(SECRET, *github_request(GITHUB_PUSH))
    assert event == PushEvent(
        provider="github",
        repo_urls=[
            "https://github.com/acme/fleet-config.git",
            "git@github.com:acme/fleet-config.git",
            "git://github.com/acme/fleet-config.git",
            "https://github.com/acme/fleet-config",
        ],
        ref="refs/heads/main",
        after_sha=AFTER,
    )
    assert event.branch == "main" and event.tag is None and not event.deleted


def test_github_form_encoded_push_is_parsed() -> None:
    body = urlencode({"payload": json.dumps(GITHUB_PUSH)}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": github_signature(SECRET, body),
    }
    assert parse_push(SECRET, headers, body).after_sha == AFTER


def test_header_names_are_case_insensitive() -> None:
    headers, body = github_request(GITHUB_PUSH)
    lowered = {key.lower(): value for key, value in headers.items()}
    assert parse_push(SECRET, lowered, body).ref == "refs/heads/main"


def test_wrong_secret_is_401() -> None:
    error = rejected(*github_request(GITHUB_PUSH, secret="not the secret"))
    assert error.status == 401 and "X-Hub-Signature-256" in error.reason


def test_missing_signature_is_401() -> None:
    headers, body = github_request(GITHUB_PUSH)
    del headers["X-Hub-Signature-256"]
    error = rejected(headers, body)
    assert error.status == 401 and "unsigned" in error.reason


def test_tampered_body_is_401() -> None:
    headers, body = github_request(GITHUB_PUSH)
    tampered = body.replace(b"refs/heads/main", b"refs/heads/evil")
    assert rejected(headers, tampered).status == 401


def test_legacy_sha1_signature_alone_is_401() -> None:
    headers, body = github_request(GITHUB_PUSH)
    headers["X-Hub-Signature"] = "sha1=" + "0" * 40
    del headers["X-Hub-Signature-256"]
    assert rejected(headers, body).status == 401


def test_signature_is_checked_before_the_body_is_parsed() -> None:
    headers, _ = github_request(GITHUB_PUSH, secret="wrong")
    assert rejected(headers, b"{not json").status == 401


def test_non_push_event_is_ignored_with_202() -> None:
    error = rejected(*github_request({"zen": "Keep it logically awesome."}, event="ping"))
    assert error.status == 202 and "ping" in error.reason


def test_malformed_json_is_400() -> None:
    body = b'{"ref": "refs/heads/main", '
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": github_signature(SECRET, body)}
    error = rejected(headers, body)
    assert error.status == 400 and "malformed" in error.reason


@pytest.mark.parametrize(
    "change",
    [
        {"ref": None},
        {"ref": "main"},
        {"after": "abc"},
        {"repository": None},
        {"repository": {"name": "no urls"}},
    ],
)
def test_push_without_required_fields_is_400(change: dict[str, Any]) -> None:
    assert rejected(*github_request({**GITHUB_PUSH, **change})).status == 400


def test_json_that_is_not_an_object_is_400() -> None:
    assert rejected(*github_request(["refs/heads/main"])).status == 400


def test_deleted_branch_is_flagged() -> None:
    payload = {**GITHUB_PUSH, "after": "0" * 40, "deleted": True}
    assert parse_push(SECRET, *github_request(payload)).deleted


def test_gitlab_push_is_parsed() -> None:
    event = parse_push(SECRET, *gitlab_request(GITLAB_PUSH))
    assert event.provider == "gitlab"
    assert event.ref == "refs/heads/main" and event.after_sha == AFTER
    assert event.repo_urls[:2] == [
        "https://gitlab.example.com/platform/fleet-config.git",
        "git@gitlab.example.com:platform/fleet-config.git",
    ]
    assert "https://gitlab.example.com/platform/fleet-config" in event.repo_urls
    assert len(event.repo_urls) == len(set(event.repo_urls))


def test_gitlab_tag_push_is_a_push() -> None:
    payload = {**GITLAB_PUSH, "object_kind": "tag_push", "ref": "refs/tags/v1.4.2"}
    event = parse_push(SECRET, *gitlab_request(payload, event="Tag Push Hook"))
    assert event.tag == "v1.4.2"


def test_gitlab_wrong_token_is_401() -> None:
    assert rejected(*gitlab_request(GITLAB_PUSH, token="guess")).status == 401


def test_gitlab_other_event_is_ignored() -> None:
    assert rejected(*gitlab_request({"object_kind": "note"}, event="Note Hook")).status == 202


def test_gitlab_malformed_payload_is_400() -> None:
    headers, _ = gitlab_request(GITLAB_PUSH)
    assert rejected(headers, b"\xff\xfe not json").status == 400


def test_no_secret_means_no_receiver() -> None:
    with pytest.raises(FleetError, match="FLEET_WEBHOOK_SECRET is not set"):
        webhook_secret_from_env({})
    with pytest.raises(FleetError):
        webhook_secret_from_env({"FLEET_WEBHOOK_SECRET": "  "})
    assert webhook_secret_from_env({"FLEET_WEBHOOK_SECRET": "s3cret"}) == "s3cret"
    with pytest.raises(ValueError):
        parse_push("", *github_request(GITHUB_PUSH))
