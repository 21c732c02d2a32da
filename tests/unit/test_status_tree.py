"""`fleet status --tree`'s drawing (`fleet.status.tree`): groups, roll-ups, objects."""

from __future__ import annotations

from fleet.states import BundleState
from fleet.status.model import FleetStatus, ObjectHealth, UnitStatus
from fleet.status.tree import NO_GROUP, group_clusters, render_tree

READY, NOT_READY = BundleState.READY, BundleState.NOT_READY


def status() -> FleetStatus:
    found = FleetStatus("demo", "c" * 40, groups={"prod": ["p1", "p2"], "eu": ["p1"]})
    found.units = [
        UnitStatus("p1", "web", READY, "a" * 64, "c" * 40, "1 objects ready",
                   objects=[ObjectHealth("ConfigMap ns/web", True)]),
        UnitStatus("dev", "web", NOT_READY, "b" * 64, "c" * 40, "Deployment ns/web: 0/1",
                   objects=[ObjectHealth("ConfigMap ns/a", True),
                            ObjectHealth("Deployment ns/web", False, "rollout: 0/1")]),
        UnitStatus("p2", "web", READY, "a" * 64, "c" * 40, "in sync"),
    ]  # fmt: skip
    return found


def test_a_cluster_is_under_each_of_its_groups_and_the_rest_under_no_group() -> None:
    assert group_clusters(status()) == [("prod", ["p1", "p2"]), ("eu", ["p1"]),
                                        (NO_GROUP, ["dev"])]  # fmt: skip
    empty_group = FleetStatus("demo", "", groups={"none": []}, units=status().units[:1])
    assert group_clusters(empty_group) == [(NO_GROUP, ["p1"])]


def test_the_tree_rolls_up_and_puts_not_ready_objects_first() -> None:
    lines = render_tree(status()).splitlines()
    assert lines[0] == f"fleet demo at {'c' * 12}: NotReady"
    assert lines[1:5] == [
        "├── group prod: Ready",
        "│   ├── cluster p1: Ready",
        f"│   │   └── bundle web Ready [{'a' * 12}]: 1 objects ready",
        "│   │       └── ConfigMap ns/web: Ready",
    ]
    assert lines[-5:] == [
        "└── (no group): NotReady",
        "    └── cluster dev: NotReady",
        f"        └── bundle web NotReady [{'b' * 12}]: Deployment ns/web: 0/1",
        "            ├── Deployment ns/web: NotReady: rollout: 0/1",
        "            └── ConfigMap ns/a: Ready",
    ]


def test_objects_beyond_the_limit_are_counted() -> None:
    lines = render_tree(status(), max_objects=0).splitlines()
    assert "            └── ... 2 more objects (1 not ready); --objects N shows more" in lines
    assert "│   │       └── ... 1 more; --objects N shows more" in lines
    assert not any("ConfigMap" in line for line in lines)


def test_no_units() -> None:
    assert render_tree(FleetStatus("demo", "")).splitlines() == [
        "fleet demo at -: Ready", "└── no units"]  # fmt: skip
