"""A real container registry for the test bed: Debian's `docker-registry` (distribution 2.8).

`RegistryServer` runs it on a free loopback port over TLS (the test bed's certificate),
with one of two kinds of auth:

- `htpasswd`: Basic auth against an htpasswd file of bcrypt entries written with Python's
  `bcrypt` (what `htpasswd -B` writes);
- `token`: distribution's `auth.token` (realm, service, issuer, rootcertbundle) against
  `TokenServer`, a small Docker token service here: it checks Basic credentials (or none,
  for repositories under `public/`), grants the scope asked for, and signs an RS256 JWT
  with a test key whose self-signed certificate is in the header (`x5c`) and in the
  registry's rootcertbundle. It records every request it gets, so tests see exactly which
  credentials reached it.

`push_image` pushes a directory in OCI layout with skopeo (`tests/support/oci_images.py`
writes them), trusting the certificate through `--dest-cert-dir` and authenticating with an
auth file, never a credential on the command line.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support.servers import free_port, stop, wait_for_port
from tests.support.tls import TlsFiles

MISSING = (
    "docker-registry not found; install it with: apt-get install -y docker-registry skopeo "
    "(`make test` does this when run as root on Debian/Ubuntu)"
)
SERVICE = "fleet-test-registry"
ISSUER = "fleet-test-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """A Docker token service on a free loopback port (plain http: same host as the registry)."""

    workdir: Path
    users: dict[str, str]
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = self.workdir / "token-signer.crt"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def token(self, subject: str, access: list[dict[str, Any]], ttl: int = 300) -> str:
        header = {
            "alg": "RS256",
            "typ": "JWT",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + ttl,
            "nbf": now - 60,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64url(signature)}"

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            wanted = [a for a in actions.split(",") if a]
            allowed = wanted if user else [a for a in wanted if a == "pull"]
            if user or name.startswith("public/"):
                access.append({"type": "repository", "name": name, "actions": allowed})
        return access

    def start(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                auth = self.headers.get("Authorization")
                server.requests.append({"path": url.path, "query": query, "authorization": auth})
                user = None
                if auth and auth.startswith("Basic "):
                    name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    if server.users.get(name) != password:
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = name
                scopes = [s for value in query.get("scope", []) for s in value.split(" ")]
                token = server.token(user or "anonymous", server.grant(user, scopes))
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class RegistryServer:
    """distribution 2.8 on a free loopback port over TLS, with htpasswd or token auth."""

    workdir: Path
    tls: TlsFiles
    auth: Literal["htpasswd", "token"]
    users: dict[str, str] = field(default_factory=lambda: {"fleet": "registry-pass"})
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    token_server: TokenServer | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError(MISSING)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.auth == "htpasswd":
            lines = [
                f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"
                for user, password in self.users.items()
            ]
            (self.workdir / "htpasswd").write_text("\n".join(lines) + "\n")
            auth: dict[str, Any] = {
                "htpasswd": {"realm": "fleet-test", "path": str(self.workdir / "htpasswd")}
            }
        else:
            self.token_server = TokenServer(self.workdir / "token", self.users)
            self.token_server.start()
            auth = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(self.token_server.bundle),
                }
            }
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": True},
            },
            "http": {
                "addr": self.host,
                "tls": {"certificate": str(self.tls.cert), "key": str(self.tls.key)},
            },
            "auth": auth,
        }
        (self.workdir / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        log = open(self.workdir / "registry.log", "ab")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            [binary, "serve", str(self.workdir / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_for_port(self.port, self.proc, "docker-registry")

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None
        if self.token_server is not None:
            self.token_server.stop()

    def auth_file(self) -> Path:
        """A containers/Docker auth file with every user (for skopeo and helm pushes)."""
        user, password = next(iter(self.users.items()))
        path = self.workdir / "auth.json"
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
        path.write_text(json.dumps({"auths": {self.host: {"auth": encoded}}}))
        path.chmod(0o600)
        return path

    def cert_dir(self) -> Path:
        path = self.workdir / "certs"
        path.mkdir(exist_ok=True)
        shutil.copy(self.tls.cert, path / "ca.crt")
        return path

    def push_image(
        self, layout: Path, tag: str, target: str, *, flags: tuple[str, ...] = ()
    ) -> None:
        """`skopeo copy oci:LAYOUT:TAG docker://HOST/TARGET` (`--all`, `--format v2s2`...)."""
        policy = self.workdir / "policy.json"
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        done = subprocess.run(
            [
                "skopeo",
                "--policy",
                str(policy),
                "copy",
                "--quiet",
                *flags,
                "--dest-authfile",
                str(self.auth_file()),
                "--dest-cert-dir",
                str(self.cert_dir()),
                f"oci:{layout}:{tag}",
                f"docker://{self.host}/{target}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"skopeo push of {target} failed: {done.stderr.strip()}")


@contextmanager
def running_registry(
    workdir: Path, tls: TlsFiles, auth: Literal["htpasswd", "token"]
) -> Iterator[RegistryServer]:
    server = RegistryServer(workdir, tls, auth)
    server.start()
    try:
        yield server
    finally:
        server.stop()
