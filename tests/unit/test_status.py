"""The status model: roll-ups per bundle, cluster and fleet; table and JSON agree."""

from __future__ import annotations

import json

from fleet.states import BundleState
from fleet.status.model import (
    FleetStatus,
    UnitStatus,
    format_table,
    one_line,
    render_json,
    render_table,
)

READY, NOT_READY, MODIFIED = BundleState.READY, BundleState.NOT_READY, BundleState.MODIFIED


def sample() -> FleetStatus:
    status = FleetStatus("demo", "a" * 40)
    status.units = [
        UnitStatus("dev-eu", "web", READY, "1" * 64, "a" * 40, "3 objects ready"),
        UnitStatus(
            "prod-eu", "web", NOT_READY, "2" * 64, "a" * 40, "Deployment web/web: 1/3\nready"
        ),
        UnitStatus("prod-eu", "db", MODIFIED, "3" * 64, "b" * 40, "ConfigMap db/x modified"),
    ]
    status.removed = [
        UnitStatus("dev-eu", "old", READY, "", "c" * 40, "left Git: deleted 2 objects")
    ]
    return status


def test_roll_ups_take_the_worst_state() -> None:
    status = sample()
    assert status.bundles() == {"web": NOT_READY, "db": MODIFIED, "old": READY}
    assert status.clusters() == {"dev-eu": READY, "prod-eu": MODIFIED}
    assert status.state is MODIFIED and not status.ready
    assert status.summary_of(bundle="web") == "NotReady(1) [prod-eu]"
    assert status.summary_of(cluster="prod-eu") == "Modified(1) [db]; NotReady(1) [web]"
    assert FleetStatus("empty", "").ready  # nothing to wait for


def test_table_rows_and_summary_line() -> None:
    text = render_table(sample())
    lines = text.splitlines()
    assert lines[0].split() == ["CLUSTER", "BUNDLE", "STATE", "DEPLOYMENT", "COMMIT", "MESSAGE"]
    assert lines[1].split()[:5] == ["dev-eu", "web", "Ready", "1" * 12, "a" * 12]
    assert any(line.split()[:4] == ["dev-eu", "old", "Ready", "(removed)"] for line in lines)
    assert "Deployment web/web: 1/3 ready" in text  # messages are one line
    assert lines[-1] == f"fleet demo at {'a' * 12}: Modified (1 Modified, 1 NotReady, 2 Ready)"


def test_json_carries_the_same_model() -> None:
    data = json.loads(render_json(sample(), writes=0))
    assert data["state"] == "Modified" and data["writes"] == 0
    assert data["summary"] == {"Modified": 1, "NotReady": 1, "Ready": 2}
    assert data["clusters"]["prod-eu"] == {
        "state": "Modified",
        "message": "Modified(1) [db]; NotReady(1) [web]",
    }
    assert [u["bundle"] for u in data["units"]] == ["web", "web", "db"]
    assert data["removed"][0]["bundle"] == "old"


def test_helpers() -> None:
    assert one_line("a\n  b", 10) == "a b"
    assert one_line("x" * 20, 10) == "xxxxxxx..."
    assert format_table(["A", "BB"], [["long", "1"]]) == "A     BB\nlong  1\n"
