"""`fleet status --tree`: fleet > cluster group > cluster > bundle > objects.

The same `FleetStatus` as the table, drawn as a tree so the path from the fleet's state
down to the object that causes it reads top to bottom. Each level shows its worst state
(`fleet.states`). Groups are the definition's (`FleetStatus.groups`): a cluster in
several groups is drawn under each of them, so every group's subtree is complete on its
own; clusters in none are under `(no group)`. Objects are listed for the units looked at
live (`UnitStatus.objects`), not-ready ones first, at most `max_objects` per unit: the
rest are counted on one line. A unit not looked at says why in its own message.
"""

from __future__ import annotations

from fleet.states import worst_state
from fleet.status.model import FleetStatus, ObjectHealth, UnitStatus, one_line

NO_GROUP = "(no group)"
DEFAULT_MAX_OBJECTS = 10


def group_clusters(status: FleetStatus) -> list[tuple[str, list[str]]]:
    """(group, its clusters that have units) in the definition's order, then `(no group)`."""
    clusters = sorted({u.cluster for u in status.all_units()})
    out: list[tuple[str, list[str]]] = []
    grouped: set[str] = set()
    for group, members in status.groups.items():
        shown = [c for c in clusters if c in members]
        grouped.update(shown)
        if shown:
            out.append((group, shown))
    rest = [c for c in clusters if c not in grouped]
    if rest:
        out.append((NO_GROUP, rest))
    return out


def _branch(lines: list[str], prefix: str, last: bool, text: str) -> str:
    lines.append(f"{prefix}{'└── ' if last else '├── '}{text}")
    return prefix + ("    " if last else "│   ")


def _object_lines(found: list[ObjectHealth], max_objects: int) -> list[str]:
    ordered = sorted(found, key=lambda o: o.ready)  # stable: not ready first, apply order
    shown = [
        f"{o.ref}: Ready" if o.ready else f"{o.ref}: NotReady: {one_line(o.message)}"
        for o in ordered[:max_objects]
    ]
    hidden = len(ordered) - len(shown)
    if hidden:
        unready = sum(1 for o in ordered[max_objects:] if not o.ready)
        what = f"{hidden} more objects ({unready} not ready)" if unready else f"{hidden} more"
        shown.append(f"... {what}; --objects N shows more")
    return shown


def _unit_text(unit: UnitStatus) -> str:
    deployment = unit.deployment_id[:12] or "(removed)"
    message = f": {one_line(unit.message)}" if unit.message else ""
    return f"bundle {unit.bundle} {unit.state.value} [{deployment}]{message}"


def render_tree(status: FleetStatus, max_objects: int = DEFAULT_MAX_OBJECTS) -> str:
    """The tree as text; see the module docstring."""
    by_cluster: dict[str, list[UnitStatus]] = {}
    for unit in sorted(status.all_units(), key=lambda u: (u.cluster, u.bundle)):
        by_cluster.setdefault(unit.cluster, []).append(unit)
    lines = [f"fleet {status.fleet} at {status.commit[:12] or '-'}: {status.state.value}"]
    groups = group_clusters(status)
    for gi, (group, clusters) in enumerate(groups):
        state = worst_state(u.state for c in clusters for u in by_cluster[c])
        name = group if group == NO_GROUP else f"group {group}"
        gp = _branch(lines, "", gi == len(groups) - 1, f"{name}: {state.value}")
        for ci, cluster in enumerate(clusters):
            units = by_cluster[cluster]
            state = worst_state(u.state for u in units)
            cp = _branch(lines, gp, ci == len(clusters) - 1, f"cluster {cluster}: {state.value}")
            for ui, unit in enumerate(units):
                up = _branch(lines, cp, ui == len(units) - 1, _unit_text(unit))
                found = _object_lines(unit.objects or [], max_objects)
                for oi, text in enumerate(found):
                    _branch(lines, up, oi == len(found) - 1, text)
    if not groups:
        lines.append("└── no units")
    return "\n".join(lines) + "\n"
