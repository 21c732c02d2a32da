"""`fleet plan` for a terminal: the summary, then each change group with its diff."""

from __future__ import annotations

from fleet.plan.describe import (
    cluster_list,
    headline,
    object_lines,
    placement_line,
    short,
    waves_of,
)
from fleet.plan.model import FleetPlan


def render_text(plan: FleetPlan) -> str:
    lines = [
        f"fleet plan: {plan.fleet}, base {short(plan.base)} -> head {short(plan.head)}",
        plan.summary,
    ]
    for group in plan.groups:
        lines += ["", f"== {headline(group)}", f"   clusters: {cluster_list(group.clusters)}"]
        waves = waves_of(group, plan)
        if waves:
            lines.append(f"   {waves}")
        lines += [f"   {line}" for line in object_lines(group)]
        for change in group.objects:
            lines.append(change.diff.rstrip("\n"))
    if plan.placements:
        lines += ["", "placement:"] + [f"  {placement_line(p)}" for p in plan.placements]
    if plan.wave_moves:
        lines += ["", "wave changes:"]
        lines += [f"  {m.cluster}: {m.base} -> {m.head}" for m in plan.wave_moves]
    if plan.groups:
        order = " -> ".join(plan.waves_touched) or "none (removals only)"
        lines += ["", f"rollout order: {order}"]
    return "\n".join(lines) + "\n"
