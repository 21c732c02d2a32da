"""Test tiers and the real binaries the tests use.

Tests are marked by folder: tests/unit -> `unit`, tests/integration -> `integration`,
tests/e2e -> `e2e`. The binaries built by tests/testbin/build.sh are put first on PATH, so
fleet finds the real helm and kustomize the same way a user's shell would.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTBIN = ROOT / "tests" / "testbin"
TESTBIN_BIN = TESTBIN / "bin"

# Which build.sh tool produces each binary, for the message when one is missing.
BUILD_TOOL = {
    "etcd": "etcd",
    "kube-apiserver": "kubernetes",
    "kube-controller-manager": "kubernetes",
    "kube-scheduler": "kubernetes",
    "kwok": "kwok",
    "helm": "helm",
    "kustomize": "kustomize",
    "kubectl": "kubectl",
    "gitea": "gitea",
}

os.environ["PATH"] = f"{TESTBIN_BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        tier = parts[0] if parts else ""
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))


def find_binary(name: str) -> str:
    """Path of a real binary, or fail the test naming the command that builds it."""
    found = shutil.which(name)
    if found:
        return found
    tool = BUILD_TOOL.get(name, name)
    pytest.fail(
        f"{name} not found on PATH or in {TESTBIN_BIN}; build it with: "
        f"tests/testbin/build.sh {tool}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def binary() -> Callable[[str], str]:
    """`binary("helm")` -> path to the real helm; fails with the build command if missing."""
    return find_binary


# ---------------------------------------------------------------- real servers

import sys  # noqa: E402

sys.path.insert(0, str(TESTBIN))
sys.path.insert(0, str(ROOT))

import localfleet  # noqa: E402

from tests.support.exporter import Exporter  # noqa: E402
from tests.support.gitea import GiteaServer  # noqa: E402
from tests.support.prometheus import PrometheusServer  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402
from tests.support.servers import AlertmanagerServer, GitServer, RedisServer  # noqa: E402
from tests.support.tls import TlsFiles, make_tls  # noqa: E402

# The session fleet: three clusters in two regions, the names fleet.example.yaml uses.
FLEET_CLUSTERS = [
    ("dev-eu", {"env": "dev", "region": "eu"}),
    ("prod-eu", {"env": "prod", "region": "eu"}),
    ("prod-us", {"env": "prod", "region": "us"}),
]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, stopped at the end of the session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    """A real Prometheus Alertmanager on a free loopback port, for the whole session."""
    server = AlertmanagerServer(tmp_path_factory.mktemp("alertmanager"))
    try:
        server.start()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def exporter() -> Iterator[Exporter]:
    """The test clusters' stand-in exporter (`exporter.set("canary", error_rate=0.2)`)."""
    server = Exporter()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, exporter: Exporter
) -> Iterator[PrometheusServer]:
    """A real Prometheus (Debian's package) scraping `exporter` every second, for the
    session. Tests use cluster names of their own, so their error rates do not mix."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), [exporter.target])
    try:
        server.start()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """`git daemon` on a free loopback port; tests create repositories and push to them."""
    server = GitServer(tmp_path_factory.mktemp("git-server") / "repos")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gitea(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiteaServer]:
    """A real Gitea (sqlite, one admin and its token) on a free loopback port, for the
    session; fails with the build command when the binary is missing."""
    find_binary("gitea")
    server = GiteaServer(tmp_path_factory.mktemp("gitea"))
    try:
        server.start()
    except RuntimeError as err:
        server.stop()
        pytest.fail(str(err), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The certificate the test-bed registries serve (trust it with `SSL_CERT_FILE`)."""
    return make_tls(tmp_path_factory.mktemp("registry-tls"))


def _registry(
    tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles, auth: Literal["htpasswd", "token"]
) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp(f"registry-{auth}"), tls, auth)
    try:
        server.start()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def htpasswd_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_tls: TlsFiles
) -> Iterator[RegistryServer]:
    """Debian's docker-registry (distribution 2.8) with htpasswd Basic auth, over TLS."""
    yield from _registry(tmp_path_factory, registry_tls, "htpasswd")


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_tls: TlsFiles
) -> Iterator[RegistryServer]:
    """The same with token auth, against the test bed's token server."""
    yield from _registry(tmp_path_factory, registry_tls, "token")


@dataclass(frozen=True)
class LocalCluster:
    name: str
    labels: dict[str, str]
    kubeconfig: Path
    server: str


@dataclass(frozen=True)
class LocalFleet:
    dir: Path
    clusters: dict[str, LocalCluster]


@pytest.fixture(scope="session")
def local_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    """Three real clusters (dev-eu, prod-eu, prod-us) for the whole test session.

    FLEET_TEST_FLEET_DIR reuses a fleet already started with `localfleet up` (its
    clusters.json must list the three names); otherwise one is started and stopped here.
    """
    existing = os.environ.get("FLEET_TEST_FLEET_DIR")
    if existing:
        state = localfleet.load_state(Path(existing))
        yield _as_fleet(Path(existing), state)
        return
    fleet_dir = tmp_path_factory.mktemp("localfleet")
    try:
        state = localfleet.up(fleet_dir, FLEET_CLUSTERS)
    except localfleet.LocalFleetError as err:
        pytest.fail(f"local fleet did not start: {err}", pytrace=False)
    try:
        yield _as_fleet(fleet_dir, state)
    finally:
        localfleet.down(fleet_dir)


def _as_fleet(fleet_dir: Path, state: dict[str, dict[str, object]]) -> LocalFleet:
    clusters = {
        name: LocalCluster(
            name=name,
            labels=dict(entry["labels"]),  # type: ignore[call-overload]
            kubeconfig=Path(str(entry["kubeconfig"])),
            server=str(entry["server"]),
        )
        for name, entry in state.items()
    }
    return LocalFleet(fleet_dir, clusters)
