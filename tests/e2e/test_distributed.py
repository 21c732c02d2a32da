"""Acceptance of the distributed mode: real Redis, `fleet serve`, two `fleet worker`s.

The embedded acceptance scenario (tests/e2e/test_sync_embedded.py) driven by pushes to a
real git daemon and signed webhooks: the eu worker applies only the eu clusters and the
us worker only prod-us; a values change re-applies only the affected units; a removed
bundle is removed from its clusters. Runs in file order on one module-scoped setup.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import yaml

from fleet.runtime.state_cache import StateCache, connect_redis
from tests.conftest import LocalFleet
from tests.e2e.dist_support import Distributed, distributed, wait_until
from tests.e2e.engine_support import apps_api, core_api
from tests.e2e.sync_support import demo_repo, deployed, suffix
from tests.support.servers import GitServer, GitWorkTree, RedisServer

CLUSTERS = ("dev-eu", "prod-eu", "prod-us")
REDIS_DB = 3  # this module's own database: its queues and keys are nobody else's


@dataclass
class Scenario:
    dist: Distributed
    tree: GitWorkTree
    sfx: str
    cache: StateCache
    commit: str
    seconds: dict[str, float] = field(default_factory=dict)

    def name(self, base: str) -> str:
        return f"{base}-{self.sfx}"

    def push(self, message: str) -> str:
        started = time.monotonic()
        self.commit = self.tree.commit_and_push(message)
        assert self.dist.push_webhook(self.commit) == 202
        self.dist.wait_converged(self.commit)
        self.seconds[message] = time.monotonic() - started
        return self.commit


@pytest.fixture(scope="module")
def scenario(
    local_fleet: LocalFleet,
    git_server: GitServer,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scenario]:
    sfx = suffix()
    tree = demo_repo(git_server, tmp_path_factory.mktemp("work") / "repo", sfx)
    commit = tree.commit_and_push("the demo fleet")
    url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    logs = tmp_path_factory.mktemp("distributed")
    with distributed(tree.remote_url, logs, url, local_fleet.dir) as dist:
        dist.start_worker("eu", "eu")
        dist.start_worker("us", "us")
        started = time.monotonic()
        dist.start_serve("--poll-interval", "3600", "--drift-interval", "3600")
        dist.wait_converged(commit)
        scenario = Scenario(dist, tree, sfx, StateCache(connect_redis(url), f"sync-{sfx}"), commit)
        scenario.seconds["first"] = time.monotonic() - started
        yield scenario
        print(f"\ndistributed commit-to-converged seconds: {scenario.seconds}")


def test_every_bundle_lands_where_its_targets_select_and_is_ready(
    scenario: Scenario, local_fleet: LocalFleet
) -> None:
    n = scenario.name
    status = scenario.dist.status()
    assert {(u["bundle"], u["cluster"]) for u in status["units"]} == {
        (n(b), c) for b in ("web", "guestbook", "platform-config") for c in CLUSTERS
    }
    assert {u["state"] for u in status["units"]} == {"Ready"}
    assert status["state"] == "Ready" and status["source"]["revision"] == scenario.commit
    for cluster in CLUSTERS:
        prod = cluster.startswith("prod")
        apps, core = apps_api(local_fleet, cluster), core_api(local_fleet, cluster)
        assert apps.read_namespaced_deployment("web", n("web")).spec.replicas == (3 if prod else 1)
        config = core.read_namespaced_config_map("web-config", n("web")).data
        assert config["region"] == cluster.split("-")[1]
        guestbook = apps.read_namespaced_deployment("guestbook", n("guestbook"))
        assert guestbook.metadata.labels["env"] == ("prod" if prod else "dev")
        platform = core.read_namespaced_config_map("platform-config", n("platform"))
        assert platform.data["logLevel"] == ("warn" if prod else "debug")
        runs = deployed(local_fleet, cluster)
        assert runs[n("web")].commit == scenario.commit
        assert runs[n("web")].fleet == f"sync-{scenario.sfx}"


def test_each_region_worker_applied_only_its_own_clusters(scenario: Scenario) -> None:
    actual = scenario.cache.actual(CLUSTERS)
    by = {key: rec.by for key, rec in actual.items()}
    assert len(by) == 9
    for (_, cluster), worker in by.items():
        assert worker == ("us@test" if cluster == "prod-us" else "eu@test"), by
    eu_log = scenario.dist.workers["eu"].log.read_text()
    assert "prod-us/" not in eu_log and "dev-eu/" in eu_log


def test_metrics_are_prometheus_text(scenario: Scenario) -> None:
    text = scenario.dist.get("/metrics") or ""
    assert "# TYPE fleet_units gauge" in text
    assert 'fleet_units{state="Ready"} 9' in text
    applies = re.search(r'fleet_tasks_dispatched_total\{task="fleet.apply_unit"\} (\d+)', text)
    assert applies is not None and int(applies.group(1)) >= 9
    assert f'fleet_last_sync_commit_info{{commit="{scenario.commit}"}} 1' in text
    assert "fleet_tick_duration_seconds " in text


def test_a_values_change_reapplies_only_the_affected_units(
    scenario: Scenario, local_fleet: LocalFleet
) -> None:
    n = scenario.name
    dev_web = apps_api(local_fleet, "dev-eu").read_namespaced_deployment("web", n("web"))
    before = {key: rec.updated_at for key, rec in scenario.cache.actual(CLUSTERS).items()}
    scenario.tree.write(
        "examples/bundles/web/values-prod.yaml",
        yaml.safe_dump({"resources": {"requests": {"cpu": "200m", "memory": "64Mi"}}}),
    )
    scenario.push("more cpu on prod")
    after = scenario.cache.actual(CLUSTERS)
    touched = {key for key, rec in after.items() if rec.updated_at != before[key]}
    assert touched == {(n("web"), "prod-eu"), (n("web"), "prod-us")}
    assert {after[k].commit for k in touched} == {scenario.commit}
    live = apps_api(local_fleet, "dev-eu").read_namespaced_deployment("web", n("web"))
    assert live.metadata.resource_version == dev_web.metadata.resource_version
    for cluster in ("prod-eu", "prod-us"):
        web = apps_api(local_fleet, cluster).read_namespaced_deployment("web", n("web"))
        assert web.spec.template.spec.containers[0].resources.requests["cpu"] == "200m"


def test_a_bundle_removed_from_git_is_removed_from_its_clusters(
    scenario: Scenario, local_fleet: LocalFleet
) -> None:
    n = scenario.name
    path = scenario.tree.path / "fleet.yaml"
    definition = yaml.safe_load(path.read_text())
    definition["bundles"]["inline"] = []
    definition["bundles"]["paths"][0]["glob"] = "examples/bundles/[gw]*"  # not platform-config
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    scenario.push("drop platform-config")
    status = scenario.dist.status()
    assert {u["bundle"] for u in status["units"]} == {n("web"), n("guestbook")}
    for cluster in CLUSTERS:
        assert n("platform-config") not in deployed(local_fleet, cluster)
        maps = core_api(local_fleet, cluster).list_namespaced_config_map(n("platform")).items
        assert "platform-config" not in [m.metadata.name for m in maps]
    assert all(key[0] != n("platform-config") for key in scenario.cache.actual(CLUSTERS))


def test_a_broken_commit_is_reported_with_file_and_line_and_not_applied(
    scenario: Scenario, local_fleet: LocalFleet
) -> None:
    n, good = scenario.name, scenario.commit
    runs = {c: deployed(local_fleet, c)[n("web")].commit for c in CLUSTERS}
    template = scenario.tree.path / "examples/bundles/web/chart/templates/deployment.yaml"
    original = template.read_text()
    template.write_text(original.replace("{{ .Values.replicaCount }}", "{{ .Values.replicaCount"))
    broken = scenario.tree.commit_and_push("broken chart")
    assert scenario.dist.push_webhook(broken) == 202

    def reported() -> dict[str, object] | None:
        error = scenario.dist.status().get("source", {}).get("commitError")
        return error if error else None

    error = wait_until(reported, 60, "the broken commit to be reported", scenario.dist)
    assert error["commit"] == broken
    assert any("deployment.yaml" in p for p in error["problems"]), error
    status = scenario.dist.status()
    assert status["commit"] == good and status["source"]["revision"] == good
    for cluster in CLUSTERS:
        assert deployed(local_fleet, cluster)[n("web")].commit == runs[cluster]
    template.write_text(original)
    scenario.push("fixed chart")
    assert scenario.dist.status()["source"]["commitError"] is None
