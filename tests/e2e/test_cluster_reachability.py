"""`fleet_cluster_reachable` and `fleet_cluster_last_contact_timestamp_seconds` in `fleet
serve`'s /metrics, with real processes: a cluster whose kube-apiserver is stopped reads 0
while the other reads 1, and 1 again, with a newer last contact, once it is back.

Its own small fleet: dev-eu of the session's test fleet and one extra cluster (`edge-us`,
started for this module, so stopping it harms no other test). The workers' drift checks
(every second) are the contacts that notice the outage and the recovery.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import localfleet
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fleet.events.sinks import RedisEventLog
from fleet.runtime.state_cache import connect_redis
from tests.conftest import LocalFleet
from tests.e2e.dist_support import Distributed, distributed, wait_until
from tests.e2e.three_region_support import redis_db
from tests.support.servers import GitServer, RedisServer

pytestmark = pytest.mark.timeout(300)
REDIS_DB = 12  # this module's own database


@pytest.fixture(scope="module")
def edge_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One extra cluster of this module's own (region us); its localfleet directory."""
    fleet_dir = tmp_path_factory.mktemp("edge-fleet")
    try:
        localfleet.up(fleet_dir, [("edge-us", {"region": "us"})])
    except localfleet.LocalFleetError as err:
        pytest.fail(f"the edge cluster did not start: {err}", pytrace=False)
    try:
        yield fleet_dir
    finally:
        localfleet.down(fleet_dir)


def metrics(dist: Distributed) -> tuple[dict[str, float], dict[str, float]]:
    """(cluster -> fleet_cluster_reachable, cluster -> last contact) from /metrics."""
    text = dist.get("/metrics") or ""
    families = {f.name: f for f in text_string_to_metric_families(text)}
    found = []
    for name in ("fleet_cluster_reachable", "fleet_cluster_last_contact_timestamp_seconds"):
        family = families.get(name)
        found.append({s.labels["cluster"]: s.value for s in family.samples} if family else {})
    return found[0], found[1]


def test_a_stopped_cluster_reads_unreachable_until_it_is_back(
    local_fleet: LocalFleet,
    git_server: GitServer,
    redis_server: RedisServer,
    edge_cluster: Path,
    tmp_path: Path,
) -> None:
    sfx = uuid.uuid4().hex[:6]
    tree = git_server.create_repo(f"reach-{sfx}", tmp_path / "repo")
    definition = {
        "apiVersion": "fleet-gitops.io/v1alpha1", "kind": "Fleet", "name": f"reach-{sfx}",
        "clusters": [{"name": "dev-eu", "labels": {"region": "eu"}},
                     {"name": "edge-us", "labels": {"region": "us"}}],
        "bundles": {"paths": ["apps/*"]},
    }  # fmt: skip
    tree.write("fleet.yaml", yaml.safe_dump(definition, sort_keys=False))
    tree.write("apps/cfg/fleet.yaml", f"defaultNamespace: reach-{sfx}\n")
    tree.write("apps/cfg/cm.yaml", "apiVersion: v1\nkind: ConfigMap\n"
               "metadata: {name: cfg}\ndata: {k: v}\n")  # fmt: skip
    commit = tree.commit_and_push("one ConfigMap on both clusters")
    url = redis_db(redis_server, REDIS_DB)
    with distributed(
        tree.remote_url, tmp_path / "logs", url, local_fleet.dir,
        FLEET_KUBECONFIG_EDGE_US=str(edge_cluster / "edge-us.kubeconfig"),
        FLEET_RETRY_BASE="1", FLEET_FAILURE_COOLDOWN="2",
    ) as dist:  # fmt: skip
        dist.start_worker("eu", "eu")
        dist.start_worker("us", "us")
        dist.start_serve("--poll-interval", "3600", "--drift-interval", "1")
        dist.wait_converged(commit)
        wait_until(lambda: metrics(dist)[0] == {"dev-eu": 1, "edge-us": 1}, 60,
                   "both clusters reachable", dist)  # fmt: skip
        stopped = time.time()
        localfleet.stop_component(edge_cluster, "edge-us", "kube-apiserver")
        try:
            wait_until(lambda: metrics(dist)[0] == {"dev-eu": 1, "edge-us": 0}, 90,
                       "edge-us unreachable in /metrics", dist)  # fmt: skip
            contact = metrics(dist)[1]
            assert contact["edge-us"] < stopped + 1 < contact["dev-eu"] + 1  # dev-eu: still seen
        finally:
            localfleet.start_component(edge_cluster, "edge-us", "kube-apiserver")
        wait_until(lambda: metrics(dist)[0] == {"dev-eu": 1, "edge-us": 1}, 120,
                   "edge-us reachable again", dist)  # fmt: skip
        assert metrics(dist)[1]["edge-us"] > max(contact["edge-us"], stopped)  # a new contact
        outages = [
            e.event.type.value
            for e in RedisEventLog(connect_redis(url), f"reach-{sfx}").read()
            if e.event.cluster == "edge-us" and e.event.type.value.startswith("cluster.")
        ]
        assert outages == ["cluster.unreachable", "cluster.recovered"]  # once each
