"""The shipped Prometheus alert rules pass Debian's promtool (syntax and their rule unit
tests), and the Grafana dashboard is a well-formed dashboard whose every panel queries
Prometheus with variables it defines. (That each query returns data is
tests/e2e/test_dashboard_queries.py, against a Prometheus that scraped a real fleet.)
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.support.monitoring import (
    ALERT_RULES,
    ALERT_TESTS,
    BUILTINS,
    MISSING_PROMTOOL,
    alert_rules,
    all_panels,
    find_promtool,
    load_dashboard,
    panel_queries,
    used_variables,
    variable_queries,
    variables,
)

SEVERITIES = {"critical", "warning", "info"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = find_promtool()
    if binary is None:
        pytest.fail(MISSING_PROMTOOL, pytrace=False)
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, cwd=ALERT_RULES.parent
    )


def test_promtool_check_rules_passes() -> None:
    done = promtool("check", "rules", ALERT_RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_the_rules_unit_tests_pass() -> None:
    done = promtool("test", "rules", ALERT_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_waits_has_a_severity_and_says_what_happened() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    for rule in rules:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert "fleet_" in rule["expr"], rule["alert"]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] and dashboard["uid"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    panels = list(all_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids are not unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_panel_queries_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    rows = [p for p in all_panels(dashboard) if p["type"] == "row"]
    assert [r["title"] for r in rows] == [
        "Fleet overview",
        "Rollout (per bundle)",
        "Clusters",
        "Failures",
        "Render and apply latency",
        "Git",
        "Notifications",
        "Scheduler and workers",
    ]
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            assert not panel.get("targets"), panel["title"]
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        targets = panel["targets"]
        assert targets, f"{panel['title']} has no targets"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in targets:
            assert target["expr"].strip() and "fleet_" in target["expr"], panel["title"]


def test_variables_are_defined_and_used(dashboard: dict[str, Any]) -> None:
    defined = variables(dashboard)
    assert defined["datasource"]["type"] == "datasource"
    assert defined["datasource"]["query"] == "prometheus"
    assert set(variable_queries(dashboard)) == {"job", "bundle", "cluster"}
    for name in ("bundle", "cluster"):
        assert defined[name]["multi"] and defined[name]["includeAll"]
        assert defined[name]["allValue"] == ".*"
    exprs = " ".join(expr for _, expr in panel_queries(dashboard))
    in_variables = " ".join(str(v.get("query", "")) for v in defined.values())
    used = used_variables(exprs) | used_variables(in_variables)
    assert used - set(defined) - set(BUILTINS) == set(), "used but not defined"
    assert set(defined) - {"datasource"} <= used_variables(exprs), "defined but never used"
