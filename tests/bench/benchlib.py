"""What the sync benchmarks share: bundles, fleet definitions, a bed of local clusters and a
real `git daemon`, timed passes, the machine's load.

Every figure a benchmark prints is read next to the load it ran under (`load()`): the
machine is shared, so the scripts print numbers and ratios, never a verdict.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT / "tests" / "testbin", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import localfleet  # noqa: E402

from fleet.runtime.embedded import SyncReport, sync_fleet  # noqa: E402
from tests.support.servers import GitServer, GitWorkTree  # noqa: E402

Labels = dict[str, str]


def web_bundle(ns: str) -> str:
    """A Deployment (one pod), a (headless) Service and a ConfigMap in namespace `ns`."""
    labels = {"app": "web"}
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": ns},
            # headless: a local cluster's service range has 254 addresses, and the
            # benchmarks deploy more Services than that to one cluster over their rounds
            "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": 80}]},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web", "namespace": ns},
            "data": {"greeting": "hello"},
        },
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def configmap_bundle(name: str, value: str = "one") -> str:
    """One ConfigMap in `default`: the cheapest unit, for counting a pass's fixed costs."""
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"value": value},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def cluster_specs(count: int, prefix: str = "c") -> list[tuple[str, Labels]]:
    """`count` clusters, alternately in regions eu and us (the workers' queues)."""
    regions = ["eu", "us"]
    return [(f"{prefix}{i}", {"env": "dev", "region": regions[i % 2]}) for i in range(count)]


def fleet_yaml(
    name: str, clusters: Sequence[tuple[str, Labels]], paths: str | None = "apps/*"
) -> str:
    """A definition; `paths` None: no bundles yet (a bundle path must match something)."""
    rows = "".join(f"  - name: {c}\n    labels: {json.dumps(labels)}\n" for c, labels in clusters)
    bundles = f"bundles:\n  paths: ['{paths}']\n" if paths else ""
    return (
        f"apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: {name}\n"
        f"clusters:\n{rows}{bundles}"
    )


def write_web_fleet(
    work: GitWorkTree, name: str, clusters: Sequence[tuple[str, Labels]], bundles: int
) -> None:
    """A fleet `name` of `bundles` web bundles, each in a namespace of its own."""
    work.write("fleet.yaml", fleet_yaml(name, clusters))
    for index in range(bundles):
        work.write(f"apps/b{index}/app.yaml", web_bundle(f"{name}-{index}"))


@dataclass
class Bed:
    """Local clusters + a git daemon in a temporary directory."""

    tmp: Path
    fleet_dir: Path  # kubeconfigs: NAME.kubeconfig (what FLEET_CREDENTIALS_DIR points at)
    server: GitServer
    clusters: list[tuple[str, Labels]]

    def repo(self, name: str) -> GitWorkTree:
        return self.server.create_repo(name, self.tmp / "work" / name)

    def url(self, name: str) -> str:
        return self.server.url(name)


@contextmanager
def bed(prefix: str, clusters: Sequence[tuple[str, Labels]], *, nodes: int = 1) -> Iterator[Bed]:
    """Start the clusters (each with `nodes` fake nodes) and a git daemon; set
    FLEET_CREDENTIALS_DIR and a cold FLEET_CACHE_DIR; stop everything on the way out."""
    localfleet.FAKE_NODES = nodes
    with tempfile.TemporaryDirectory(prefix=f"fleet-bench-{prefix}-") as tmp_text:
        tmp = Path(tmp_text)
        fleet_dir = tmp / "clusters"
        started = time.perf_counter()
        if clusters:
            print(f"  starting {len(clusters)} local clusters ...", flush=True)
            localfleet.up(fleet_dir, list(clusters))
            print(f"  clusters up in {time.perf_counter() - started:.0f} s ({load()})", flush=True)
        server = GitServer(tmp / "git" / "repos")
        server.start()
        saved = {k: os.environ.get(k) for k in ("FLEET_CREDENTIALS_DIR", "FLEET_CACHE_DIR")}
        os.environ["FLEET_CREDENTIALS_DIR"] = str(fleet_dir)
        os.environ["FLEET_CACHE_DIR"] = str(tmp / "cache")
        try:
            yield Bed(tmp, fleet_dir, server, list(clusters))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            server.stop()
            if clusters:
                localfleet.down(fleet_dir)


def timed_sync(url: str, **kwargs: Any) -> tuple[float, SyncReport]:
    """One embedded pass (`fleet sync`'s), its wall seconds and its report."""
    started = time.perf_counter()
    report = sync_fleet(url, branch="main", **kwargs)
    return time.perf_counter() - started, report


def push_and_sync(work: GitWorkTree, url: str, **kwargs: Any) -> tuple[float, SyncReport]:
    """Commit-to-Ready: seconds from the push until the pass returns (every unit Ready)."""
    pushed = time.perf_counter()
    work.commit_and_push("bench")
    report = sync_fleet(url, branch="main", **kwargs)
    return time.perf_counter() - pushed, report


def unit_requests(report: SyncReport) -> float:
    """Mean API requests of one unit's sync (the engine's counters, health watch excluded)."""
    counts = [r.requests for r in report.results.values()]
    return sum(counts) / len(counts) if counts else 0.0


def ready(report: SyncReport) -> str:
    return "all Ready" if report.ok else "NOT all Ready"


def load() -> str:
    """The 1-minute load average, for the line beside each figure."""
    return f"load {os.getloadavg()[0]:.2f}"


def self_peak_rss_mib() -> float:
    """This process's peak RSS (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vm_hwm_mib(pid: int) -> float:
    """A live process's peak RSS (VmHWM of /proc/PID/status), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def retarget_kubeconfigs(src: Path, dst: Path, servers: Mapping[str, str]) -> Path:
    """Copies of src/NAME.kubeconfig in dst with the server replaced (cluster -> URL)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name, server in servers.items():
        config = json.loads((src / f"{name}.kubeconfig").read_text())  # localfleet writes JSON
        config["clusters"][0]["cluster"]["server"] = server
        target = dst / f"{name}.kubeconfig"
        target.write_text(json.dumps(config))
        target.chmod(0o600)
    return dst


def server_port(fleet_dir: Path, name: str) -> int:
    state = localfleet.load_state(fleet_dir.resolve())
    return int(str(state[name]["server"]).rsplit(":", 1)[1])


@dataclass
class Traced:
    thread: str
    started: float
    seconds: float
    method: str
    path: str


@contextmanager
def trace_requests() -> Iterator[list[Traced]]:
    """Every `ClusterConnection.request` of the block: thread, start, duration, method and
    path (bench instrumentation, to show where a unit's sequential round trips are)."""
    import threading

    from fleet.engine.kube import ClusterConnection

    original = ClusterConnection.request
    seen: list[Traced] = []

    def request(self: ClusterConnection, method: str, path: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, method, path, **kwargs)
        finally:
            name = threading.current_thread().name
            seen.append(Traced(name, started, time.perf_counter() - started, method, path))

    ClusterConnection.request = request  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        ClusterConnection.request = original  # type: ignore[method-assign]


def session_peaks_mib(session: int) -> list[float]:
    """VmHWM of each live process of a session (a `fleet worker` and what it started)."""
    peaks = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:
            peaks.append(vm_hwm_mib(int(stat.parent.name)))
    return peaks
