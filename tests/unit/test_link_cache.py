"""`fleet.runtime.link_cache`: which task gets which kept connection, and when one is closed.

Connecting only loads the kubeconfig (no request), so these run without a cluster; the
cache's connections and watches serve real API servers in the distributed e2e tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.runtime.link_cache import LinkCache
from fleet.spec.definition import ClusterSpec

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: "t-{n}"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> tuple[LinkCache, ClusterSpec, Path, Clock]:
    path = tmp_path / "one.kubeconfig"
    path.write_text(KUBECONFIG.replace("{n}", "1"))
    clock = Clock()
    cache = LinkCache({"FLEET_CREDENTIALS_DIR": str(tmp_path)}, idle_seconds=60, clock=clock)
    return cache, ClusterSpec.model_validate({"name": "one"}), path, clock


def test_tasks_on_one_cluster_share_one_connection(
    setup: tuple[LinkCache, ClusterSpec, Path, Clock],
) -> None:
    cache, spec, _, _ = setup
    with cache.lend(spec) as first:
        pass
    with cache.lend(spec) as second, cache.lend(spec) as third:
        assert second is first and third is first
    assert len(cache) == 1


def test_a_rotated_kubeconfig_gets_a_new_connection(
    setup: tuple[LinkCache, ClusterSpec, Path, Clock],
) -> None:
    cache, spec, path, clock = setup
    with cache.lend(spec) as first:
        pass
    path.write_text(KUBECONFIG.replace("{n}", "22"))  # another size: another identity
    with cache.lend(spec) as second:
        assert second is not first
    clock.now = 61.0  # the old credential's connection is closed once idle
    with cache.lend(spec) as third:
        assert third is second
    assert len(cache) == 1


def test_a_link_that_found_its_cluster_down_is_not_lent_again(
    setup: tuple[LinkCache, ClusterSpec, Path, Clock],
) -> None:
    cache, spec, _, _ = setup
    with cache.lend(spec) as first:
        first.down = "connection refused"
    assert len(cache) == 0
    with cache.lend(spec) as second:
        assert second is not first and second.down is None


def test_an_idle_connection_is_closed(
    setup: tuple[LinkCache, ClusterSpec, Path, Clock], tmp_path: Path
) -> None:
    cache, spec, _, clock = setup
    (tmp_path / "two.kubeconfig").write_text(KUBECONFIG.replace("{n}", "2"))
    other = ClusterSpec.model_validate({"name": "two"})
    with cache.lend(spec):
        pass
    clock.now = 61.0
    with cache.lend(other):
        pass  # giving this back sweeps the idle one
    assert len(cache) == 1
    with cache.lend(other) as kept:
        assert kept.name == "two"
