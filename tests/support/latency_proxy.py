"""A TCP forwarder that adds a fixed latency per direction: a local cluster made "remote".

Real clusters are tens of milliseconds away, and every round trip a sync makes in sequence
costs that much. Each route listens on a free loopback port and forwards to one upstream
(an API server); bytes read in either direction are delivered `delay` seconds later, in
order, without holding the next read up (a pipe of fixed latency, not a slow link), and a
new connection waits one round trip before its first byte moves (the TCP handshake of a
real link). TLS passes through untouched: point a kubeconfig at 127.0.0.1:PORT, which is in
the API server certificate's SANs.

Run as a process of its own, so its work never competes with the measured process for the
GIL:

    python -m tests.support.latency_proxy --stats FILE --route 50:127.0.0.1:6443 [...]

prints one JSON line, the listen port of each route in order, and rewrites FILE (JSON:
per route, connections opened and bytes each way) while connections come and go.
`LatencyProxy` starts and stops it from a script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CHUNK = 65536


@dataclass
class Counters:
    """What one route carried (the benchmark divides them by units)."""

    connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


@dataclass(frozen=True)
class Route:
    delay: float  # seconds, each way
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Route:
        """`MS:HOST:PORT`, e.g. `50:127.0.0.1:6443`."""
        ms, host, port = text.split(":")
        return cls(int(ms) / 1000.0, host, int(port))


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    count: list[int],
) -> None:
    """Copy reader -> writer, each chunk delivered `delay` after it was read."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(CHUNK)
            count[0] += len(data)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    except (OSError, asyncio.IncompleteReadError):
        sender.cancel()


class Proxy:
    """Every route of one process, and their counters."""

    def __init__(self, routes: list[Route], stats: Path | None) -> None:
        self.routes = routes
        self.counters = [Counters() for _ in routes]
        self.stats = stats
        self._dirty = False

    async def _handle(
        self, index: int, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        route, counters = self.routes[index], self.counters[index]
        counters.connections += 1
        self._dirty = True
        try:
            await asyncio.sleep(2 * route.delay)  # the handshake's round trip
            up_r, up_w = await asyncio.open_connection(route.host, route.port)
        except OSError:
            client_w.close()
            return
        up, down = [0], [0]
        try:
            await asyncio.gather(
                _pipe(client_r, up_w, route.delay, up),
                _pipe(up_r, client_w, route.delay, down),
            )
        finally:
            counters.bytes_up += up[0]
            counters.bytes_down += down[0]
            self._dirty = True
            for writer in (up_w, client_w):
                writer.close()

    async def _write_stats(self) -> None:
        while self.stats is not None:
            if self._dirty:
                self._dirty = False
                tmp = self.stats.with_suffix(".tmp")
                tmp.write_text(json.dumps([asdict(c) for c in self.counters]))
                tmp.replace(self.stats)
            await asyncio.sleep(0.2)

    async def serve(self) -> None:
        servers = []
        for index in range(len(self.routes)):

            async def handle(
                r: asyncio.StreamReader, w: asyncio.StreamWriter, index: int = index
            ) -> None:
                await self._handle(index, r, w)

            servers.append(await asyncio.start_server(handle, "127.0.0.1", 0))
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        print(json.dumps(ports), flush=True)
        self._dirty = True
        await self._write_stats()
        await asyncio.Event().wait()  # no stats file: forward until killed


class LatencyProxy:
    """The proxy as a child process: `start` returns the listen ports, `counters` reads
    the stats file, `stop` ends it (by its pid)."""

    def __init__(self, routes: list[Route], workdir: Path) -> None:
        self.routes = routes
        self.stats = workdir / "latency-proxy.json"
        self.log = workdir / "latency-proxy.log"
        self.proc: subprocess.Popen[str] | None = None
        self.ports: list[int] = []

    def start(self) -> list[int]:
        args = [sys.executable, "-m", "tests.support.latency_proxy", "--stats", str(self.stats)]
        for route in self.routes:
            args += ["--route", f"{round(route.delay * 1000)}:{route.host}:{route.port}"]
        root = Path(__file__).resolve().parents[2]
        log = open(self.log, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            args, cwd=root, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
        )
        log.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"latency proxy did not start (see {self.log})")
        self.ports = [int(p) for p in json.loads(line)]
        return self.ports

    def counters(self) -> list[Counters]:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                return [Counters(**c) for c in json.loads(self.stats.read_text())]
            time.sleep(0.1)
        return [Counters() for _ in self.routes]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--route", action="append", required=True, metavar="MS:HOST:PORT")
    parser.add_argument("--stats", type=Path)
    args = parser.parse_args(argv)
    proxy = Proxy([Route.parse(text) for text in args.route], args.stats)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(proxy.serve())
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    raise SystemExit(main())
