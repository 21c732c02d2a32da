"""An HTTPS Helm chart repository for tests: `helm package` + `helm repo index` of chart
`demo` (a ConfigMap saying its version and a marker), served from a directory, with a
switch that makes every request answer 503 (a chart server outage)."""

from __future__ import annotations

import functools
import http.server
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.tls import https_server, make_tls


class _Handler(http.server.SimpleHTTPRequestHandler):
    outage = False  # set on the class: every request answers 503 while True

    def do_GET(self) -> None:
        if type(self).outage:
            self.send_error(503, "Service Unavailable")
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class ChartRepo:
    helm: str
    served: Path
    src: Path
    url: str
    handler: type[_Handler]

    def publish(self, version: str, marker: str = "first") -> None:
        """Package chart `demo` at `version` (a ConfigMap saying both) and index again."""
        chart = self.src / f"{version}-{marker}"
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: demo\nversion: {version}\n")
        (chart / "templates" / "cm.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo}\n"
            f'data: {{chart: "{version}", marker: "{marker}"}}\n'
        )
        run = functools.partial(subprocess.run, check=True, capture_output=True)
        run([self.helm, "package", str(chart), "-d", str(self.served)])
        run([self.helm, "repo", "index", str(self.served), "--url", self.url])


def serve_chart_repo(
    helm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ChartRepo]:
    """Chart `demo` 0.1.0, 0.2.0 and 1.0.0 over HTTPS (helm and fleet trust its certificate
    through SSL_CERT_FILE; helm's homes in `tmp_path`)."""
    monkeypatch.delenv("FLEET_HELM", raising=False)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "helm-home" / name.lower()))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "tls" / "server.crt"))
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "cache"))
    served = tmp_path / "served"
    served.mkdir(parents=True)
    handler = type("Handler", (_Handler,), {"outage": False})
    serve = functools.partial(handler, directory=str(served))
    with https_server(serve, make_tls(tmp_path / "tls")) as url:
        repo = ChartRepo(helm, served, tmp_path / "src", url, handler)
        for version in ("0.1.0", "0.2.0", "1.0.0"):
            repo.publish(version)
        yield repo
