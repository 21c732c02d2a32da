"""Git credentials from the environment: which applies to a URL, how git gets it, redaction."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.source.auth import (
    GitCredentials,
    credentials_for,
    ensure_askpass,
    explain_failure,
    git_environment,
    host_env_suffix,
    redact,
    split_url,
    ssh_command,
)
from fleet.source.git import GitSource, normalise_url, repository_identity

TOKEN = "ghp_S3cr3tT0k3nThatMustNeverLeak"


def test_host_suffix() -> None:
    assert host_env_suffix("github.com") == "GITHUB_COM"
    assert host_env_suffix("git.example.org:8443") == "GIT_EXAMPLE_ORG_8443"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/x.git", ("https", None, "github.com")),
        ("https://bot@Git.Example.org:8443/x", ("https", "bot", "git.example.org:8443")),
        ("git@github.com:acme/x.git", ("ssh", "git", "github.com")),
        ("ssh://git@host:2222/acme/x.git", ("ssh", "git", "host:2222")),
        ("git://127.0.0.1:9418/x.git", ("git", None, "127.0.0.1:9418")),
        ("/srv/git/x.git", ("file", None, "")),
    ],
)
def test_split_url(url: str, expected: tuple[str, str | None, str]) -> None:
    assert split_url(url) == expected


def test_https_token_global_and_per_host() -> None:
    env = {"FLEET_GIT_TOKEN": "global", "FLEET_GIT_TOKEN_GITHUB_COM": TOKEN}
    creds = credentials_for("https://github.com/acme/x.git", env)
    assert creds.token == TOKEN and creds.username == "x-access-token"
    other = credentials_for("https://gitlab.example.com/acme/x.git", env)
    assert other.token == "global"
    assert TOKEN not in repr(creds)


def test_username_from_env_or_url() -> None:
    env = {"FLEET_GIT_TOKEN": TOKEN}
    assert credentials_for("https://bot@host/x", env).username == "bot"
    env["FLEET_GIT_USERNAME_HOST"] = "oauth2"
    assert credentials_for("https://bot@host/x", env).username == "oauth2"
    assert credentials_for("https://host/x", {}).username is None


def test_password_in_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(FleetError) as info:
        credentials_for(f"https://bot:{TOKEN}@github.com/acme/x.git", {})
    assert TOKEN not in str(info.value)
    assert "FLEET_GIT_TOKEN" in str(info.value)


def test_token_goes_through_askpass_never_the_url(tmp_path: Path) -> None:
    creds = credentials_for("https://github.com/acme/x.git", {"FLEET_GIT_TOKEN": TOKEN})
    askpass = ensure_askpass(tmp_path)
    env = git_environment(creds, askpass)
    assert env["GIT_ASKPASS"] == str(askpass)
    assert env["FLEET_ASKPASS_ORIGIN"] == "https://github.com"
    assert env["FLEET_ASKPASS_PASSWORD"] == TOKEN
    assert env["FLEET_ASKPASS_USERNAME"] == "x-access-token"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert (env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_VALUE_0"]) == ("credential.helper", "")
    assert TOKEN not in askpass.read_text()
    assert askpass.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        ("Username for 'https://git.example.com:8443': ", "bot"),
        ("Password for 'https://bot@git.example.com:8443': ", TOKEN),
        ("Password for 'https://bot@Git.Example.COM:8443': ", TOKEN),  # hosts ignore case
        ("Password for 'https://bot@git.example.com:8443/acme/x.git': ", TOKEN),  # useHttpPath
        # a redirect elsewhere: another host, another port, or down to plain http
        ("Username for 'https://evil.example.net': ", None),
        ("Password for 'https://bot@evil.example.net': ", None),
        ("Password for 'https://bot@git.example.com': ", None),
        ("Password for 'http://bot@git.example.com:8443': ", None),
        ("Password for 'https://git.example.com:8443@evil.example.net': ", None),
        ("Passphrase for key '/root/.ssh/id': ", None),
        ("", None),
    ],
)
def test_askpass_answers_only_for_the_origin_of_the_url(
    prompt: str, answer: str | None, tmp_path: Path
) -> None:
    creds = credentials_for(
        "https://bot@git.example.com:8443/acme/x.git", {"FLEET_GIT_TOKEN": TOKEN}
    )
    assert creds.origin == "https://git.example.com:8443"
    askpass = ensure_askpass(tmp_path)
    env = {"PATH": "/usr/bin:/bin", **git_environment(creds, askpass)}
    done = subprocess.run([str(askpass), prompt], env=env, capture_output=True, text=True)
    if answer is None:
        assert (done.returncode, done.stdout) == (1, "")
    else:
        assert (done.returncode, done.stdout) == (0, answer + "\n")


def test_a_token_over_plain_http_is_refused_unless_allowed() -> None:
    env = {"FLEET_GIT_TOKEN": TOKEN}
    with pytest.raises(FleetError) as info:
        credentials_for("http://git.example.com/acme/x.git", env)
    assert str(info.value) == (
        "refusing to send the Git token for git.example.com over plain http:// "
        "(http://git.example.com/acme/x.git): use an https:// URL, or set FLEET_GIT_ALLOW_HTTP=1"
    )
    assert credentials_for("http://git.example.com/x.git", {}).token is None  # public: fine
    allowed = credentials_for("http://git.example.com/x.git", {**env, "FLEET_GIT_ALLOW_HTTP": "1"})
    assert allowed.token == TOKEN and allowed.origin == "http://git.example.com"
    with pytest.raises(FleetError, match="FLEET_GIT_ALLOW_HTTP must be"):
        credentials_for("http://git.example.com/x.git", {**env, "FLEET_GIT_ALLOW_HTTP": "maybe"})


def test_source_keeps_the_token_out_of_its_url(tmp_path: Path) -> None:
    creds = credentials_for("https://github.com/acme/x.git", {"FLEET_GIT_TOKEN": TOKEN})
    source = GitSource("https://github.com/acme/x.git", cache_dir=tmp_path, credentials=creds)
    assert TOKEN not in source.url + source.display_url + repr(source)


def test_no_token_no_askpass() -> None:
    env = git_environment(credentials_for("https://github.com/acme/x.git", {}), None)
    assert "GIT_ASKPASS" not in env and "FLEET_ASKPASS_PASSWORD" not in env


def test_ssh_command_with_key_and_known_hosts(tmp_path: Path) -> None:
    key = tmp_path / "id ed25519"  # a space: the command must quote it
    key.write_text("KEY")
    known = tmp_path / "known_hosts"
    known.write_text("github.com ssh-ed25519 AAAA\n")
    creds = credentials_for(
        "git@github.com:acme/x.git",
        {"FLEET_GIT_SSH_KEY": str(key), "FLEET_GIT_KNOWN_HOSTS": str(known)},
    )
    args = shlex.split(git_environment(creds, None)["GIT_SSH_COMMAND"])
    assert args[0] == "ssh"
    assert args[args.index("-i") + 1] == str(key)
    assert "IdentitiesOnly=yes" in args and "BatchMode=yes" in args
    assert "StrictHostKeyChecking=yes" in args
    assert f"UserKnownHostsFile={known}" in args


def test_ssh_without_known_hosts_is_still_strict() -> None:
    args = shlex.split(ssh_command(GitCredentials("ssh", "github.com")))
    assert "StrictHostKeyChecking=yes" in args
    assert not any(a.startswith("UserKnownHostsFile") for a in args)


def test_ssh_with_a_key_reads_no_ssh_config(tmp_path: Path) -> None:
    """With FLEET_GIT_SSH_KEY, no ~/.ssh/config or /etc/ssh/ssh_config Host block may add
    identities, rewrite the host or port, or add a ProxyCommand: `-F /dev/null`."""
    key = tmp_path / "id_ed25519"
    key.write_text("KEY")
    args = shlex.split(ssh_command(credentials_for("git@h:x.git", {"FLEET_GIT_SSH_KEY": str(key)})))
    assert args[args.index("-F") + 1] == "/dev/null"
    # without a key the user's own ssh setup (agent, config) is what authenticates
    assert "-F" not in shlex.split(ssh_command(GitCredentials("ssh", "h")))


def test_ssh_key_that_does_not_exist(tmp_path: Path) -> None:
    creds = credentials_for("git@h:x.git", {"FLEET_GIT_SSH_KEY": str(tmp_path / "nope")})
    with pytest.raises(FleetError, match="FLEET_GIT_SSH_KEY names"):
        ssh_command(creds)


def test_redact_secrets_and_url_passwords() -> None:
    text = f"fatal: https://bot:{TOKEN}@github.com/x.git said {TOKEN} and ghp%20x"
    cleaned = redact(text, (TOKEN,))
    assert TOKEN not in cleaned
    assert "https://bot:***@github.com/x.git" in cleaned
    assert redact("ssh://git@host/x") == "ssh://git@host/x"


def test_explain_failure_is_one_redacted_line_with_a_hint() -> None:
    creds = GitCredentials("https", "github.com", username="x-access-token", token=TOKEN)
    stderr = (
        f"remote: Invalid username or password ({TOKEN}).\n"
        "fatal: Authentication failed for 'https://github.com/acme/x.git/'\n"
    )
    line = explain_failure(creds, stderr)
    assert "\n" not in line and TOKEN not in line
    assert line.startswith("fatal: Authentication failed") and "token was refused" in line
    anonymous = GitCredentials("https", "github.com")
    hint = explain_failure(anonymous, "fatal: could not read Username for 'https://github.com'")
    assert "FLEET_GIT_TOKEN_GITHUB_COM" in hint


def test_explain_failure_joins_a_reason_split_over_lines() -> None:
    stderr = (
        "fatal: unable to connect to 127.0.0.1:\n"
        "127.0.0.1[0: 127.0.0.1]: errno=Connection refused\n"
    )
    line = explain_failure(GitCredentials("git", "127.0.0.1"), stderr)
    assert line.endswith("errno=Connection refused")


def test_host_key_failure_hints_known_hosts() -> None:
    line = explain_failure(
        GitCredentials("ssh", "github.com"),
        "Host key verification failed.\nfatal: Could not read from remote repository.",
    )
    assert "FLEET_GIT_KNOWN_HOSTS" in line


GIT_COULD_NOT_READ = (
    "fatal: Could not read from remote repository.\n\n"
    "Please make sure you have the correct access rights\nand the repository exists.\n"
)


def test_unknown_host_with_known_hosts_set_names_the_file(tmp_path: Path) -> None:
    creds = GitCredentials("ssh", "h:22", known_hosts=tmp_path / "kh")
    stderr = (
        "No ED25519 host key is known for [h]:22 and you have requested strict checking.\n"
        "Host key verification failed.\n" + GIT_COULD_NOT_READ
    )
    line = explain_failure(creds, stderr)
    assert "\n" not in line
    assert line.startswith("No ED25519 host key is known for [h]:22")
    assert f"FLEET_GIT_KNOWN_HOSTS ({tmp_path / 'kh'}) has no key for this host" in line


def test_changed_host_key_is_one_line_without_the_banner(tmp_path: Path) -> None:
    creds = GitCredentials("ssh", "h:22", known_hosts=tmp_path / "kh")
    stderr = (
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "Host key for [h]:22 has changed and you have requested strict checking.\n"
        "Host key verification failed.\n" + GIT_COULD_NOT_READ
    )
    line = explain_failure(creds, stderr)
    assert line.startswith("Host key for [h]:22 has changed")
    assert "is not the one FLEET_GIT_KNOWN_HOSTS" in line and "@" not in line


def test_refused_key_says_which_variable() -> None:
    stderr = "git@h: Permission denied (publickey).\n" + GIT_COULD_NOT_READ
    with_key = explain_failure(GitCredentials("ssh", "h", ssh_key=Path("/k")), stderr)
    assert with_key.startswith("git@h: Permission denied (publickey).")
    assert "refused the key FLEET_GIT_SSH_KEY names" in with_key
    without = explain_failure(GitCredentials("ssh", "h"), stderr)
    assert "set FLEET_GIT_SSH_KEY" in without


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://GitHub.com/acme/x.git", "https://github.com/acme/x"),
        ("https://github.com/acme/x/", "https://github.com/acme/x"),
        ("git@github.com:acme/x.git", "ssh://git@github.com/acme/x"),
        ("ssh://git@github.com:22/acme/x.git", "ssh://git@github.com:22/acme/x"),
    ],
)
def test_normalise_url(url: str, normalised: str) -> None:
    assert normalise_url(url) == normalised


def test_repository_identity_ignores_transport() -> None:
    urls = [
        "https://github.com/Acme/X.git",
        "git@github.com:acme/x.git",
        "ssh://git@github.com:22/acme/x",
        "git://github.com/acme/x.git",
    ]
    assert {repository_identity(u) for u in urls} == {"github.com/acme/x"}
