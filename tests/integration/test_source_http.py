"""HTTP(S) with a token against a real smart-HTTP git server that demands Basic auth."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.source.auth import host_env_suffix
from fleet.source.git import GitSource
from fleet.source.poll import Poller
from tests.support.git_http import GitHttpServer, RedirectServer
from tests.support.servers import run_git

TOKEN = "glpat-ReallySecretToken-0123456789"


@pytest.fixture
def http_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHttpServer]:
    # plain http on loopback: the transport is not what these tests are about
    monkeypatch.setenv("FLEET_GIT_ALLOW_HTTP", "1")
    server = GitHttpServer(tmp_path / "http-git", token=TOKEN)
    server.start()
    yield server
    server.stop()


def push_commit(server: GitHttpServer, name: str, work: Path, message: str) -> str:
    """Commit in `work` and push straight into the bare repository (no auth needed)."""
    bare = server.base / f"{name}.git"
    if not bare.exists():
        server.create_bare(name)
        run_git("init", "--quiet", "--initial-branch=main", str(work))
        run_git("config", "user.email", "tests@fleet.invalid", cwd=work)
        run_git("config", "user.name", "fleet tests", cwd=work)
    (work / "fleet.yaml").write_text(f"# {message}\n")
    run_git("add", "-A", cwd=work)
    run_git("commit", "--quiet", "-m", message, cwd=work)
    run_git("push", "--quiet", str(bare), "HEAD:main", cwd=work)
    return run_git("rev-parse", "HEAD", cwd=work)


def token_env(server: GitHttpServer) -> str:
    return "FLEET_GIT_TOKEN_" + host_env_suffix(f"127.0.0.1:{server.port}")


def test_fetch_with_a_per_host_token(
    http_git: GitHttpServer,
    tmp_path: Path,
    source_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sha = push_commit(http_git, "cfg", tmp_path / "work", "first")
    url = http_git.url("cfg")

    with pytest.raises(FleetError) as anonymous:
        GitSource(url, "main").update()
    assert token_env(http_git) in str(anonymous.value)  # the hint names the variable to set

    monkeypatch.setenv(token_env(http_git), TOKEN)
    source = GitSource(url, "main")
    revision = source.update()
    assert revision.sha == sha
    assert (revision.path / "fleet.yaml").read_text() == "# first\n"
    assert ("/cfg.git/info/refs?service=git-upload-pack", "x-access-token") in http_git.attempts
    config = (source.mirror_path / "config").read_text()
    assert TOKEN not in config and f"url = {url}" in config
    assert TOKEN not in caplog.text

    second = push_commit(http_git, "cfg", tmp_path / "work", "second")
    poller = Poller(source, 30, lambda r: None)
    assert poller.poll_once().current.sha == second  # type: ignore[union-attr]


def test_wrong_token_is_reported_without_the_token(
    http_git: GitHttpServer,
    tmp_path: Path,
    source_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    push_commit(http_git, "cfg", tmp_path / "work", "first")
    wrong = "glpat-WrongButStillSecret-987654"
    monkeypatch.setenv("FLEET_GIT_TOKEN", wrong)
    result = Poller(GitSource(http_git.url("cfg"), "main"), 30, lambda r: None).poll_once()
    assert result.error is not None
    assert "Authentication failed" in result.error and "token was refused" in result.error
    assert wrong not in result.error and wrong not in caplog.text


@pytest.mark.parametrize("ask_first", [False, True], ids=["redirect", "auth-then-redirect"])
def test_a_redirect_to_another_host_gets_no_token(
    ask_first: bool,
    tmp_path: Path,
    source_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The token is for the URL's host; a server that redirects git to another host (here
    127.0.0.2, which asks for credentials too) must never be sent it, whether it redirects
    at once (before the askpass check, git asked again for the second host and got the
    token) or first takes the token itself (it is the URL's own host: it may; git then
    does not carry the credential over the redirect either, a guard on git's behaviour)."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FLEET_GIT_ALLOW_HTTP", "1")
    other = GitHttpServer(tmp_path / "other-git", token=TOKEN, host="127.0.0.2")
    other.start()
    push_commit(other, "cfg", tmp_path / "work", "first")
    redirect = RedirectServer(f"http://127.0.0.2:{other.port}", ask_first=ask_first)
    redirect.start()
    try:
        monkeypatch.setenv(
            "FLEET_GIT_TOKEN_" + host_env_suffix(f"127.0.0.1:{redirect.port}"), TOKEN
        )
        with pytest.raises(FleetError) as info:
            GitSource(redirect.url("cfg"), "main").update()
        assert redirect.authorizations  # git went to the first host ...
        assert other.authorizations  # ... was sent on to the second one ...
        assert all(header is None for header in other.authorizations)  # ... without a token
        assert TOKEN not in str(info.value) and TOKEN not in caplog.text
        assert len(str(info.value).splitlines()) == 1

        # the second server is fine: asked by its own URL, with its own token, it serves
        monkeypatch.setenv("FLEET_GIT_TOKEN_" + host_env_suffix(f"127.0.0.2:{other.port}"), TOKEN)
        assert GitSource(other.url("cfg"), "main").update().sha
    finally:
        redirect.stop()
        other.stop()


def test_a_token_over_plain_http_is_refused_unless_allowed(
    http_git: GitHttpServer, tmp_path: Path, source_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_commit(http_git, "cfg", tmp_path / "work", "first")
    monkeypatch.delenv("FLEET_GIT_ALLOW_HTTP")
    monkeypatch.setenv(token_env(http_git), TOKEN)
    with pytest.raises(FleetError) as info:
        GitSource(http_git.url("cfg"), "main").update()
    message = str(info.value)
    assert message == (
        f"refusing to send the Git token for 127.0.0.1:{http_git.port} over plain http:// "
        f"({http_git.url('cfg')}): use an https:// URL, or set FLEET_GIT_ALLOW_HTTP=1"
    )
    assert http_git.attempts == []  # nothing was sent at all

    monkeypatch.setenv("FLEET_GIT_ALLOW_HTTP", "1")
    assert GitSource(http_git.url("cfg"), "main").update().sha


def test_a_public_server_in_a_process_of_its_own(tmp_path: Path, source_cache: Path) -> None:
    """`python -m tests.support.git_http BASE` (what bench_flux.py runs: Flux clones over
    smart HTTP) serves without asking for credentials and stops on SIGTERM."""
    import subprocess
    import sys

    base = tmp_path / "public-git"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.git_http", str(base)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        server = GitHttpServer(base, token=None, port=port)
        sha = push_commit(server, "open", tmp_path / "work", "first")
        revision = GitSource(server.url("open"), "main").update()  # no token anywhere
        assert revision.sha == sha
        assert (revision.path / "fleet.yaml").read_text() == "# first\n"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
