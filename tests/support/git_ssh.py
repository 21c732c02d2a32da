"""A real OpenSSH server for git over SSH: `sshd` on 127.0.0.1 with its own config and keys.

The `git daemon` and `git http-backend` servers cannot exercise fleet's SSH path (a private
key handed to ssh with `-i`, a known_hosts file, strict host key checking); only a real sshd
can refuse an unknown host key or an unauthorised key the way GitHub or GitLab do.

Everything the server uses lives in one temporary directory (mode 0700): the config, a fresh
ed25519 host key, `authorized_keys`, the pid file and the log (`sshd -D -e` writes it to
stderr, which goes to `sshd.log`). It listens on 127.0.0.1 and a free port, lets in only the
user running the tests (root in CI, hence `PermitRootLogin prohibit-password`) and only with
a public key.

Choices a reader may wonder about:

- `StrictModes no`: pytest's temporary directories live under /tmp (mode 1777), and
  StrictModes rejects an authorized_keys file with a group- or world-writable directory
  anywhere above it, which no test directory can avoid. The check protects a real user's
  home from other local users; this file is written by the test process itself, for a server
  that only listens on loopback for the lifetime of a test module.
- Every authorized key is `restrict`ed (no pty, no forwarding) and has a forced `command=`:
  a small shell wrapper that runs `git-upload-pack` or `git-receive-pack` on a repository
  under `base` and refuses anything else, the way a git host's ssh front end does.
- `AcceptEnv GIT_PROTOCOL` lets git negotiate protocol v2 over SSH as it does with real hosts.
- As root, sshd needs its privilege separation directory `/run/sshd`; Debian's service
  creates it at start (systemd `RuntimeDirectory`), a container without systemd has none,
  so `start()` creates it (root-owned, 0755) and leaves it for the next run.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.servers import free_port, run_git, stop, wait_for_port

SSHD = "/usr/sbin/sshd"
MISSING_SSHD = (
    f"{SSHD} not found: the git-over-SSH tests need a real OpenSSH server; install it with: "
    "apt-get install -y openssh-server (tests/testbin/ensure-system-packages.sh does this "
    "when run as root on Debian/Ubuntu)"
)
PRIVSEP_DIR = Path("/run/sshd")

# sshd runs the forced command through the user's shell with the client's request in
# SSH_ORIGINAL_COMMAND. Git sends `git-upload-pack '/abs/repo.git'` (receive-pack for a
# push), the path single-quoted; a quote or `..` inside the path is refused rather than parsed.
GIT_ONLY_WRAPPER = """#!/bin/sh
base={base}
refuse() {{ echo "fleet test sshd: $1" >&2; exit 1; }}
case "$SSH_ORIGINAL_COMMAND" in
  "git-upload-pack '"*"'") verb=git-upload-pack ;;
  "git-receive-pack '"*"'") verb=git-receive-pack ;;
  *) refuse "only git fetch and push are allowed" ;;
esac
path=${{SSH_ORIGINAL_COMMAND#"$verb '"}}
path=${{path%"'"}}
case "$path" in *"'"*|*..*) refuse "bad repository path" ;; esac
case "$path" in "$base"/*.git) ;; *) refuse "no repository $path here" ;; esac
exec "$verb" "$path"
"""


def current_user() -> str:
    """The account sshd will log the client in as: whoever runs the tests.

    From the password database, not `getpass.getuser()`: that trusts $USER/$LOGNAME, which
    sudo or a container may leave naming another account, and sshd goes by the real uid.
    """
    return pwd.getpwuid(os.geteuid()).pw_name


def generate_key(path: Path, comment: str = "fleet-tests") -> Path:
    """A new unencrypted ed25519 key pair at `path` (+ `.pub`); returns the private key path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return path


def public_key(private_key: Path) -> str:
    """`type base64` of the key pair's public half (no comment)."""
    kind, blob = Path(f"{private_key}.pub").read_text().split()[:2]
    return f"{kind} {blob}"


def private_key_material(private_key: Path) -> list[str]:
    """The secret lines of a private key file (its base64 body, not the BEGIN/END armour).

    For tests asserting that no error or log ever contains the key itself.
    """
    return [
        line.strip()
        for line in private_key.read_text().splitlines()
        if line.strip() and not line.startswith("-----")
    ]


@dataclass
class GitSshServer:
    """A real `sshd` on 127.0.0.1 serving bare repositories under `base` to authorized keys."""

    base: Path
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=current_user)
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    # ------------------------------------------------------------------ addresses

    def url(self, name: str) -> str:
        """`ssh://user@127.0.0.1:PORT/abs/path/name.git`: the repository's absolute path."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.base / name}.git"

    @property
    def known_hosts_line(self) -> str:
        """The known_hosts entry a client needs to trust this server (and only it)."""
        return f"[127.0.0.1]:{self.port} {public_key(self._dir / 'host_ed25519')}\n"

    def write_known_hosts(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.known_hosts_line)
        return path

    def ssh_command(self, key: Path, known_hosts: Path) -> str:
        """A GIT_SSH_COMMAND for the tests' own git calls (pushing), reading no ssh config."""
        return shlex.join(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                str(key),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                f"UserKnownHostsFile={known_hosts}",
                "-o",
                "GlobalKnownHostsFile=none",
            ]
        )

    # ------------------------------------------------------------------ life cycle

    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise RuntimeError("the sshd test server is not started")
        return self.workdir

    @property
    def log_path(self) -> Path:
        return self._dir / "sshd.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Write the config and host key, start `sshd -D -e`, wait until it accepts."""
        if not os.access(SSHD, os.X_OK):
            pytest.fail(MISSING_SSHD, pytrace=False)
        if shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
            pytest.fail(
                "ssh and ssh-keygen not found; install them with: apt-get install -y "
                "openssh-client",
                pytrace=False,
            )
        self.base.mkdir(parents=True, exist_ok=True)
        if re.search(r"[\"\\\s]", str(self.base)):
            raise ValueError(f"the repository base {self.base} must not contain quotes or spaces")
        self.workdir = Path(tempfile.mkdtemp(prefix="fleet-sshd-"))  # 0700, ours
        if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
            PRIVSEP_DIR.mkdir(mode=0o755)
        host_key = generate_key(self._dir / "host_ed25519", "fleet-test-sshd")
        wrapper = self._dir / "git-only"
        wrapper.write_text(GIT_ONLY_WRAPPER.format(base=shlex.quote(str(self.base))))
        wrapper.chmod(0o755)
        (self._dir / "authorized_keys").write_text("")
        config = self._dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {host_key}",
                    f"PidFile {self._dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self._dir / 'authorized_keys'}",
                    "StrictModes no",  # see the module docstring
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    f"AllowUsers {self.user}",
                    "UsePAM no",
                    "PrintMotd no",
                    "AcceptEnv GIT_PROTOCOL",
                    "",
                ]
            )
        )
        check = subprocess.run(
            [SSHD, "-t", "-f", str(config)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"sshd rejects its test config: {check.stderr.strip()}")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_for_port(self.port, self.proc, "sshd")
        except RuntimeError as err:
            self.stop()
            raise RuntimeError(f"{err}; sshd.log: {self.log_text().strip()}") from None

    def stop(self) -> None:
        """Stop this sshd by its pid (sessions it forked end with their connections)."""
        stop(self.proc)
        self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # ------------------------------------------------------------------ keys and repos

    def authorize(self, private_key: Path) -> None:
        """Let the key pair's owner fetch and push git repositories under `base`, nothing else."""
        wrapper = self._dir / "git-only"
        line = f'restrict,command="{wrapper}" {public_key(private_key)} fleet-test-client\n'
        with open(self._dir / "authorized_keys", "a") as keys:
            keys.write(line)

    def create_bare(self, name: str) -> Path:
        bare = self.base / f"{name}.git"
        run_git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        return bare
