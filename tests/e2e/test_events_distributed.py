"""Acceptance of notifications in the distributed mode: real `fleet serve`, two real
`fleet worker`s, Redis, three clusters, a real Alertmanager, a webhook receiver and a
local server implementing GitHub's commit-status endpoints.

A commit whose ConfigMap no API server accepts fails on three clusters, each unit applied
by the worker of its region: Alertmanager shows one alert firing per unit, the webhook one
notification for the three, the commit's status goes pending then failure. The workers
retry (cooldown 1 s) and fail the same way: no more notifications. The fix recovers every
unit: the alerts resolve, one "recovered" notification, the fixed commit's status is
success."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fleet.cli import main
from fleet.events.sinks import RedisEventLog
from fleet.runtime.state_cache import StateCache, connect_redis
from tests.conftest import LocalFleet
from tests.e2e.dist_support import Distributed, distributed, wait_until
from tests.e2e.engine_support import core_api
from tests.e2e.three_region_support import CLUSTERS, definition, redis_db, start_three_regions
from tests.support.notify_servers import Receiver, StatusForge
from tests.support.servers import AlertmanagerServer, GitServer, GitWorkTree, RedisServer

REDIS_DB = 5  # this module's own database


def notifiers(hook: str, alertmanager: str) -> str:
    return f"""\
notifiers:
  - name: hook
    type: webhook
    url: {hook}
    events: [unit.failed]
  - name: alerts
    type: alertmanager
    url: {alertmanager}
  - name: pr-status
    type: github
    repository: acme/fleet
    credential: gh
    events: [commit.*, rollout.*]
"""


def configmap(namespace: str, key: str) -> str:
    return f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {namespace}}}
data: {{"{key}": "on"}}
"""


@dataclass
class Scenario:
    dist: Distributed
    tree: GitWorkTree
    fleet: str
    ns: str
    hook: Receiver
    forge: StatusForge
    alertmanager: AlertmanagerServer
    stream: RedisEventLog
    cache: StateCache
    redis_url: str
    local_fleet: LocalFleet
    first_failure: float = 0.0

    def alerts(self) -> list[dict[str, object]]:
        return self.alertmanager.alerts(alertname="FleetUnitFailed", fleet=self.fleet)

    def statuses(self, commit: str) -> list[str]:
        return [s["state"] for s in reversed(self.forge.statuses.get(("acme/fleet", commit), []))]

    def hook_titles(self) -> list[str]:
        return [r.json()["title"] for r in self.hook.requests]


@pytest.fixture(scope="module")
def scenario(
    local_fleet: LocalFleet,
    git_server: GitServer,
    redis_server: RedisServer,
    alertmanager: AlertmanagerServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scenario]:
    hook, forge = Receiver(), StatusForge()
    hook.start()
    forge.start()
    sfx = uuid.uuid4().hex[:6]
    fleet, ns = f"dist-events-{sfx}", f"dist-events-{sfx}"
    tree = git_server.create_repo(fleet, tmp_path_factory.mktemp("work") / "repo")
    tree.write("fleet.yaml", definition(fleet, notifiers(hook.url, alertmanager.url)))
    tree.write("apps/settings/fleet.yaml", "name: settings\n")
    tree.write("apps/settings/cm.yaml", configmap(ns, "not a valid key!"))
    url = redis_db(redis_server, REDIS_DB)
    client = connect_redis(url)
    env = {
        "FLEET_NOTIFY_GROUP_WAIT": "2",
        "FLEET_FAILURE_COOLDOWN": "1",
        "FLEET_PUBLIC_URL": "http://fleet.test:8080",
        "FLEET_NOTIFIER_GH": forge.token,
        "FLEET_NOTIFIER_GH_URL": forge.url,
    }
    with distributed(tree.remote_url, tmp_path_factory.mktemp("logs"), url, local_fleet.dir,
                     **env) as dist:  # fmt: skip
        start_three_regions(dist, "--poll-interval", "3600", "--drift-interval", "3600")
        yield Scenario(dist, tree, fleet, ns, hook, forge, alertmanager,
                       RedisEventLog(client, fleet), StateCache(client, fleet), url,
                       local_fleet)  # fmt: skip
    hook.stop()
    forge.stop()


def test_a_failing_unit_fires_one_alert_per_unit_and_one_grouped_notification(
    scenario: Scenario,
) -> None:
    commit = scenario.tree.commit_and_push("a ConfigMap no API server accepts")
    assert scenario.dist.push_webhook(commit) == 202
    alerts = wait_until(lambda: len(scenario.alerts()) == 3 and scenario.alerts(), 180,
                        "three FleetUnitFailed alerts", scenario.dist)  # fmt: skip
    assert sorted(a["labels"]["cluster"] for a in alerts) == list(CLUSTERS)  # type: ignore[index]
    assert all(a["generatorURL"] == "http://fleet.test:8080/status" for a in alerts)
    wait_until(lambda: scenario.hook.requests, 60, "the webhook notification", scenario.dist)
    [title] = scenario.hook_titles()
    assert title.startswith("settings: ErrApplied on dev-eu, prod-eu, prod-us: ")
    wait_until(lambda: scenario.statuses(commit) == ["pending", "failure"], 60,
               "commit status pending then failure", scenario.dist)  # fmt: skip
    status = scenario.forge.statuses[("acme/fleet", commit)][0]
    assert status["context"] == f"fleet/{scenario.fleet}"
    assert status["target_url"] == "http://fleet.test:8080/status"


def test_retries_that_fail_the_same_way_notify_nobody(scenario: Scenario) -> None:
    def retried() -> bool:  # every unit reported failed again after the 1 s cooldown
        found = scenario.cache.actual(CLUSTERS)
        return len(found) == 3 and all(
            u.updated_at > scenario.first_failure for u in found.values()
        )

    scenario.first_failure = max(u.updated_at for u in scenario.cache.actual(CLUSTERS).values())
    wait_until(retried, 120, "the workers to retry every unit", scenario.dist)
    failures = [e for e in scenario.stream.read() if e.event.type.value == "unit.failed"]
    assert len(failures) == 3  # one per unit, not one per attempt
    assert len(scenario.hook.requests) == 1
    assert len(scenario.alerts()) == 3


def test_explain_lists_the_units_last_events_from_the_stream(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --redis, `fleet explain` reads the stream: the unit's `unit.failed` after the
    cluster's Kubernetes Events are gone, and `commit.detected`, which only the stream
    holds. Without it, the (deleted) Kubernetes Events: none."""
    monkeypatch.setenv("FLEET_CREDENTIALS_DIR", str(scenario.local_fleet.dir))
    monkeypatch.delenv("FLEET_REDIS_URL", raising=False)
    core = core_api(scenario.local_fleet, "dev-eu")
    core.delete_collection_namespaced_event("fleet-system")
    wait_until(lambda: not [e for e in core.list_namespaced_event("fleet-system").items
                            if scenario.fleet in (e.involved_object.name or "")],
               30, "the Kubernetes Events to be deleted")  # fmt: skip

    def explain(*extra: str) -> dict[str, object]:
        code = main(["explain", "settings", "--cluster", "dev-eu", scenario.tree.remote_url,
                     "-o", "json", "--events", "10", *extra])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 1, out  # ErrApplied
        found: dict[str, object] = json.loads(out)
        return found

    kube = explain()
    assert kube["eventsFrom"] == "kubernetes" and kube["events"] == []
    stream = explain("--redis", scenario.redis_url)
    assert stream["eventsFrom"] == "stream", stream["notes"]
    events = stream["events"]
    assert isinstance(events, list)
    types = [e["type"] for e in events]
    assert "commit.detected" in types and "unit.failed" in types, types
    assert all(e["bundle"] in (None, "settings") and e["cluster"] in (None, "dev-eu")
               for e in events)  # fmt: skip
    [failed] = [e for e in events if e["type"] == "unit.failed"]
    assert failed["cluster"] == "dev-eu" and "not a valid key" in failed["message"]


def test_the_fix_resolves_the_alerts_and_the_commit_status_is_success(
    scenario: Scenario,
) -> None:
    scenario.tree.write("apps/settings/cm.yaml", configmap(scenario.ns, "ok"))
    commit = scenario.tree.commit_and_push("a valid key")
    assert scenario.dist.push_webhook(commit) == 202
    scenario.dist.wait_converged(commit)
    wait_until(lambda: scenario.alerts() == [], 60, "the alerts to resolve", scenario.dist)
    wait_until(lambda: len(scenario.hook.requests) == 2, 60, "the recovery", scenario.dist)
    recovered = scenario.hook.requests[1].json()
    assert recovered["resolved"] is True and recovered["clusters"] == list(CLUSTERS)
    wait_until(lambda: scenario.statuses(commit) == ["pending", "success"], 60,
               "commit status pending then success", scenario.dist)  # fmt: skip
