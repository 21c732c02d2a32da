"""Registry push webhooks: who may call, what was pushed, which image policies it concerns.

Pure functions over (path, headers, raw body), like `fleet.source.webhooks` for Git, so
any HTTP server can use them (`fleet serve` mounts them on `POST /hooks/registry`).

Three payload formats, told apart by their shape:

- Docker Hub: `{"push_data": {"tag": ...}, "repository": {"repo_name": "ns/name"}}`; the
  host is Docker Hub's (`docker.io`) and a one-part name is an official image (`library/x`).
- Quay: `{"repository": "ns/name", "docker_url": "quay.io/ns/name", "updated_tags": [...]}`;
  the host is the first part of `docker_url`.
- CNCF distribution notifications (`application/vnd.docker.distribution.events.v1+json`):
  `{"events": [{"action": "push", "target": {"repository", "tag"?, "digest",
  "mediaType"}, "request": {"host"}}]}`. Pulls and blob (layer) pushes are ignored; a
  manifest pushed by digest has no tag.

None of these registries signs its payloads, so the receiver requires a shared token
(`FLEET_REGISTRY_WEBHOOK_TOKEN`): `Authorization: Bearer <token>` (what distribution's
`notifications.endpoints[].headers` sends) or the last path segment
`/hooks/registry/<token>` (Docker Hub and Quay cannot set headers). Without a token set the
receiver refuses every request: an open endpoint that makes fleet scan registries is a lever
for exhausting their rate limits. The comparison is constant-time, and `redact_path` keeps
the token out of any log line that shows a request path.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.errors import FleetError
from fleet.registry.reference import ImageReference, parse_reference

TOKEN_ENV = "FLEET_REGISTRY_WEBHOOK_TOKEN"
HOOK_PATH = "/hooks/registry"
DISTRIBUTION_TYPE = "application/vnd.docker.distribution.events.v1+json"
DOCKER_HUB = "docker.io"
MAX_EVENTS = 1000  # a notification envelope batches a few; more is not a registry
_REDACT = re.compile(re.escape(HOOK_PATH) + r"/[^\s\"?#]+")


class HookRejected(Exception):
    """A request not acted on: `status` is the HTTP answer (401, 400, or 202 for ignored)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class PushedImage:
    """One pushed image. `host` is None when the payload does not say where it was pushed."""

    host: str | None
    repository: str
    tag: str | None
    digest: str | None = None

    def __str__(self) -> str:
        name = f"{self.host}/{self.repository}" if self.host else self.repository
        return (
            name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")
        )


def is_hook_path(path: str) -> bool:
    """Is this request (path with or without a query) for the registry receiver?"""
    bare = path.split("?", 1)[0].rstrip("/")
    return bare == HOOK_PATH or bare.startswith(HOOK_PATH + "/")


def redact_path(text: str) -> str:
    """`text` with a token in a `/hooks/registry/<token>` path replaced by `***`."""
    return _REDACT.sub(HOOK_PATH + "/***", text)


def authorized(token: str | None, path: str, headers: Mapping[str, str]) -> bool:
    """Does the request carry `token`, as a Bearer header or as the path's last segment?
    Always False without a token: there is no open mode."""
    if not token or not token.strip():
        return False
    expected = token.strip().encode()
    lowered = {key.lower(): value for key, value in headers.items()}
    scheme, _, given = lowered.get("authorization", "").strip().partition(" ")
    header_ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)
    bare = path.split("?", 1)[0].rstrip("/")
    segment = bare[len(HOOK_PATH) + 1 :] if bare.startswith(HOOK_PATH + "/") else ""
    path_ok = hmac.compare_digest(segment.encode(), expected)
    return header_ok or path_ok


def parse_pushes(headers: Mapping[str, str], body: bytes) -> list[PushedImage]:
    """The images one (authorized) request says were pushed; HookRejected when malformed
    (400) or about something other than a push (202, "ignored")."""
    lowered = {key.lower(): value for key, value in headers.items()}
    content_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise HookRejected(400, f"malformed payload: {err}") from None
    if not isinstance(payload, dict):
        raise HookRejected(400, "malformed payload: not a JSON object")
    if content_type == DISTRIBUTION_TYPE or "events" in payload:
        return _distribution(payload)
    if "push_data" in payload:
        return _docker_hub(payload)
    if "updated_tags" in payload or "docker_url" in payload:
        return _quay(payload)
    raise HookRejected(400, "unknown payload: not Docker Hub, Quay or a distribution notification")


def _docker_hub(payload: dict[str, Any]) -> list[PushedImage]:
    push, repository = payload.get("push_data"), payload.get("repository")
    tag = push.get("tag") if isinstance(push, dict) else None
    name = repository.get("repo_name") if isinstance(repository, dict) else None
    if not isinstance(name, str) or not name:
        raise HookRejected(400, "malformed Docker Hub payload: no repository.repo_name")
    if not isinstance(tag, str) or not tag:
        raise HookRejected(400, "malformed Docker Hub payload: no push_data.tag")
    name = name.lower()
    return [PushedImage(DOCKER_HUB, name if "/" in name else f"library/{name}", tag)]


def _quay(payload: dict[str, Any]) -> list[PushedImage]:
    docker_url, repository = payload.get("docker_url"), payload.get("repository")
    tags = payload.get("updated_tags")
    host: str | None = None
    if isinstance(docker_url, str) and "/" in docker_url:
        head, _, rest = docker_url.removeprefix("https://").partition("/")
        host, repository = head.lower(), repository if isinstance(repository, str) else rest
    if not isinstance(repository, str) or not repository:
        raise HookRejected(400, "malformed Quay payload: no repository")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise HookRejected(400, "malformed Quay payload: updated_tags is not a list of tags")
    if not tags:
        raise HookRejected(202, "ignored: a Quay notification without updated tags")
    return [PushedImage(host, repository.lower(), tag) for tag in tags[:MAX_EVENTS]]


def _distribution(payload: dict[str, Any]) -> list[PushedImage]:
    events = payload.get("events")
    if not isinstance(events, list):
        raise HookRejected(400, "malformed notification: events is not a list")
    pushed: list[PushedImage] = []
    for event in events[:MAX_EVENTS]:
        if not isinstance(event, dict) or event.get("action") != "push":
            continue  # pulls, deletes, mounts
        target, request = event.get("target"), event.get("request")
        if not isinstance(target, dict):
            continue
        repository, tag, digest = target.get("repository"), target.get("tag"), target.get("digest")
        if not isinstance(repository, str) or not repository:
            continue
        if not tag and not _is_manifest(target.get("mediaType")):
            continue  # a layer or config blob: the manifest's own event follows
        host = request.get("host") if isinstance(request, dict) else None
        image = PushedImage(
            host.lower() if isinstance(host, str) and host else None,
            repository.lower(),
            tag if isinstance(tag, str) and tag else None,
            digest if isinstance(digest, str) and digest else None,
        )
        if image not in pushed:
            pushed.append(image)
    if not pushed:
        raise HookRejected(202, "ignored: no image push in the notification")
    return pushed


def _is_manifest(media_type: object) -> bool:
    text = str(media_type or "")
    return "manifest" in text or "image.index" in text


Normalize = Callable[[ImageReference], ImageReference]


def matching_policies(
    pushed: Iterable[PushedImage], policies: Mapping[str, str], normalize: Normalize
) -> list[str]:
    """The names of the policies (name -> image as the definition writes it) whose image
    is one of the pushed repositories. Both sides go through `normalize` (the registry
    provider's rules: Docker Hub's `library/` and host aliases), so `nginx` matches a Docker
    Hub push of `library/nginx`. A push that names no host matches on the repository alone."""
    wanted: dict[tuple[str, str], list[str]] = {}
    by_repository: dict[str, list[str]] = {}
    for name, image in policies.items():
        try:
            ref = normalize(parse_reference(image))
        except FleetError:
            continue  # validate reports a bad policy image; a webhook just skips it
        wanted.setdefault((ref.host.lower(), ref.repository), []).append(name)
        by_repository.setdefault(ref.repository, []).append(name)
    found: list[str] = []
    for push in pushed:
        if push.host is None:
            names = by_repository.get(push.repository, [])
        else:
            try:
                ref = normalize(ImageReference(push.host, push.repository, push.tag))
            except FleetError:
                continue
            names = wanted.get((ref.host.lower(), ref.repository), [])
        found += [name for name in names if name not in found]
    return found
