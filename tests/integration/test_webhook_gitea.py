"""A real Gitea's push webhook into fleet's webhook receiver: Gitea signs like GitHub
(`X-Hub-Signature-256`, `X-GitHub-Event: push`), so a push to a Gitea repository wakes
fleet without any Gitea-specific code. The push is real (git over HTTP); so is the
delivery (Gitea's webhook queue, HTTP to the receiver on loopback)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.runtime.http import serve_webhooks
from fleet.source.webhooks import PushEvent
from tests.support.gitea import GiteaServer

SECRET = "gitea-webhook-secret"


@pytest.fixture
def hooks() -> Iterator[tuple[str, list[PushEvent]]]:
    pushes: list[PushEvent] = []
    server = serve_webhooks("127.0.0.1", 0, SECRET, pushes.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/git", pushes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def wait_for(pushes: list[PushEvent], sha: str, timeout: float = 30) -> PushEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for push in pushes:
            if push.after_sha == sha:
                return push
        time.sleep(0.1)
    raise AssertionError(f"no push of {sha} reached fleet in {timeout}s: {pushes}")


def test_a_push_to_gitea_reaches_fleet_signed(
    gitea: GiteaServer, hooks: tuple[str, list[PushEvent]], tmp_path: Path
) -> None:
    url, pushes = hooks
    repo = gitea.create_repo("fleet-config-hooked")
    gitea.add_webhook(repo, url, SECRET)
    sha = gitea.push_commit(repo, tmp_path / "work", {"clusters/dev.yaml": "replicas: 2\n"})
    push = wait_for(pushes, sha)
    assert push.provider == "github" and push.branch == "main" and not push.deleted
    assert f"{gitea.url}/{repo}.git" in push.repo_urls
    # a hook whose secret is not fleet's: Gitea delivers it, fleet answers 401, no push
    other = gitea.create_repo("fleet-config-wrong-secret")
    hook = gitea.add_webhook(other, url, "not-the-secret")
    wrong = gitea.push_commit(other, tmp_path / "other", {"a.yaml": "a: 1\n"})
    deadline = time.monotonic() + 30
    while not gitea.deliveries(hook) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gitea.deliveries(hook) == [401]
    assert all(p.after_sha != wrong for p in pushes)
