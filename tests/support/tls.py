"""A self-signed certificate for 127.0.0.1 and HTTPS servers that use it (tests only).

Fleet accepts chart repositories and kustomize remote resources over https only, so the
test bed serves them over TLS too. Point the clients at `TlsFiles.cert` the way an
operator points them at a private CA: `SSL_CERT_FILE` (helm and kustomize, Go; Python's
ssl) and `GIT_SSL_CAINFO` (git).
"""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def trust(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make helm, kustomize, git and Python trust this certificate (and only it)."""
        monkeypatch.setenv("SSL_CERT_FILE", str(self.cert))
        monkeypatch.setenv("GIT_SSL_CAINFO", str(self.cert))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_tls(directory: Path) -> TlsFiles:
    """A self-signed EC certificate for IP 127.0.0.1 (and localhost), valid two days."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return TlsFiles(cert, key)


@contextmanager
def https_server(
    handler: type[http.server.BaseHTTPRequestHandler] | object, tls: TlsFiles
) -> Iterator[str]:
    """Serve `handler` over HTTPS on 127.0.0.1; yields the base URL (no trailing slash)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
    server.daemon_threads = True
    server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
