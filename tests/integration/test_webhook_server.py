"""The webhook receiver over real HTTP on loopback: 401 unsigned or wrong, 202 push, 400 bad."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from fleet.errors import FleetError
from fleet.runtime.http import make_webhook_handler, serve_webhooks
from fleet.source.webhooks import PushEvent, github_signature

SECRET = "webhook-test-secret"
AFTER = "9f1c2a7d3e4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d"
PUSH = {
    "ref": "refs/heads/main",
    "before": "0" * 39 + "1",
    "after": AFTER,
    "repository": {
        "full_name": "acme/fleet-config",
        "clone_url": "https://github.com/acme/fleet-config.git",
        "ssh_url": "git@github.com:acme/fleet-config.git",
    },
}


@dataclass
class Receiver:
    url: str
    pushes: list[PushEvent] = field(default_factory=list)

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        request = urllib.request.Request(self.url + "/hooks/git", data=body, method="POST")
        for key, value in headers.items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    pushes: list[PushEvent] = []
    server = serve_webhooks("127.0.0.1", 0, SECRET, pushes.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}", pushes)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def signed(body: bytes, secret: str = SECRET, event: str = "push") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-Hub-Signature-256": github_signature(secret, body),
    }


def test_unsigned_request_is_401(receiver: Receiver) -> None:
    body = json.dumps(PUSH).encode()
    status, answer = receiver.post(body, {"X-GitHub-Event": "push"})
    assert status == 401 and "unsigned" in answer["message"]
    assert receiver.pushes == []


def test_wrong_signature_is_401(receiver: Receiver) -> None:
    body = json.dumps(PUSH).encode()
    status, _ = receiver.post(body, signed(body, secret="not-it"))
    assert status == 401
    assert receiver.pushes == []


def test_signed_push_is_202_and_calls_on_push(receiver: Receiver) -> None:
    body = json.dumps(PUSH).encode()
    status, answer = receiver.post(body, signed(body))
    assert status == 202 and answer["after"] == AFTER
    assert len(receiver.pushes) == 1
    event = receiver.pushes[0]
    assert event.ref == "refs/heads/main" and event.after_sha == AFTER
    assert "https://github.com/acme/fleet-config.git" in event.repo_urls


def test_gitlab_push_with_token(receiver: Receiver) -> None:
    payload = {
        "object_kind": "push",
        "ref": "refs/tags/v1.4.2",
        "after": AFTER,
        "project": {"git_http_url": "https://gitlab.example.com/platform/fleet-config.git"},
    }
    headers = {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": SECRET}
    status, _ = receiver.post(json.dumps(payload).encode(), headers)
    assert status == 202 and receiver.pushes[0].tag == "v1.4.2"


def test_malformed_payload_is_400(receiver: Receiver) -> None:
    body = b'{"ref": "refs/heads/main"'
    status, answer = receiver.post(body, signed(body))
    assert status == 400 and "malformed" in answer["message"]
    assert receiver.pushes == []


def test_ping_is_acknowledged_and_ignored(receiver: Receiver) -> None:
    body = b'{"zen": "Design for failure."}'
    status, answer = receiver.post(body, signed(body, event="ping"))
    assert status == 202 and "ignored" in answer["message"]
    assert receiver.pushes == []


def test_get_is_405(receiver: Receiver) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(receiver.url + "/hooks/git", timeout=10)
    assert info.value.code == 405


def test_failing_on_push_is_500() -> None:
    def explode(event: PushEvent) -> None:
        raise RuntimeError("scheduler gone")

    server = serve_webhooks("127.0.0.1", 0, SECRET, explode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        body = json.dumps(PUSH).encode()
        status, _ = Receiver(f"http://127.0.0.1:{server.server_address[1]}").post(
            body, signed(body)
        )
        assert status == 500
    finally:
        server.shutdown()
        server.server_close()


def test_no_secret_no_receiver() -> None:
    with pytest.raises(FleetError, match="FLEET_WEBHOOK_SECRET"):
        make_webhook_handler("", lambda event: None)
