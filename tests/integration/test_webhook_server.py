"""The webhook receiver over real HTTP on loopback: 401 unsigned or wrong, 202 push, 400 bad;
and, with raw sockets, what an untrusted client cannot do: make it read an unsigned or
oversized body, hold a connection open by sending slowly, or grow its threads."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from fleet.errors import FleetError
from fleet.runtime.http import BoundedHTTPServer, make_webhook_handler, serve_webhooks
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


# -- untrusted clients: raw sockets against the real server --------------------------------


@contextlib.contextmanager
def bounded(
    max_clients: int = 4, timeout: float = 10.0
) -> Iterator[tuple[BoundedHTTPServer, list[PushEvent]]]:
    pushes: list[PushEvent] = []
    server = serve_webhooks(
        "127.0.0.1", 0, SECRET, pushes.append, client_timeout=timeout, max_clients=max_clients
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server, pushes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def connect(server: BoundedHTTPServer, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=20)
    if first:
        sock.sendall(first)
    return sock


def head(length: int, *extra: str) -> bytes:
    lines = ["POST /hooks/git HTTP/1.1", "Host: fleet", "Content-Type: application/json",
             f"Content-Length: {length}", *extra]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (20 s socket timeout: a hang fails)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def closed_by_server(sock: socket.socket, trickle: bytes = b"") -> bool:
    """Keep sending `trickle` one byte at a time (or nothing) until the server closes the
    connection; True once it did. Gives up (False) after a minute of bytes."""
    for byte in (trickle * 600)[:600] or [None] * 600:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable:
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
            return True
        if byte is not None:
            try:
                sock.send(bytes([byte]))
            except OSError:  # reset: the server closed it
                return True
    return False


def test_a_missing_signature_is_401_before_the_body_is_sent() -> None:
    with bounded() as (server, pushes):
        with connect(server, head(1000, "X-GitHub-Event: push")) as sock:
            reply = answer(sock)  # the body (1000 bytes) was never sent
        assert reply.startswith(b"HTTP/1.0 401 ") and b"unsigned" in reply
        assert pushes == []


def test_a_body_over_1_mib_is_413_unread() -> None:
    with bounded() as (server, _):
        signature = "X-Hub-Signature-256: sha256=" + "0" * 64
        with connect(server, head(2 * 1024 * 1024, signature, "X-GitHub-Event: push")) as sock:
            reply = answer(sock)
        assert reply.startswith(b"HTTP/1.0 413 ") and b"payload too large" in reply
        chunked = head(0, signature, "Transfer-Encoding: chunked")
        with connect(server, chunked) as sock:
            assert answer(sock).startswith(b"HTTP/1.0 411 ")


def test_a_signed_push_still_works_from_a_raw_socket() -> None:
    body = json.dumps(PUSH).encode()
    with bounded() as (server, pushes):
        request = head(len(body), *(f"{k}: {v}" for k, v in signed(body).items())) + body
        with connect(server, request) as sock:
            assert answer(sock).startswith(b"HTTP/1.0 202 ")
        assert [p.after_sha for p in pushes] == [AFTER]


def test_slow_clients_are_disconnected() -> None:
    with bounded(timeout=0.5) as (server, pushes):
        # half the headers, then nothing: the socket timeout
        with connect(server, b"POST /hooks/git HTTP/1.1\r\nHost: fleet\r\nX-Hub-Sig") as sock:
            assert closed_by_server(sock)
        # a byte every 0.1 s never trips a socket timeout: the deadline cuts it
        with connect(server) as sock:
            assert closed_by_server(sock, b"POST /hooks/git HTTP/1.1\r\nX-Padding: " + b"a" * 600)
        # a body shorter than its Content-Length
        signature = "X-Hub-Signature-256: sha256=" + "0" * 64
        with connect(server, head(100, signature) + b"{") as sock:
            assert closed_by_server(sock)
        assert server.cut >= 1 and pushes == []


def test_concurrent_slow_clients_are_bounded_and_a_push_gets_through() -> None:
    before = threading.active_count()
    with bounded(max_clients=3, timeout=1.0) as (server, pushes):
        slow = [connect(server, b"POST / HTTP/1.1\r\nHost: fleet\r\n") for _ in range(4)]
        try:
            body = json.dumps(PUSH).encode()
            status, _ = Receiver(f"http://127.0.0.1:{server.server_address[1]}").post(
                body, signed(body)
            )
            # 3 workers held by slow clients, one more queued: the push waited for a
            # worker freed at a slow client's deadline, then went through
            assert status == 202 and len(pushes) == 1
            # the server's threads: its workers and the accept loop, never one per client
            assert threading.active_count() - before <= server.max_clients + 1
        finally:
            for sock in slow:
                sock.close()


def test_connections_beyond_the_queue_get_503_at_once() -> None:
    before = threading.active_count()
    with bounded(max_clients=2, timeout=60.0) as (server, _):
        slow = [connect(server, b"POST / HTTP/1.1\r\nHost: fleet\r\n") for _ in range(4)]
        try:
            with connect(server) as extra:  # accepted after the four, in order
                # nothing is cut within 60 s: this answer comes from the bound
                assert answer(extra).startswith(b"HTTP/1.0 503 ")
            assert server.refused == 1 and server.cut == 0
            assert threading.active_count() - before <= server.max_clients + 1
        finally:
            for sock in slow:
                sock.close()
