"""The Git source against a real `git daemon`: refs, the cached mirror, checkouts, polling."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fleet.errors import FleetError, TransientError
from fleet.source.git import GitSource, Revision
from fleet.source.poll import Poller
from tests.support.servers import GitServer, GitWorkTree, free_port, run_git


def make_repo(server: GitServer, name: str, tmp_path: Path) -> GitWorkTree:
    work = server.create_repo(name, tmp_path / name)
    work.write("fleet.yaml", "kind: Fleet\n")
    return work


def tag(work: GitWorkTree, name: str) -> None:
    run_git("tag", name, cwd=work.path)
    run_git("push", "--quiet", "origin", f"refs/tags/{name}", cwd=work.path)


def test_branch_checkout_is_read_only_and_reused(
    git_server: GitServer, tmp_path: Path, source_cache: Path
) -> None:
    work = make_repo(git_server, "src-branch", tmp_path)
    work.write("apps/web/deploy.yaml", "kind: ConfigMap\n")
    sha = work.commit_and_push("add web\n\nbody text")
    source = GitSource(git_server.url("src-branch"), "main")
    revision = source.update()
    assert isinstance(revision, Revision)
    assert revision.sha == sha
    assert revision.message == "add web"
    assert revision.author == "fleet tests <tests@fleet.invalid>"
    assert revision.path == source_cache / "checkouts" / sha
    assert (revision.path / "apps/web/deploy.yaml").read_text() == "kind: ConfigMap\n"
    assert not (revision.path / ".git").exists()
    # mode bits, not os.access: the tests may run as root
    assert (revision.path / "fleet.yaml").stat().st_mode & 0o222 == 0
    assert revision.path.stat().st_mode & 0o222 == 0
    assert source.checkout(sha) == revision.path
    assert source.mirror_path.parent == source_cache / "mirrors"


def test_default_ref_is_the_remote_head(
    git_server: GitServer, tmp_path: Path, source_cache: Path
) -> None:
    work = make_repo(git_server, "src-head", tmp_path)
    sha = work.commit_and_push("first")
    assert GitSource(git_server.url("src-head")).update().sha == sha


def test_tag_semver_range_and_short_sha(
    git_server: GitServer, tmp_path: Path, source_cache: Path
) -> None:
    work = make_repo(git_server, "src-tags", tmp_path)
    shas: dict[str, str] = {}
    for version in ("v1.2.0", "v1.4.1", "v1.4.7", "v1.10.0", "v2.0.0", "v2.1.0-rc.1"):
        work.write("version.txt", version)
        shas[version] = work.commit_and_push(f"release {version}")
        tag(work, version)
    head = work.commit_and_push("after the tags")
    url = git_server.url("src-tags")

    def resolve(ref: str) -> str:
        source = GitSource(url, ref)
        source.fetch()
        return source.resolve()

    assert resolve("v1.4.1") == shas["v1.4.1"]
    assert resolve(">=1.2.0 <2") == shas["v1.10.0"]
    assert resolve("~1.4") == shas["v1.4.7"]
    assert resolve("^1.2") == shas["v1.10.0"]
    assert resolve(">=1.0.0") == shas["v2.0.0"]  # a pre-release only when asked for
    assert resolve(">=2.1.0-rc.0") == shas["v2.1.0-rc.1"]
    assert resolve(head[:8]) == head
    assert resolve(shas["v1.2.0"]) == shas["v1.2.0"]
    with pytest.raises(FleetError, match="no tag matches the semver range '>=3'"):
        resolve(">=3")
    with pytest.raises(FleetError, match="'no-such-branch' is not a branch, tag, commit"):
        resolve("no-such-branch")
    source = GitSource(url, "~1.4")
    revision = source.update()
    assert (revision.path / "version.txt").read_text() == "v1.4.7"


def test_second_fetch_reuses_the_mirror(
    git_server: GitServer, tmp_path: Path, source_cache: Path
) -> None:
    work = make_repo(git_server, "src-mirror", tmp_path)
    first = work.commit_and_push("first")
    url = git_server.url("src-mirror")
    source = GitSource(url, "main")
    assert source.update().sha == first
    marker = source.mirror_path / "fleet-test-marker"
    marker.write_text("still the same mirror")
    inode = source.mirror_path.stat().st_ino

    second = work.commit_and_push("second")
    again = GitSource(url + "/", "main")  # another spelling of the same URL, same mirror
    assert again.mirror_path == source.mirror_path
    assert again.update().sha == second
    assert marker.exists() and source.mirror_path.stat().st_ino == inode
    assert len(list((source_cache / "mirrors").glob("*.git"))) == 1
    # the URL stored in the mirror is exactly the one given: nothing added to it
    config = (source.mirror_path / "config").read_text()
    assert f"url = {url}" in config


def test_force_push_and_deleted_branch(
    git_server: GitServer, tmp_path: Path, source_cache: Path
) -> None:
    work = make_repo(git_server, "src-force", tmp_path)
    work.commit_and_push("base")
    feature = work.commit_and_push("feature", branch="feature")
    source = GitSource(git_server.url("src-force"), "feature")
    assert source.update().sha == feature
    run_git("push", "--quiet", "origin", ":feature", cwd=work.path)
    with pytest.raises(FleetError, match="'feature' is not a branch"):
        source.update()


def test_poller_picks_up_a_new_commit(
    git_server: GitServer, tmp_path: Path, source_cache: Path
) -> None:
    work = make_repo(git_server, "src-poll", tmp_path)
    first = work.commit_and_push("first")
    seen: list[str] = []
    poller = Poller(GitSource(git_server.url("src-poll"), "main"), 60, lambda r: seen.append(r.sha))
    result = poller.poll_once()
    assert result.changed and result.ok and result.next_poll_in == 60
    assert seen == [first]
    assert not poller.poll_once().changed
    second = work.commit_and_push("second")
    result = poller.poll_once()
    assert result.changed and result.current is not None and result.current.sha == second
    assert seen == [first, second]


def test_git_server_down_keeps_the_last_revision_and_resumes(
    private_git_server: GitServer,
    tmp_path: Path,
    source_cache: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = private_git_server
    work = make_repo(server, "src-outage", tmp_path)
    first = work.commit_and_push("first")
    seen: list[str] = []
    poller = Poller(GitSource(server.url("src-outage"), "main"), 30, lambda r: seen.append(r.sha))
    assert poller.poll_once().changed

    server.stop()
    delays = []
    for _ in range(7):
        result = poller.poll_once()
        assert result.error is not None and "git fetch" in result.error
        assert "\n" not in result.error
        assert result.current is not None and result.current.sha == first
        assert poller.current is not None and poller.current.sha == first
        delays.append(result.next_poll_in)
    assert delays == [1, 2, 4, 8, 16, 30, 30]  # exponential, capped at the interval
    assert "keeping" in caplog.text and "will retry in" in caplog.text

    # meanwhile a commit lands in the repository; the server comes back on the same port
    run_git("commit", "--allow-empty", "--quiet", "-m", "meanwhile", cwd=work.path)
    bare = server.base / "src-outage.git"
    run_git("push", "--quiet", str(bare), "HEAD:main", cwd=work.path)
    meanwhile = run_git("rev-parse", "HEAD", cwd=work.path)
    restarted = GitServer(server.base, port=server.port)
    restarted.start()
    try:
        result = poller.poll_once()
    finally:
        restarted.stop()
    assert result.ok and result.changed and result.failures == 0
    assert result.current is not None and result.current.sha == meanwhile
    assert seen == [first, meanwhile]
    assert result.next_poll_in == 30


def test_token_never_appears_in_errors_or_logs(
    source_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = "glpat-NeverPrintThisToken42"
    monkeypatch.setenv("FLEET_GIT_TOKEN", token)
    port = free_port()  # nothing listens there
    url = f"https://127.0.0.1:{port}/acme/fleet-config.git"
    source = GitSource(url, "main")
    assert source.credentials.token == token
    caplog.set_level(logging.DEBUG)
    result = Poller(source, 30, lambda r: None).poll_once()
    assert result.error is not None and url in result.error
    assert token not in result.error and token not in caplog.text
    assert token not in (source.mirror_path / "config").read_text()
    assert not any(token in p.read_text() for p in (source_cache / "bin").iterdir())


def test_a_transient_load_failure_is_retried_on_the_next_poll(
    git_server: GitServer, tmp_path: Path, source_cache: Path
) -> None:
    """The new commit becomes current only once its loader took it: a loader that failed
    for a transient reason (a chart server down) gets the same commit again after the
    poll backoff, not never."""
    work = make_repo(git_server, "src-load-retry", tmp_path)
    first = work.commit_and_push("first")
    attempts: list[str] = []

    def load(revision: Revision) -> None:
        attempts.append(revision.sha)
        if len(attempts) < 3:
            raise TransientError("chart server down", retry_after=1)

    poller = Poller(GitSource(git_server.url("src-load-retry"), "main"), 60, load)
    failed = poller.poll_once()
    assert failed.current is None and not failed.changed
    assert failed.error is not None and "chart server down" in failed.error
    assert failed.next_poll_in == 1
    assert poller.poll_once().next_poll_in == 2
    loaded = poller.poll_once()
    assert loaded.ok and loaded.changed and loaded.next_poll_in == 60
    assert loaded.current is not None and loaded.current.sha == first
    assert attempts == [first, first, first]
    assert not poller.poll_once().changed and attempts == [first] * 3
