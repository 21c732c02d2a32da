"""`POST /hooks/registry` of a real `fleet serve` (real Redis, git daemon, the htpasswd
distribution registry): the token in the Bearer header or in the path, 401 for a wrong or
missing one before the body is read, 413 for an oversized body; a distribution push
notification for a policy's repository makes the image loop scan and commit the new tag
back to the Git server with the configured author; the token and the registry password
appear in no log line and not in /status or /metrics."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.runtime.scheduler import SchedulerConfig
from fleet.runtime.serve import Server, start_server
from fleet.runtime.tasks import TaskArgs
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer
from tests.support.servers import GitServer, GitWorkTree, RedisServer
from tests.support.tls import TlsFiles

TOKEN = "registry-hook-token-4f1c"
DISTRIBUTION = "application/vnd.docker.distribution.events.v1+json"

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
registries: [{{name: bed, type: oci, host: '{host}', credential: bed}}]
imagePolicies:
  - {{name: web, image: '{host}/team/web', policy: {{semver: {{range: '^1'}}}}}}
  - {{name: api, image: '{host}/team/api', policy: {{semver: {{range: '^1'}}}}}}
imageUpdates:
  interval: 1h
  author: {{name: fleet images bot, email: images@fleet.invalid}}
  paths: [apps]
bundles:
  paths: [apps/*]
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: {host}/team/web:1.0.0 # {{"$imagepolicy": "web"}}
"""


class Recorder:
    def send(self, task: str, kwargs: TaskArgs, queue: str) -> str:
        return "task"


@dataclass
class Bed:
    server: Server
    work: GitWorkTree
    registry: RegistryServer
    layout: OciLayout

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def post(
        self, path: str, payload: object, headers: dict[str, str]
    ) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(payload).encode(), method="POST"
        )
        for key, value in headers.items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as answer:
            return str(answer.read().decode())

    def push(self, tag: str) -> None:
        self.registry.push_image(self.layout.root, "web", f"team/web:{tag}")

    def remote_file(self, relpath: str) -> tuple[str, str]:
        """(author of main's head, the file there) as the Git server has them."""
        git = ["git", "-C", str(self.work.path)]
        subprocess.run([*git, "fetch", "-q", "origin"], check=True, timeout=60)
        author = subprocess.run(
            [*git, "log", "-1", "--format=%an <%ae>", "origin/main"],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        text = subprocess.run(
            [*git, "show", f"origin/main:{relpath}"],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        return author, text


def notification(host: str, tag: str) -> dict[str, object]:
    """distribution's envelope for one manifest push (docs/notifications.md)."""
    return {
        "events": [
            {
                "id": str(uuid.uuid4()),
                "timestamp": "2026-12-02T18:00:00Z",
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + "0" * 64,
                    "repository": "team/web",
                    "url": f"https://{host}/v2/team/web/manifests/{tag}",
                    "tag": tag,
                },
                "request": {"id": "r", "addr": "127.0.0.1", "host": host, "method": "PUT"},
                "actor": {},
                "source": {"addr": host},
            }
        ]
    }


@pytest.fixture
def bed(
    git_server: GitServer,
    redis_server: RedisServer,
    htpasswd_registry: RegistryServer,
    registry_tls: TlsFiles,
    tmp_path: Path,
    source_cache: Path,
) -> Iterator[Bed]:
    host = htpasswd_registry.host
    layout = OciLayout(tmp_path / "oci")
    layout.tag(layout.image(f"web {uuid.uuid4()}"), "web")
    name = f"hooks-{uuid.uuid4().hex[:8]}"
    work = git_server.create_repo(name, tmp_path / "work")
    work.write("fleet.yaml", DEFINITION.format(name=name, host=host))
    work.write("apps/web/deploy.yaml", DEPLOYMENT.format(host=host))
    work.commit_and_push("web 1.0.0")
    user, password = next(iter(htpasswd_registry.users.items()))
    bed = Bed(None, work, htpasswd_registry, layout)  # type: ignore[arg-type]
    bed.push("1.0.0")
    server = start_server(
        git_server.url(name),
        branch="main",
        listen="127.0.0.1:0",
        redis_url=redis_server.url,
        env={
            "FLEET_REGISTRY_WEBHOOK_TOKEN": TOKEN,
            "SSL_CERT_FILE": str(registry_tls.cert),
            "FLEET_REGISTRY_USERNAME_BED": user,
            "FLEET_REGISTRY_PASSWORD_BED": password,
        },
        dispatcher=Recorder(),
        config=SchedulerConfig(poll_interval=0.2),
        tick_interval=0.2,
    )
    bed.server = server
    try:
        for _ in range(150):  # the commit is loaded: the receiver knows policy "web"
            if server.scheduler.desired is not None:
                break
            time.sleep(0.1)
        yield bed
    finally:
        server.stop()


def test_tokens_and_bounds(bed: Bed) -> None:
    payload = notification(bed.registry.host, "1.0.0")
    assert bed.post("/hooks/registry", payload, {})[0] == 401
    assert bed.post("/hooks/registry", payload, {"Authorization": "Bearer nope"})[0] == 401
    assert bed.post("/hooks/registry/nope", payload, {})[0] == 401
    status, answer = bed.post(
        "/hooks/registry", {"push_data": {"tag": "1"}, "repository": {"repo_name": "x/y"}},
        {"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    assert (status, answer["message"]) == (202, "ignored: no image policy follows these images")
    status, answer = bed.post(f"/hooks/registry/{TOKEN}", {"updated_tags": []}, {})
    assert status == 400  # a Quay-looking body without repository
    # oversized: answered 413 from the headers alone, the body never sent
    with socket.create_connection(("127.0.0.1", bed.server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /hooks/registry HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {2 * 1024 * 1024}\r\n\r\n".encode()
        )
        head = sock.recv(4096).decode()
    assert head.startswith("HTTP/1.0 413") or head.startswith("HTTP/1.1 413"), head
    # a wrong token is refused before the body: the client need not send it
    with socket.create_connection(("127.0.0.1", bed.server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /hooks/registry/wrong HTTP/1.1\r\nHost: x\r\nContent-Length: 999\r\n\r\n"
        )
        assert " 401 " in sock.recv(4096).decode().splitlines()[0]


def test_a_push_notification_commits_the_new_tag(
    bed: Bed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bed.push("1.1.0")
    bed.push("2.0.0")
    host = bed.registry.host
    status, answer = bed.post(
        "/hooks/registry", notification(host, "1.1.0"),
        {"Authorization": f"Bearer {TOKEN}", "Content-Type": DISTRIBUTION},
    )  # fmt: skip
    assert (status, answer["policies"]) == (202, ["web"]), answer
    for _ in range(300):
        author, text = bed.remote_file("apps/web/deploy.yaml")
        if "1.1.0" in text:
            break
        time.sleep(0.2)
    assert f"image: {host}/team/web:1.1.0 # " in text, text
    assert author == "fleet images bot <images@fleet.invalid>"
    # the path form (Docker Hub and Quay cannot set headers) is accepted too
    status, answer = bed.post(f"/hooks/registry/{TOKEN}", notification(host, "2.0.0"), {})
    assert (status, answer["policies"]) == (202, ["web"])
    kinds: list[str] = []
    for _ in range(100):  # written by the leader's next tick
        events = bed.server.scheduler.events
        found = events.log.read() if events is not None else []
        kinds = [entry.event.type.value for entry in found]
        if "image.updated" in kinds and "image.scanFailed" in kinds:
            break
        time.sleep(0.1)
    assert kinds.count("image.updated") == 1, kinds
    failed = [e.event for e in found if e.event.type.value == "image.scanFailed"]
    # team/api has no tags: one event, not one per scan
    assert len(failed) == 1 and failed[0].details["policy"] == "api", failed
    metrics = bed.get("/metrics")
    scans = re.search(r'^fleet_image_scans_total\{result="failed"\} (\d+)$', metrics, re.M)
    assert scans is not None and int(scans.group(1)) >= 1, metrics
    shown = bed.get("/status") + metrics + caplog.text
    password = next(iter(bed.registry.users.values()))
    assert TOKEN not in shown and password not in shown
    assert "/hooks/registry/***" in caplog.text  # the path was logged, redacted
