"""Events and notifications of `fleet sync`: three real clusters, a real Alertmanager, a
real git daemon and local HTTP receivers.

One scenario, in file order: a commit whose ConfigMap every API server refuses fails on
three clusters (one grouped notification, one Alertmanager alert per unit, a Kubernetes
Event on each inventory, JSON lines in --events; a receiver that is down is retried and
does not hold the sync up); the same commit again is no news; the fix recovers all three
(one "recovered" notification, the alerts resolve)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.runtime.embedded import SyncReport, sync_fleet
from tests.conftest import LocalFleet
from tests.e2e.engine_support import core_api
from tests.e2e.sync_support import suffix
from tests.support.notify_servers import Receiver
from tests.support.servers import AlertmanagerServer, GitServer, GitWorkTree

CLUSTERS = ("dev-eu", "prod-eu", "prod-us")
SECRET = "hook-secret"


def definition(name: str, hook: str, down: str, alertmanager: str) -> str:
    clusters = "\n".join(f"  - name: {c}\n    labels: {{env: test}}" for c in CLUSTERS)
    return f"""\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
clusters:
{clusters}
bundles:
  paths: [apps/*]
notifiers:
  - name: hook
    type: webhook
    url: {hook}
    credential: hook
    events: [unit.failed]
  - name: down
    type: webhook
    url: {down}
    events: [unit.failed]
    retries: 1
  - name: alerts
    type: alertmanager
    url: {alertmanager}
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
    tree: GitWorkTree
    fleet: str
    bundle: str
    events: Path
    hook: Receiver
    down: Receiver
    alertmanager: AlertmanagerServer

    def sync(self) -> SyncReport:
        return sync_fleet(self.tree.remote_url, events_file=self.events)

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.events.read_text().splitlines()]

    def alerts(self) -> list[dict[str, object]]:
        return self.alertmanager.alerts(alertname="FleetUnitFailed", fleet=self.fleet)


@pytest.fixture(scope="module")
def scenario(
    local_fleet: LocalFleet,
    git_server: GitServer,
    alertmanager: AlertmanagerServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scenario]:
    hook, down = Receiver(), Receiver(fail_first=-1)
    hook.start()
    down.start()
    sfx = suffix()
    fleet, bundle = f"events-{sfx}", "settings"
    tree = git_server.create_repo(f"events-{sfx}", tmp_path_factory.mktemp("work") / "repo")
    tree.write("fleet.yaml", definition(fleet, hook.url, down.url, alertmanager.url))
    tree.write("apps/settings/fleet.yaml", f"name: {bundle}\n")
    tree.write("apps/settings/cm.yaml", configmap(f"events-{sfx}", "not a valid key!"))
    tree.commit_and_push("a ConfigMap no API server accepts")
    events = tmp_path_factory.mktemp("events") / "events.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEET_CREDENTIALS_DIR", str(local_fleet.dir))
        mp.setenv("FLEET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("FLEET_NOTIFIER_HOOK", SECRET)
        mp.setenv("FLEET_NOTIFY_BACKOFF", "0.05")
        yield Scenario(tree, fleet, bundle, events, hook, down, alertmanager)
    hook.stop()
    down.stop()


def test_a_failure_on_three_clusters_is_one_signed_notification(scenario: Scenario) -> None:
    report = scenario.sync()
    assert not report.ok  # the sync finished although the `down` receiver never answered
    [request] = scenario.hook.requests
    signed = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-fleet-signature-256"] == signed
    body = request.json()
    assert body["type"] == "unit.failed" and body["clusters"] == list(CLUSTERS)
    assert body["title"].startswith(f"{scenario.bundle}: ErrApplied on dev-eu, prod-eu, prod-us")
    assert len(scenario.down.requests) == 2  # the first attempt and its one retry
    kinds = [line["type"] for line in scenario.lines()]
    assert kinds.count("unit.failed") == 3
    assert kinds[0] == "commit.detected" and "rollout.failed" in kinds
    [rollout] = [line for line in scenario.lines() if line["type"] == "rollout.failed"]
    assert rollout["details"]["waves"] == "(all): 0/3 Ready, 3 failed"  # type: ignore[index]
    assert kinds.count("notifier.failed") == 1
    alerts = scenario.alerts()
    assert sorted(a["labels"]["cluster"] for a in alerts) == list(CLUSTERS)  # type: ignore[index]


def test_kubectl_get_events_in_fleet_system_shows_it(
    scenario: Scenario, local_fleet: LocalFleet
) -> None:
    inventory = f"{scenario.fleet}.bundle-{scenario.bundle}"
    for cluster in CLUSTERS:
        listed = core_api(local_fleet, cluster).list_namespaced_event(
            "fleet-system", field_selector=f"involvedObject.name={inventory}"
        )
        [event] = [e for e in listed.items if e.reason == "UnitFailed"]
        assert event.type == "Warning" and event.involved_object.kind == "ConfigMap"
        assert "not a valid key!" in event.message


def test_the_same_failure_again_is_no_news(scenario: Scenario) -> None:
    before = len(scenario.lines())
    report = scenario.sync()
    assert not report.ok
    assert len(scenario.hook.requests) == 1
    assert [line["type"] for line in scenario.lines()[before:]] == []
    assert len(scenario.alerts()) == 3


def test_the_fix_recovers_every_unit_and_resolves_the_alerts(scenario: Scenario) -> None:
    scenario.tree.write("apps/settings/cm.yaml", configmap(f"events-{scenario.fleet[7:]}", "ok"))
    scenario.tree.commit_and_push("a valid key")
    report = scenario.sync()
    assert report.ok, report.status.units
    assert len(scenario.hook.requests) == 2
    recovered = scenario.hook.requests[1].json()
    assert recovered["resolved"] is True and recovered["clusters"] == list(CLUSTERS)
    assert recovered["title"] == f"{scenario.bundle}: recovered on dev-eu, prod-eu, prod-us (Ready)"
    assert scenario.alerts() == []


def test_fleet_events_reads_the_file_and_the_clusters(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["events", "--file", str(scenario.events), "-o", "json", "--cluster", "prod-eu"]) == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["type"] for line in lines] == ["unit.failed", "unit.applied"]
    assert main(["events", scenario.tree.remote_url, "--bundle", scenario.bundle]) == 0
    out = capsys.readouterr().out
    assert out.count("unit.failed") == 3 and out.count("unit.applied") == 3
