"""Git credentials from the environment, handed to git without ever being stored or logged.

A fleet repository URL lives in Git (in the definition, in CLI history, in the mirror's
config), so it must never carry a secret. Credentials come only from the environment of the
process that fetches:

- HTTPS: `FLEET_GIT_TOKEN_<HOST>` (host upper-cased, every non-alphanumeric character -> `_`,
  e.g. `FLEET_GIT_TOKEN_GITHUB_COM`; a port is part of the host: `..._127_0_0_1_8080`), else
  `FLEET_GIT_TOKEN`. The username is `FLEET_GIT_USERNAME_<HOST>`, `FLEET_GIT_USERNAME`, the
  user written in the URL (`https://bot@host/...`), else `x-access-token` (GitHub accepts any
  username with a token, GitLab any non-empty one; Bitbucket needs the real one).
  The token reaches git through `GIT_ASKPASS`: a tiny script (no secret in it) echoes the
  values of two environment variables that exist only in the git child's environment. So the
  token is not in the URL, not in the mirror's `.git/config`, not on a command line (`ps`).
  Git asks only when the server answers 401, and the script answers only when git asks for
  the URL's own origin (scheme, host, port): a server that redirects git elsewhere (another
  host, or https -> http) gets nothing. A token is never sent over plain `http://`: such a
  URL with a token is refused, unless the operator sets `FLEET_GIT_ALLOW_HTTP=1` (a
  setting, not a definition key: the repository must not lower the operator's guard).
- SSH: `FLEET_GIT_SSH_KEY` (path to a private key) becomes
  `GIT_SSH_COMMAND=ssh -F /dev/null -i KEY -o IdentitiesOnly=yes -o BatchMode=yes ...`.
  `-F /dev/null`: with a key given, the environment says everything, and no ssh config file
  (the user's `~/.ssh/config` nor `/etc/ssh/ssh_config`) may add identities or certificates,
  rewrite the host, user or port, or route through a proxy. Without a key, ssh keeps the
  user's config and keys (a developer running fleet with their own agent).
  `FLEET_GIT_KNOWN_HOSTS` (path) is used as the only known_hosts file with
  `StrictHostKeyChecking=yes`. Without it ssh still checks host keys strictly, against the
  user's `~/.ssh/known_hosts` and the system one: an unknown host is refused (never trusted
  on first use), and the error says to set `FLEET_GIT_KNOWN_HOSTS`.

Git's own credential helpers are switched off for fleet's git calls (`credential.helper=`)
and so are terminal prompts: a server process must neither hang on a prompt nor pick up
whatever a developer's keychain holds. A URL with a password in it is refused outright.

`redact` removes every credential (and `user:password@` in URLs) from text before it goes
into an error or a log line.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from fleet import config
from fleet.errors import FleetError

DEFAULT_USERNAME = "x-access-token"
REDACTED = "***"

# The askpass helper is passed git's prompt: "Username for 'https://host': " or "Password
# for 'https://user@host': ". It answers only for the origin fleet fetches from (scheme,
# host and port; `FLEET_ASKPASS_ORIGIN`): after a redirect to another host, or from https
# to http, it prints nothing and fails, and git gives up. It holds no secret: the values
# come from the git child's environment.
ASKPASS_SCRIPT = r"""#!/bin/sh
url=${1#*\'}
url=${url%\'*}
scheme=${url%%://*}
rest=${url#*://}
rest=${rest%%/*}
origin=$(printf '%s://%s' "$scheme" "${rest##*@}" | tr 'A-Z' 'a-z')
[ -n "$FLEET_ASKPASS_ORIGIN" ] && [ "$origin" = "$FLEET_ASKPASS_ORIGIN" ] || exit 1
case "$1" in
  Username*|username*) printf '%s\n' "$FLEET_ASKPASS_USERNAME" ;;
  Password*|password*) printf '%s\n' "$FLEET_ASKPASS_PASSWORD" ;;
  *) exit 1 ;;
esac
"""
ALLOW_HTTP_ENV = "FLEET_GIT_ALLOW_HTTP"

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*):[^/@\s]*@")
# ssh's own reason for failing; git follows it with a generic "fatal: Could not read from
# remote repository", which alone does not say what to fix.
_SSH_REASON = re.compile(
    r"host key is known for|host key for .* has changed|host key verification failed"
    r"|permission denied \(|could not resolve hostname|connection refused|connection timed out",
    re.IGNORECASE,
)
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>(?!//).*)$")


@dataclass(frozen=True)
class GitCredentials:
    """What git needs to reach one repository URL; `repr` never shows the token."""

    transport: str  # "https", "http", "ssh", "git", "file"
    host: str
    username: str | None = None
    token: str | None = field(default=None, repr=False)
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    origin: str = ""  # scheme://host[:port] (lower-case): the only place the token is given

    def secrets(self) -> tuple[str, ...]:
        """Every form in which a credential could show up in git's output."""
        if not self.token:
            return ()
        return tuple({self.token, quote(self.token, safe="")})

    def redact(self, text: str) -> str:
        return redact(text, self.secrets())


def redact(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """`text` without the given secrets and without any password written in a URL."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)


def host_env_suffix(host: str) -> str:
    """`github.com` -> `GITHUB_COM`, `git.example.org:8443` -> `GIT_EXAMPLE_ORG_8443`."""
    return re.sub(r"[^A-Z0-9]", "_", host.upper())


def split_url(url: str) -> tuple[str, str | None, str]:
    """(transport, user or None, host[:port]) of a git URL, scp-like `git@host:path` included."""
    if "://" in url:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        transport = parts.scheme.lower()
        if transport in ("git+ssh", "ssh+git"):
            transport = "ssh"
        return transport, parts.username, host
    match = _SCP_LIKE.match(url)
    if match and not url.startswith(("/", ".")):
        return "ssh", match["user"], match["host"].lower()
    return "file", None, ""


def credentials_for(url: str, environ: Mapping[str, str] | None = None) -> GitCredentials:
    """The credentials the environment holds for `url` (none is fine: public repositories)."""
    env = config.current().env if environ is None else environ
    if "://" in url and urlsplit(url).password is not None:
        raise FleetError(
            f"repository URL {redact(url)} has a password in it; put the token in "
            "FLEET_GIT_TOKEN (or FLEET_GIT_TOKEN_<HOST>) instead"
        )
    transport, url_user, host = split_url(url)
    suffix = host_env_suffix(host) if host else ""

    def lookup(name: str) -> str | None:
        value = env.get(f"{name}_{suffix}") if suffix else None
        return value or env.get(name) or None

    if transport in ("https", "http"):
        token = lookup("FLEET_GIT_TOKEN")
        if token and transport == "http" and not config.git_allow_http_from(env):
            raise FleetError(
                f"refusing to send the Git token for {host} over plain http:// "
                f"({redact(url)}): use an https:// URL, or set {ALLOW_HTTP_ENV}=1"
            )
        username = lookup("FLEET_GIT_USERNAME") or url_user or (DEFAULT_USERNAME if token else None)
        origin = f"{transport}://{urlsplit(url).netloc.rsplit('@', 1)[-1].lower()}"
        return GitCredentials(transport, host, username=username, token=token, origin=origin)
    if transport == "ssh":
        key = env.get("FLEET_GIT_SSH_KEY") or None
        known = env.get("FLEET_GIT_KNOWN_HOSTS") or None
        return GitCredentials(
            transport,
            host,
            username=url_user,
            ssh_key=Path(key).expanduser() if key else None,
            known_hosts=Path(known).expanduser() if known else None,
        )
    return GitCredentials(transport, host, username=url_user)


def ssh_command(creds: GitCredentials) -> str:
    """The `GIT_SSH_COMMAND` for these credentials: non-interactive, strict host keys."""
    args = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if creds.ssh_key is not None:
        if not creds.ssh_key.is_file():
            raise FleetError(f"FLEET_GIT_SSH_KEY names {creds.ssh_key}, which is not a file")
        args += ["-F", "/dev/null", "-i", str(creds.ssh_key), "-o", "IdentitiesOnly=yes"]
    if creds.known_hosts is not None:
        if not creds.known_hosts.is_file():
            raise FleetError(
                f"FLEET_GIT_KNOWN_HOSTS names {creds.known_hosts}, which is not a file"
            )
        args += ["-o", f"UserKnownHostsFile={creds.known_hosts}", "-o", "GlobalKnownHostsFile=none"]
    return " ".join(shlex.quote(a) for a in args)


def ensure_askpass(directory: Path) -> Path:
    """The askpass helper script in `directory` (written once; it contains no secret)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "fleet-askpass"
    if not script.exists() or script.read_text() != ASKPASS_SCRIPT:
        tmp = directory / f".fleet-askpass.{os.getpid()}"
        tmp.write_text(ASKPASS_SCRIPT)
        tmp.chmod(stat.S_IRWXU)
        tmp.replace(script)
    return script


def git_environment(creds: GitCredentials, askpass: Path | None) -> dict[str, str]:
    """Environment additions for one git command that talks to the remote of `creds`."""
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        # Git's own credential helpers off: credentials come from fleet's environment only.
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",
        "SSH_ASKPASS": "",
    }
    if creds.transport in ("https", "http") and creds.token:
        if askpass is None:
            raise ValueError("an askpass helper is needed to pass a token")
        env["GIT_ASKPASS"] = str(askpass)
        env["FLEET_ASKPASS_ORIGIN"] = creds.origin
        env["FLEET_ASKPASS_USERNAME"] = creds.username or DEFAULT_USERNAME
        env["FLEET_ASKPASS_PASSWORD"] = creds.token
    elif creds.transport == "ssh":
        env["GIT_SSH_COMMAND"] = ssh_command(creds)
    return env


def explain_failure(creds: GitCredentials, stderr: str) -> str:
    """One redacted line from git's stderr, with a hint for the usual credential mistakes."""
    lines = [line.strip() for line in creds.redact(stderr).splitlines() if line.strip()]
    first = next(
        (i for i, line in enumerate(lines) if line.lower().startswith(("fatal:", "error:"))),
        max(len(lines) - 1, 0),
    )
    # git splits one reason over lines ("unable to connect to host:\nerrno=..."): rejoin
    reason = " ".join(lines[first:]) or "git failed without a message"
    if creds.transport == "ssh":
        reason = next((line for line in lines if _SSH_REASON.search(line)), reason)
    if len(reason) > 300:
        reason = reason[:297] + "..."
    lowered = stderr.lower()
    if "host key verification failed" in lowered:
        reason += _host_key_hint(creds, changed="has changed" in lowered)
    elif "permission denied (publickey" in lowered:
        if creds.ssh_key is not None:
            reason += (
                " (the server refused the key FLEET_GIT_SSH_KEY names: authorize its public"
                " key for this user and repository)"
            )
        else:
            reason += " (set FLEET_GIT_SSH_KEY to a private key the server accepts)"
    elif "authentication failed" in lowered or "could not read username" in lowered:
        if creds.token:
            reason += " (the token was refused)"
        else:
            suffix = host_env_suffix(creds.host)
            reason += f" (set FLEET_GIT_TOKEN or FLEET_GIT_TOKEN_{suffix})"
    return reason


def _host_key_hint(creds: GitCredentials, *, changed: bool) -> str:
    if creds.known_hosts is None:
        return " (set FLEET_GIT_KNOWN_HOSTS to a known_hosts file for this host)"
    if changed:
        return (
            f" (the server's key is not the one FLEET_GIT_KNOWN_HOSTS ({creds.known_hosts})"
            " lists for it: update that file only if the key really changed)"
        )
    return (
        f" (FLEET_GIT_KNOWN_HOSTS ({creds.known_hosts}) has no key for this host:"
        " add the host's key there, or set FLEET_GIT_KNOWN_HOSTS to a file that has it)"
    )
