"""A cluster's independent bundles are applied at the same time; dependsOn still orders.

`fleet sync` on one real cluster, four bundles whose Deployments each take a few seconds to
become available (minReadySeconds) and a fifth that depends on one of them. The progress
lines, stamped as they arrive, give each unit's interval (from "syncing" to its result):
the independent ones overlap, and the dependent one starts only after its dependency is
Ready.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from fleet.engine.apply import ensure_namespaces
from fleet.engine.identity import Claims, Owner
from fleet.engine.kube import ClusterConnection, ObjectRef
from fleet.engine.unit import sync_unit
from fleet.manifest import Manifest
from fleet.runtime.embedded import sync_fleet
from fleet.spec.bundle_options import BundleOptions
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.safe_support import SafeFleet, describe, new_fleet
from tests.e2e.sync_support import fleet_env  # noqa: F401  (fixture)
from tests.support.servers import GitServer

pytestmark = pytest.mark.usefixtures("fleet_env")

INDEPENDENT = ["a", "b", "c", "d"]


def deployment(ns: str, min_ready: int) -> dict[str, object]:
    labels = {"app": "slow"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "slow", "namespace": ns},
        "spec": {
            "replicas": 1,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.invalid/slow:1"}]},
            },
        },
    }


@pytest.fixture
def fleet(git_server: GitServer, local_fleet: LocalFleet, tmp_path: Path) -> Iterator[SafeFleet]:
    made = new_fleet(git_server, local_fleet, tmp_path / "repo", prefix="conc")
    yield made
    for name in [*INDEPENDENT, "after"]:
        with contextlib.suppress(client.ApiException):
            made.core().delete_namespace(made.ns(name))
    made.conn.close()


def intervals(lines: list[tuple[float, str]], cluster: str) -> dict[str, tuple[float, float]]:
    """bundle -> (start, end) from `<cluster>/<bundle>: syncing` and its result line."""
    start: dict[str, float] = {}
    found: dict[str, tuple[float, float]] = {}
    for stamp, line in lines:
        head, _, rest = line.partition(": ")
        if not head.startswith(f"{cluster}/"):
            continue
        bundle = head.split("/", 1)[1]
        if rest.startswith("syncing"):
            start[bundle] = stamp
        elif bundle in start and bundle not in found:
            found[bundle] = (start[bundle], stamp)
    return found


def test_independent_bundles_overlap_and_depends_on_still_orders(fleet: SafeFleet) -> None:
    for name in INDEPENDENT:
        fleet.write(f"apps/{name}/fleet.yaml", {"defaultNamespace": fleet.ns(name)})
        fleet.write(f"apps/{name}/app.yaml", deployment(fleet.ns(name), 3))
    fleet.write(
        "apps/after/fleet.yaml",
        {"defaultNamespace": fleet.ns("after"), "dependsOn": [{"name": "apps-a"}]},
    )
    fleet.write("apps/after/app.yaml", deployment(fleet.ns("after"), 0))
    fleet.commit("four independent bundles and one that depends on apps-a")

    lines: list[tuple[float, str]] = []
    report = sync_fleet(
        fleet.tree.remote_url,
        progress=lambda line: lines.append((time.monotonic(), line)),
        cluster_concurrency=8,
    )
    assert report.ok, describe(report)
    spans = intervals(lines, "dev-eu")
    assert set(spans) == {f"apps-{n}" for n in [*INDEPENDENT, "after"]}, lines

    # every independent unit was still running when the last of them started: they overlap
    independent = [spans[f"apps-{n}"] for n in INDEPENDENT]
    last_start = max(s for s, _ in independent)
    assert all(end > last_start for _, end in independent), spans
    # ... and each waited minReadySeconds (3 s), so sequential would have been >= 12 s;
    # the dependent one starts after its dependency is done
    assert spans["apps-after"][0] >= spans["apps-a"][1], spans


def test_one_at_a_time_when_asked(fleet: SafeFleet) -> None:
    for name in INDEPENDENT[:3]:
        fleet.write(f"apps/{name}/fleet.yaml", {"defaultNamespace": fleet.ns(name)})
        fleet.write(f"apps/{name}/app.yaml", deployment(fleet.ns(name), 1))
    fleet.commit("three bundles")
    lines: list[tuple[float, str]] = []
    report = sync_fleet(
        fleet.tree.remote_url,
        progress=lambda line: lines.append((time.monotonic(), line)),
        cluster_concurrency=1,
    )
    assert report.ok, describe(report)
    spans = sorted(intervals(lines, "dev-eu").values())
    assert len(spans) == 3
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2)), spans  # no overlap


class _SiblingCreatesFirst(ClusterConnection):
    """A connection on which, just before the first write of the Namespace `name`, a
    sibling unit (bundle `other`) creates that namespace for its own objects: the
    interleaving two units synced at the same time on one cluster can hit."""

    other: Owner
    target: str
    done: bool = False

    def apply(
        self, manifest: Manifest, *, force: bool, dry_run: bool = False, field_manager: str
    ) -> Manifest:
        ref = ObjectRef.of(manifest)
        if not self.done and ref.kind == "Namespace" and ref.name == self.target:
            self.done = True
            created, errors = ensure_namespaces(self, self.other, {self.target})
            assert created == [self.target] and not errors
        return super().apply(manifest, force=force, dry_run=dry_run, field_manager=field_manager)


def test_a_namespace_a_sibling_created_a_moment_ago_is_taken_over_by_its_declaring_bundle(
    fleet: SafeFleet, local_fleet: LocalFleet
) -> None:
    """infra declares Namespace shop; web only lives in it (fleet creates it for web).
    Synced together, web's creation lands between infra's read and infra's write: infra
    decides again on what is there and takes the namespace over, instead of reporting
    that two bundles render it (web never rendered it)."""
    shop = fleet.ns("a")  # cleaned up by the fixture
    kubeconfig = local_fleet.clusters["dev-eu"].kubeconfig
    conn = _SiblingCreatesFirst.from_kubeconfig(kubeconfig, name="dev-eu")
    assert isinstance(conn, _SiblingCreatesFirst)
    conn.other, conn.target = Owner("apps-web", fleet.name), shop
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": shop}}
    meta = {"name": "web", "namespace": shop}
    web_cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
    claims = Claims.of([("apps-infra", [ns], ""), ("apps-web", [web_cm], "")])
    try:
        result = sync_unit(conn, "apps-infra", "1" * 64, "c1", [ns], BundleOptions(),
                           fleet=fleet.name, claims=lambda: claims)  # fmt: skip
    finally:
        conn.close()
    assert conn.done
    assert result.state is BundleState.READY, result.message
    live = fleet.live(ObjectRef("v1", "Namespace", None, shop))
    assert live is not None
    assert Owner.of_live(live) == Owner("apps-infra", fleet.name)
