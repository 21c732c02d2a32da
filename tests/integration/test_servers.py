"""The integration tier's real servers: redis-server and git over git://."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from tests.support.servers import GitServer, RedisServer, run_git


def test_redis_server_is_real_and_restartable(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.set("fleet:test", "value")
    assert client.get("fleet:test") == b"value"
    info = client.info("server")
    assert info["redis_version"]
    redis_server.restart()  # no persistence: a restart loses data, like a wiped Redis
    client = redis.Redis.from_url(redis_server.url)
    assert client.get("fleet:test") is None


def test_git_push_and_clone_over_git_protocol(git_server: GitServer, tmp_path: Path) -> None:
    work = git_server.create_repo("testbed-roundtrip", tmp_path / "work")
    work.write("fleet.yaml", "kind: Fleet\n")
    sha = work.commit_and_push("first")
    clone = tmp_path / "clone"
    run_git("clone", "--quiet", git_server.url("testbed-roundtrip"), str(clone))
    assert (clone / "fleet.yaml").read_text() == "kind: Fleet\n"
    assert run_git("rev-parse", "HEAD", cwd=clone) == sha
    remote = subprocess.run(
        ["git", "ls-remote", git_server.url("testbed-roundtrip"), "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert remote.split()[0] == sha
