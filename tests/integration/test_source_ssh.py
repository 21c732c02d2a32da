"""Git over SSH against a real `sshd`: a private key, a known_hosts file, strict host keys.

The server (tests/support/git_ssh.py) is OpenSSH's own, started for this module on a free
loopback port with a fresh host key, so every refusal below is ssh's real behaviour.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.source.auth import credentials_for, ssh_command
from fleet.source.git import GitSource
from fleet.source.poll import Poller
from tests.support.git_ssh import (
    GitSshServer,
    generate_key,
    private_key_material,
    public_key,
)
from tests.support.servers import run_git


@pytest.fixture(scope="module")
def ssh_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitSshServer]:
    server = GitSshServer(tmp_path_factory.mktemp("ssh-git") / "repos")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client_key(ssh_git: GitSshServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key pair the server authorizes (for fleet, and for the tests' own pushes)."""
    key = generate_key(tmp_path_factory.mktemp("ssh-client") / "id_ed25519")
    ssh_git.authorize(key)
    return key


@pytest.fixture(scope="module")
def known_hosts(ssh_git: GitSshServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ssh_git.write_known_hosts(tmp_path_factory.mktemp("ssh-trust") / "known_hosts")


@pytest.fixture
def ssh_env(
    source_cache: Path, client_key: Path, known_hosts: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """fleet's SSH credentials in the environment; returns the sources cache dir."""
    monkeypatch.setenv("FLEET_GIT_SSH_KEY", str(client_key))
    monkeypatch.setenv("FLEET_GIT_KNOWN_HOSTS", str(known_hosts))
    return source_cache


def push_commit(
    server: GitSshServer, name: str, work: Path, message: str, key: Path, known_hosts: Path
) -> str:
    """Commit in `work` and push it with plain git over the same SSH server."""
    if not (server.base / f"{name}.git").exists():
        server.create_bare(name)
        run_git("init", "--quiet", "--initial-branch=main", str(work))
        run_git("config", "user.email", "tests@fleet.invalid", cwd=work)
        run_git("config", "user.name", "fleet tests", cwd=work)
    (work / "fleet.yaml").write_text(f"# {message}\n")
    run_git("add", "-A", cwd=work)
    run_git("commit", "--quiet", "-m", message, cwd=work)
    env = {**os.environ, "GIT_SSH_COMMAND": server.ssh_command(key, known_hosts)}
    subprocess.run(
        ["git", "push", "--quiet", server.url(name), "HEAD:main"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    return run_git("rev-parse", "HEAD", cwd=work)


def fingerprint(key: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{key}.pub"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[1]  # SHA256:...


def key_material(*keys: Path) -> list[str]:
    """Every piece of the keys that must never be printed: private bodies, public blobs."""
    return [part for key in keys for part in private_key_material(key)] + [
        public_key(key).split()[1] for key in keys
    ]


def mirror_refs(source: GitSource) -> str:
    if not source.is_cloned:
        return ""
    return run_git("--git-dir", str(source.mirror_path), "for-each-ref")


def test_fetch_with_a_key_and_known_hosts_reuses_the_mirror(
    ssh_git: GitSshServer,
    client_key: Path,
    known_hosts: Path,
    ssh_env: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    work = tmp_path / "work"
    first = push_commit(ssh_git, "cfg", work, "first", client_key, known_hosts)
    url = ssh_git.url("cfg")
    accepted = f"Accepted publickey for {ssh_git.user} from 127.0.0.1"
    logins_before = ssh_git.log_text().count(accepted)

    source = GitSource(url, "main")
    revision = source.update()
    assert revision.sha == first
    assert (revision.path / "fleet.yaml").read_text() == "# first\n"
    assert revision.path == ssh_env / "checkouts" / first
    # sshd itself saw fleet log in with the key FLEET_GIT_SSH_KEY names
    log = ssh_git.log_text()
    assert log.count(accepted) > logins_before and fingerprint(client_key) in log
    config = (source.mirror_path / "config").read_text()
    assert f"url = {url}" in config and str(client_key) not in config
    marker = source.mirror_path / "fleet-test-marker"
    marker.write_text("same mirror")
    inode = source.mirror_path.stat().st_ino

    second = push_commit(ssh_git, "cfg", work, "second", client_key, known_hosts)
    again = GitSource(url, "main").update()
    assert again.sha == second
    assert (again.path / "fleet.yaml").read_text() == "# second\n"
    assert marker.exists() and source.mirror_path.stat().st_ino == inode
    assert len(list((ssh_env / "mirrors").glob("*.git"))) == 1
    for secret in key_material(client_key):
        assert secret not in caplog.text


@pytest.mark.parametrize("trust", ["unset", "empty file", "another key"])
def test_unknown_host_key_is_refused_and_nothing_is_cloned(
    trust: str,
    ssh_git: GitSshServer,
    client_key: Path,
    known_hosts: Path,
    ssh_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "trust-" + trust.replace(" ", "-")
    push_commit(ssh_git, name, tmp_path / "work", "first", client_key, known_hosts)
    if trust == "unset":  # ssh falls back to ~/.ssh/known_hosts: this fresh key is in none
        monkeypatch.delenv("FLEET_GIT_KNOWN_HOSTS")
    else:
        wrong = tmp_path / "known_hosts"
        if trust == "empty file":
            wrong.write_text("")
        else:
            impostor = generate_key(tmp_path / "impostor")
            wrong.write_text(f"[127.0.0.1]:{ssh_git.port} {public_key(impostor)}\n")
        monkeypatch.setenv("FLEET_GIT_KNOWN_HOSTS", str(wrong))
    logins_before = ssh_git.log_text().count("Accepted publickey")

    source = GitSource(ssh_git.url(name), "main")
    with pytest.raises(FleetError) as refused:
        source.update()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"git fetch {ssh_git.url(name)} failed: ")
    assert "FLEET_GIT_KNOWN_HOSTS" in message
    expected = {
        "unset": "set FLEET_GIT_KNOWN_HOSTS",
        "empty file": "has no key for this host",
        "another key": "is not the one FLEET_GIT_KNOWN_HOSTS",
    }[trust]
    assert expected in message
    assert "host key" in message.lower()
    assert mirror_refs(source) == ""
    assert not (ssh_env / "checkouts").exists() or not any((ssh_env / "checkouts").iterdir())
    # ssh gave up before authenticating: the key was never offered to this server
    assert ssh_git.log_text().count("Accepted publickey") == logins_before
    for secret in key_material(client_key):
        assert secret not in message


def test_unauthorized_key_is_refused_without_showing_the_key(
    ssh_git: GitSshServer,
    client_key: Path,
    known_hosts: Path,
    ssh_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The key's path may be named (it is configuration); its content never is."""
    caplog.set_level(logging.DEBUG)
    push_commit(ssh_git, "locked", tmp_path / "work", "first", client_key, known_hosts)
    stranger = generate_key(tmp_path / "keys" / "stranger")
    monkeypatch.setenv("FLEET_GIT_SSH_KEY", str(stranger))
    source = GitSource(ssh_git.url("locked"), "main")

    with pytest.raises(FleetError) as refused:
        source.update()
    message = str(refused.value)
    assert "\n" not in message
    assert f"{ssh_git.user}@127.0.0.1: Permission denied (publickey)." in message
    assert "refused the key FLEET_GIT_SSH_KEY names" in message
    assert mirror_refs(source) == ""

    result = Poller(source, 30, lambda r: None).poll_once()  # the path that logs
    assert result.error is not None and "Permission denied (publickey)" in result.error
    assert "Permission denied" in caplog.text
    for secret in key_material(stranger, client_key):
        assert secret not in message
        assert secret not in result.error
        assert secret not in caplog.text


def test_fleet_ssh_reads_no_ssh_config(
    ssh_git: GitSshServer, client_key: Path, known_hosts: Path, ssh_env: Path
) -> None:
    """`ssh -G` prints the configuration ssh would use: with fleet's options, no config file.

    Debian's /etc/ssh/ssh_config sets `SendEnv LANG LC_*` and `GSSAPIAuthentication yes`; a
    user's ~/.ssh/config is skipped by the same `-F /dev/null`, so it cannot add identities
    or a ProxyCommand for this host either.
    """
    creds = credentials_for(ssh_git.url("cfg"))
    args = [*shlex.split(ssh_command(creds)), "-G", "-p", str(ssh_git.port), "127.0.0.1"]
    effective = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    settings = [line.split(" ", 1) for line in effective.splitlines()]
    assert not [value for key, value in settings if key == "sendenv"]
    assert ["gssapiauthentication", "no"] in settings
    assert [value for key, value in settings if key == "identityfile"] == [str(client_key)]
    assert ["userknownhostsfile", str(known_hosts)] in settings
    assert ["stricthostkeychecking", "true"] in settings
    assert not [value for key, value in settings if key in ("proxycommand", "proxyjump")]


def test_server_lets_an_authorized_key_run_git_only(
    ssh_git: GitSshServer, client_key: Path, known_hosts: Path
) -> None:
    """The forced command of the test server: git fetch/push under its base, nothing else."""
    ssh = [*shlex.split(ssh_git.ssh_command(client_key, known_hosts)), "-p", str(ssh_git.port)]
    shell = subprocess.run(
        [*ssh, f"{ssh_git.user}@127.0.0.1", "id"], capture_output=True, text=True
    )
    assert shell.returncode != 0 and "only git fetch and push are allowed" in shell.stderr
    outside = subprocess.run(
        ["git", "ls-remote", f"ssh://{ssh_git.user}@127.0.0.1:{ssh_git.port}/etc/x.git"],
        env={**os.environ, "GIT_SSH_COMMAND": ssh_git.ssh_command(client_key, known_hosts)},
        capture_output=True,
        text=True,
    )
    assert outside.returncode != 0 and "no repository /etc/x.git here" in outside.stderr
