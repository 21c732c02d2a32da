"""A small Prometheus exporter standing in for the services of the test clusters.

It serves `/metrics` in the Prometheus text format: per cluster it knows, two counters
`http_requests_total{cluster="canary",code="200"}` and `{...,code="500"}` that grow at
`rate` requests per second, `error_rate` of them 5xx. The test sets both at run time
(`exporter.set("canary", error_rate=0.2)`), so the PromQL

    sum(rate(http_requests_total{cluster="canary",code=~"5.."}[10s]))
      / sum(rate(http_requests_total{cluster="canary"}[10s]))

gives the share that was set, once Prometheus has scraped twice (a window wholly after
the change). The counters advance with the monotonic clock at each scrape, so the rates
are exact whatever the scrape timing. `scrapes` counts the scrapes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Traffic:
    rate: float  # requests per second
    error_rate: float  # share of them answered 5xx
    ok_total: float = 0.0
    error_total: float = 0.0


class Exporter:
    """`/metrics` on a free loopback port (see the module docstring); start() and stop()."""

    def __init__(self) -> None:
        self.traffic: dict[str, Traffic] = {}
        self.scrapes = 0
        self.lock = threading.Lock()
        self.last = time.monotonic()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                data = owner.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    @property
    def target(self) -> str:
        """host:port, as a Prometheus scrape config names it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def set(
        self, cluster: str, *, error_rate: float | None = None, rate: float | None = None
    ) -> None:
        """Serve `cluster` (from now on) with this error share and request rate."""
        with self.lock:
            self._advance()
            traffic = self.traffic.setdefault(cluster, Traffic(rate=100.0, error_rate=0.0))
            if error_rate is not None:
                traffic.error_rate = error_rate
            if rate is not None:
                traffic.rate = rate

    def render(self) -> str:
        """The exposition text (one scrape)."""
        with self.lock:
            self._advance()
            self.scrapes += 1
            lines = [
                "# HELP http_requests_total Requests served, by cluster and status code.",
                "# TYPE http_requests_total counter",
            ]
            for cluster, traffic in sorted(self.traffic.items()):
                lines.append(
                    f'http_requests_total{{cluster="{cluster}",code="200"}} {traffic.ok_total}'
                )
                lines.append(
                    f'http_requests_total{{cluster="{cluster}",code="500"}} {traffic.error_total}'
                )
            return "\n".join(lines) + "\n"

    def _advance(self) -> None:
        now = time.monotonic()
        elapsed, self.last = now - self.last, now
        for traffic in self.traffic.values():
            served = traffic.rate * elapsed
            traffic.error_total += served * traffic.error_rate
            traffic.ok_total += served * (1 - traffic.error_rate)
