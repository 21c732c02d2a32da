"""The shipped Grafana dashboard and Prometheus alert rules, read the way Grafana and
Prometheus read them, for the tests that check their structure and evaluate their PromQL.

`panel_queries` gives every (panel title, expr) of the dashboard; `substitute` replaces
the template variables in an expr as Grafana would before sending it (a multi-value
variable set to All becomes its `allValue`, `.*`); `variable_queries` turns the
`label_values(metric, label)` queries of the template variables into the PromQL whose
answer Grafana lists (`group by (label) (metric)`).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "fleet-dashboard.json"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "fleet-alerts.yaml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "fleet-alerts.test.yaml"

MISSING_PROMTOOL = (
    "promtool not found; install it with: apt-get install -y prometheus "
    "(Debian's package ships /usr/bin/promtool; `make test` does this when run as root)"
)
# Grafana's own variables, and what the tests put for them.
BUILTINS = {"__rate_interval": "2m", "__interval": "15s", "__range": "1h"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
LABEL_VALUES = re.compile(r"^label_values\((?P<metric>.+),\s*(?P<label>\w+)\)$")


def find_promtool() -> str | None:
    """Debian's /usr/bin/promtool, or one on PATH."""
    return shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def all_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel."""
    return [
        (f"{panel['title']} [{target.get('refId', '?')}]", target["expr"])
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variables(dashboard: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def used_variables(text: str) -> set[str]:
    return {a or b for a, b in VARIABLE.findall(text)}


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with `$name` / `${name}` replaced from `values`, then Grafana's builtins."""
    merged = {**BUILTINS, **values}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in merged:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return merged[name]

    return VARIABLE.sub(replace, expr)


def variable_queries(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """name -> the PromQL behind each `label_values(...)` query variable."""
    found = {}
    for name, var in variables(dashboard).items():
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = LABEL_VALUES.match(query.strip())
        if match is None:
            raise ValueError(f"variable {name}: not a label_values(metric, label) query: {query}")
        found[name] = f"group by ({match['label']}) ({match['metric']})"
    return found


def alert_rules(path: Path = ALERT_RULES) -> list[dict[str, Any]]:
    """Every rule of every group of the alert rules file."""
    loaded = yaml.safe_load(path.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]
