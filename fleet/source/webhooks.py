"""Push webhooks from GitHub and GitLab: authenticate first, then parse, nothing else.

Pure functions over (headers, raw body) so any HTTP server can use them
(`fleet.runtime.http` is the stdlib one `fleet serve` mounts).

- GitHub (and Gitea/Forgejo, which send the same header): `X-Hub-Signature-256:
  sha256=<hex HMAC-SHA256(secret, raw body)>`. The legacy SHA-1 `X-Hub-Signature` is not
  accepted. Events come in `X-GitHub-Event`; `push` is handled, others (`ping`, ...) are
  acknowledged and ignored. Both `application/json` and the form encoding
  (`payload=<json>`) are understood; the signature covers the raw body either way.
- GitLab: `X-Gitlab-Token` must equal the secret; events `Push Hook` and `Tag Push Hook`
  are handled (a tag push can move a semver-range ref), others ignored.

The secret comes from `FLEET_WEBHOOK_SECRET`. There is no unauthenticated mode: a request
without a signature or token is always rejected (401), and without a secret the receiver
refuses to start (`webhook_secret_from_env` raises), because an open endpoint that makes
the scheduler fetch is a denial-of-service lever. The body is parsed only after the
signature checks out, and `is_signed` lets a receiver refuse a request without either header
before it reads the body. Comparisons are constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fleet import config
from fleet.errors import FleetError

SECRET_ENV = "FLEET_WEBHOOK_SECRET"
SIGNATURE_HEADERS = ("X-Hub-Signature-256", "X-Gitlab-Token")
UNSIGNED = "unsigned request: no X-Hub-Signature-256 or X-Gitlab-Token"
ZERO_SHA = "0" * 40

_GITHUB_URL_KEYS = ("clone_url", "ssh_url", "git_url", "html_url", "url")
_GITLAB_URL_KEYS = ("git_http_url", "git_ssh_url", "http_url", "ssh_url", "web_url", "url")
_GITLAB_PUSH_EVENTS = ("Push Hook", "Tag Push Hook")


class WebhookRejected(Exception):
    """A request not acted on: `status` is the HTTP answer (401, 400, or 202 for ignored)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class PushEvent:
    """A push to one repository: every clone URL the payload names, the ref and new sha."""

    provider: str  # "github" or "gitlab"
    repo_urls: list[str]
    ref: str  # full ref: refs/heads/main, refs/tags/v1.2.0
    after_sha: str
    deleted: bool = False

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None


def webhook_secret_from_env(environ: Mapping[str, str] | None = None) -> str:
    """`FLEET_WEBHOOK_SECRET`, or a FleetError: the receiver does not run without one."""
    settings = config.current() if environ is None else config.Settings.from_env(environ)
    secret = settings.webhook_secret
    if not secret.strip():
        raise FleetError(
            f"{SECRET_ENV} is not set: the webhook receiver only accepts signed requests "
            "and will not start without a secret"
        )
    return secret


def is_signed(headers: Mapping[str, str]) -> bool:
    """Does the request carry a signature or token header at all? (A receiver asks this
    before it reads the body: an unsigned request is refused unread.)"""
    lowered = {key.lower() for key in headers}
    return any(name.lower() in lowered for name in SIGNATURE_HEADERS)


def github_signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_push(secret: str, headers: Mapping[str, str], body: bytes) -> PushEvent:
    """Authenticate and parse one webhook request, or raise WebhookRejected."""
    if not secret:
        raise ValueError("a webhook secret is required")
    lowered = {key.lower(): value for key, value in headers.items()}
    if "x-hub-signature-256" in lowered:
        _verify_github(secret, lowered["x-hub-signature-256"], body)
        event = lowered.get("x-github-event") or lowered.get("x-gitea-event") or ""
        if event != "push":
            raise WebhookRejected(202, f"ignored GitHub event {event or '(none)'!r}")
        return _github_push(_load_json(body, lowered.get("content-type", "")))
    if "x-gitlab-token" in lowered:
        given = lowered["x-gitlab-token"].encode()
        if not hmac.compare_digest(given, secret.encode()):
            raise WebhookRejected(401, "wrong X-Gitlab-Token")
        event = lowered.get("x-gitlab-event", "")
        if event not in _GITLAB_PUSH_EVENTS:
            raise WebhookRejected(202, f"ignored GitLab event {event or '(none)'!r}")
        return _gitlab_push(_load_json(body, lowered.get("content-type", "")))
    raise WebhookRejected(401, UNSIGNED)


def _verify_github(secret: str, given: str, body: bytes) -> None:
    expected = github_signature(secret, body)
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise WebhookRejected(401, "wrong X-Hub-Signature-256")


def _load_json(body: bytes, content_type: str) -> dict[str, Any]:
    try:
        # GitHub's form encoding; some clients label raw JSON as a form, so look at the body
        form = content_type.split(";")[0].strip() == "application/x-www-form-urlencoded"
        if form and body.startswith(b"payload="):
            fields = parse_qs(body.decode(), strict_parsing=True)
            body = fields["payload"][0].encode()
        payload = json.loads(body)
    except (ValueError, KeyError, UnicodeDecodeError) as err:
        raise WebhookRejected(400, f"malformed payload: {err}") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "malformed payload: not a JSON object")
    return payload


def _github_push(payload: dict[str, Any]) -> PushEvent:
    repository = payload.get("repository")
    urls = _urls(repository, _GITHUB_URL_KEYS)
    ref, after = payload.get("ref"), payload.get("after")
    _check_fields(urls, ref, after)
    return PushEvent(
        "github", urls, str(ref), str(after), bool(payload.get("deleted")) or after == ZERO_SHA
    )


def _gitlab_push(payload: dict[str, Any]) -> PushEvent:
    urls = _urls(payload.get("project"), _GITLAB_URL_KEYS)
    urls += [u for u in _urls(payload.get("repository"), _GITLAB_URL_KEYS) if u not in urls]
    ref, after = payload.get("ref"), payload.get("after")
    _check_fields(urls, ref, after)
    return PushEvent("gitlab", urls, str(ref), str(after), after == ZERO_SHA)


def _urls(section: Any, keys: tuple[str, ...]) -> list[str]:
    if not isinstance(section, dict):
        return []
    found: list[str] = []
    for key in keys:
        value = section.get(key)
        if isinstance(value, str) and value and value not in found:
            found.append(value)
    return found


def _check_fields(urls: list[str], ref: Any, after: Any) -> None:
    if not urls:
        raise WebhookRejected(400, "malformed push payload: no repository URL")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise WebhookRejected(400, "malformed push payload: no full 'ref'")
    if not isinstance(after, str) or len(after) != 40:
        raise WebhookRejected(400, "malformed push payload: no 40-character 'after' sha")
