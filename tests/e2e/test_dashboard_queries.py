"""The Grafana dashboard and the alert rules against a real Prometheus that scraped a
real distributed fleet: `fleet serve`, two `fleet worker`s, Redis, three clusters.

Grafana cannot run here, so the test sends each panel's queries as Grafana would (the
template variables substituted; a range query for a time series panel, an instant one
for a table) to the test bed's Prometheus, which scraped `fleet serve`'s /metrics every
second through a run that gives every panel something to show:

1. a commit applies a bundle (a Namespace and two ConfigMaps) to the three clusters;
   it converges;
2. the next one drops a ConfigMap from it (a prune on each cluster) and adds a bundle
   no API server accepts (ErrApplied on each cluster, a failed wave, retried every 2 s);
3. a ConfigMap is edited by hand on dev-eu (drift: the unit stays Modified);
4. throughout, one notifier delivers and one cannot (nothing listens on its port);
5. a third bundle rolls out to dev-eu first, behind an `http` gate that passes (the gate
   panels), and every cluster answers the workers (the reachability panels).

Each step waits until Prometheus has scraped the state it leads to (a commit that is
fully applied for a second must not be missed between two scrapes).

Every panel query must parse and return at least one finite value; every alert rule's
expression must parse.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import LocalFleet
from tests.e2e.dist_support import Distributed, distributed, wait_until
from tests.e2e.engine_support import core_api
from tests.e2e.three_region_support import CLUSTERS, definition, redis_db, start_three_regions
from tests.support.exporter import Exporter
from tests.support.gates import ProbeServer
from tests.support.monitoring import (
    alert_rules,
    all_panels,
    load_dashboard,
    substitute,
    variable_queries,
)
from tests.support.notify_servers import Receiver
from tests.support.prometheus import PrometheusServer
from tests.support.servers import GitServer, RedisServer, free_port

REDIS_DB = 14  # this module's own database
JOB = "exporter"  # the job name of the test bed's Prometheus scrape configuration


def notifiers(hook: str, nobody: str) -> str:
    return f"""\
notifiers:
  - name: hook
    type: webhook
    url: {hook}
  - name: nobody
    type: webhook
    url: {nobody}
    retries: 0
"""


def gated(probe: str) -> str:
    """Bundle `gated`: dev-eu first, behind an `http` gate the probe server passes, then
    the rest (its gate's answer is what the gate panels show)."""
    return f"""\
name: gated
rolloutStrategy:
  partitions:
    - name: dev
      clusterName: dev-eu
      gates:
        - name: smoke
          type: http
          url: {probe}/status/200
"""


def configmap(name: str, namespace: str, key: str = "mode") -> str:
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {namespace}}}
data: {{"{key}": "on"}}
"""


def namespace(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n"


@dataclass
class Run:
    dist: Distributed
    prometheus: PrometheusServer
    started: float

    def variables(self) -> dict[str, str]:
        """What Grafana would put for each variable: the job, All for bundle and cluster,
        and a `$__range` that covers the run."""
        seconds = math.ceil(time.time() - self.started) + 30
        return {"job": JOB, "bundle": ".*", "cluster": ".*", "__range": f"{seconds}s"}


def units(dist: Distributed) -> dict[tuple[str, str], dict[str, Any]]:
    return {(u["bundle"], u["cluster"]): u for u in dist.status().get("units", [])}


@pytest.fixture(scope="module")
def run(
    local_fleet: LocalFleet,
    git_server: GitServer,
    redis_server: RedisServer,
    prometheus: PrometheusServer,
    exporter: Exporter,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    hook, probe = Receiver(), ProbeServer()
    hook.start()
    probe.start()
    sfx = uuid.uuid4().hex[:6]
    fleet, ns = f"dash-{sfx}", f"dash-{sfx}"
    tree = git_server.create_repo(fleet, tmp_path_factory.mktemp("work") / "repo")
    nobody = f"http://127.0.0.1:{free_port()}/"
    tree.write("fleet.yaml", definition(fleet, notifiers(hook.url, nobody)))
    tree.write("apps/settings/fleet.yaml", "name: settings\n")
    tree.write("apps/settings/namespace.yaml", namespace(ns))
    tree.write("apps/settings/settings.yaml", configmap("settings", ns))
    tree.write("apps/settings/extra.yaml", configmap("extra", ns))
    tree.write("apps/gated/fleet.yaml", gated(probe.url))
    tree.write("apps/gated/gated.yaml", configmap("gated", ns))
    url = redis_db(redis_server, REDIS_DB)
    env = {"FLEET_NOTIFY_GROUP_WAIT": "1", "FLEET_FAILURE_COOLDOWN": "2"}
    started = time.time()
    try:
        with distributed(tree.remote_url, tmp_path_factory.mktemp("logs"), url, local_fleet.dir,
                         **env) as dist:  # fmt: skip
            start_three_regions(dist, "--poll-interval", "2", "--drift-interval", "2")
            prometheus.scrape(exporter.target, f"127.0.0.1:{dist.port}")

            def scraped(promql: str) -> None:
                """Until Prometheus holds it: a state that lasts a second is not missed."""
                wait_until(lambda: prometheus.query(promql), 60, f"prometheus: {promql}", dist)

            scraped(f'count_over_time(fleet_ticks_total{{job="{JOB}"}}[1m]) >= 2')
            first = tree.commit_and_push("a Namespace and two ConfigMaps")
            assert dist.push_webhook(first) == 202
            dist.wait_converged(first)
            scraped(f'fleet_last_sync_commit_info{{job="{JOB}",commit="{first}"}}')
            scraped(f'fleet_render_duration_seconds_count{{job="{JOB}"}}')
            scraped(f'fleet_gate_result{{job="{JOB}",bundle="gated",result="passed"}}')
            scraped(f'fleet_cluster_reachable{{job="{JOB}"}} == 1')

            (tree.path / "apps/settings/extra.yaml").unlink()
            tree.write("apps/broken/fleet.yaml", "name: broken\n")
            tree.write("apps/broken/cm.yaml", configmap("broken", ns, key="not a valid key!"))
            second = tree.commit_and_push("one ConfigMap less, and one no API server accepts")
            assert dist.push_webhook(second) == 202

            def applied_and_failed() -> bool:
                found = units(dist)
                return all(
                    found.get(("settings", c), {}).get("commit") == second
                    and found[("settings", c)]["state"] == "Ready"
                    and found.get(("broken", c), {}).get("state") == "ErrApplied"
                    for c in CLUSTERS
                )

            wait_until(applied_and_failed, 180, "settings applied, broken failed", dist)
            core = core_api(local_fleet, "dev-eu")
            body = core.read_namespaced_config_map("settings", ns)
            body.data = {"mode": "edited by hand"}
            core.replace_namespaced_config_map("settings", ns, body, field_manager="kubectl")
            wait_until(lambda: units(dist)[("settings", "dev-eu")]["state"] == "Modified", 120,
                       "the drift on dev-eu", dist)  # fmt: skip
            scraped(f'fleet_unit_info{{job="{JOB}",state="Modified"}}')
            yield Run(dist, prometheus, started)
    finally:
        prometheus.scrape(exporter.target)
        hook.stop()
        probe.stop()


def _finite(value: str) -> bool:
    return math.isfinite(float(value))


def evaluate(run: Run, expr: str, instant: bool) -> str | None:
    """None when `expr` parses and returns a finite value, else what is wrong."""
    try:
        if instant:
            values = [s["value"][1] for s in run.prometheus.query(expr)]
        else:
            found = run.prometheus.query_range(expr, run.started, time.time(), "2s")
            values = [v for series in found for _, v in series["values"]]
    except RuntimeError as err:
        return f"does not evaluate: {err}"
    if not values:
        return "no data"
    if not any(_finite(v) for v in values):
        return f"no finite value ({sorted(set(values))})"
    return None


def test_every_panel_query_returns_data(run: Run) -> None:
    dashboard = load_dashboard()
    queries = [
        (panel["title"], target["expr"], panel["type"] == "table" or target.get("instant", False))
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
    ]
    assert len(queries) >= 40

    def problems() -> dict[str, str]:
        values = run.variables()
        found = {}
        for title, expr, instant in queries:
            promql = substitute(expr, values)
            problem = evaluate(run, promql, instant)
            if problem is not None:
                found[f"{title}: {promql}"] = problem
        return found

    # the last scrapes may still be coming in: ask again until all answer, or say which not
    left: dict[str, str] = {}

    def all_answer() -> bool:
        left.clear()
        left.update(problems())
        return not left

    try:
        wait_until(all_answer, 90, "every panel query to return data")
    except AssertionError:
        pytest.fail("\n".join(f"{q}\n    -> {why}" for q, why in left.items()), pytrace=False)


def test_every_variable_lists_values(run: Run) -> None:
    dashboard = load_dashboard()
    listed = {}
    for name, promql in variable_queries(dashboard).items():
        found = run.prometheus.query(substitute(promql, run.variables()))
        label = promql.split("(")[1].split(")")[0]
        listed[name] = sorted(s["metric"].get(label, "") for s in found)
    assert listed["job"] == [JOB]
    assert listed["bundle"] == ["broken", "gated", "settings"]
    assert listed["cluster"] == list(CLUSTERS)


def test_every_alert_rule_expression_parses(run: Run) -> None:
    for rule in alert_rules():
        body = run.prometheus.answer("/api/v1/query", query=rule["expr"])
        assert body.get("status") == "success", f"{rule['alert']}: {body}"


def test_the_alert_rules_see_the_failing_units_and_the_drift(run: Run) -> None:
    """The expressions (without their `for:`) select what this run did."""
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}

    def selected(alert: str, *labels: str) -> list[tuple[str, ...]]:
        found = run.prometheus.query(exprs[alert])
        return sorted(tuple(s["metric"][label] for label in labels) for s in found)

    expected = {
        "FleetUnitErrApplied": (("bundle", "cluster"), [("broken", c) for c in CLUSTERS]),
        "FleetDriftNotCorrected": (("bundle", "cluster"), [("settings", "dev-eu")]),
        "FleetRolloutWaveFailed": (("bundle",), [("broken",)]),
        "FleetNotificationsFailing": (("notifier",), [("nobody",)]),
    }
    seen: dict[str, list[tuple[str, ...]]] = {}

    def as_expected() -> bool:  # the last scrape may still be coming in
        seen.update({alert: selected(alert, *labels) for alert, (labels, _) in expected.items()})
        return all(seen[alert] == want for alert, (_, want) in expected.items())

    wait_until(as_expected, 60, "the alert expressions to select this run's failures", run.dist)
