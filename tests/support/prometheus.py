"""A real Prometheus for the gate tests: Debian's `prometheus` package on a free port.

It keeps its TSDB in a temporary directory, scrapes every target each second and has
`--web.enable-lifecycle`, so `scrape(...)` can point it at other exporters (a config
rewrite and `POST /-/reload`) without a restart. `query` runs an instant query the way
the gate does, `query_range` a range query the way Grafana's time series panels do;
`wait_scraped` waits until Prometheus holds a few samples of a cluster's series, the point
from which `rate(...[10s])` over them means something.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import free_port, stop, wait_for_port

MISSING_PROMETHEUS = (
    "prometheus not found; install it with: apt-get install -y prometheus "
    "(`make test` does this when run as root on Debian/Ubuntu)"
)
SCRAPE_INTERVAL = "1s"


def find_prometheus() -> str | None:
    """Debian's /usr/bin/prometheus, or one on PATH."""
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def scrape_config(targets: list[str]) -> str:
    return json.dumps(
        {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": [
                {
                    "job_name": "exporter",
                    "scrape_interval": SCRAPE_INTERVAL,
                    "scrape_timeout": SCRAPE_INTERVAL,
                    "static_configs": [{"targets": targets}],
                }
            ],
        },
        indent=2,
    )  # YAML is a superset of JSON


@dataclass
class PrometheusServer:
    """A real Prometheus on a free loopback port, scraping `targets` every second."""

    workdir: Path
    targets: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.workdir / "prometheus.yml"

    def start(self) -> None:
        binary = find_prometheus()
        if binary is None:
            raise RuntimeError(MISSING_PROMETHEUS)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(scrape_config(self.targets))
        log = open(self.workdir / "prometheus.log", "ab")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_for_port(self.port, self.proc, "prometheus", timeout=60)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus was not ready within {timeout}s")
            time.sleep(0.1)

    def scrape(self, *targets: str) -> None:
        """Scrape these host:port targets from now on (reloads the configuration)."""
        self.targets = list(targets)
        self.config.write_text(scrape_config(self.targets))
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result of an instant query (a vector's samples), raising on an error."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def answer(self, path: str, **params: str) -> dict[str, Any]:
        """Prometheus's whole JSON answer to an API GET (status error included)."""
        url = f"{self.url}{path}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                body: dict[str, Any] = json.loads(answer.read())
        except urllib.error.HTTPError as err:  # 400 / 422: a query that does not parse
            body = json.loads(err.read())
        return body

    def query_range(self, promql: str, start: float, end: float, step: str) -> list[dict[str, Any]]:
        """The result of a range query (a matrix, as Grafana asks for a time series panel),
        raising on an error."""
        body = self.answer(
            "/api/v1/query_range", query=promql, start=str(start), end=str(end), step=step
        )
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_scraped(self, cluster: str, times: int = 2, timeout: float = 60) -> None:
        """Until Prometheus holds `times` samples of the exporter's series for `cluster`
        (scraped at least that many times since the cluster appeared)."""
        promql = f'min(count_over_time(http_requests_total{{cluster="{cluster}"}}[1m]))'
        deadline = time.monotonic() + timeout
        while True:
            found = self.query(promql)
            if found and float(found[0]["value"][1]) >= times:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"prometheus did not scrape {cluster!r} {times} times in {timeout}s"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None
