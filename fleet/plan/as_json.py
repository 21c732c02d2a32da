"""`fleet plan -o json`: everything, every cluster listed (for tools and bots)."""

from __future__ import annotations

import json
from typing import Any

from fleet.plan.model import FleetPlan


def plan_data(plan: FleetPlan) -> dict[str, Any]:
    return {
        "fleet": plan.fleet,
        "base": plan.base,
        "head": plan.head,
        "changed": plan.changed,
        "summary": plan.summary,
        "bundles": plan.bundles,
        "clusters": plan.clusters,
        "waves": plan.waves_touched,
        "unitsInScope": plan.units_total,
        "clustersInScope": plan.clusters_total,
        "renders": plan.renders,
        "filters": plan.filters,
        "groups": [
            {
                "bundle": g.bundle,
                "change": g.change.value,
                "clusters": g.clusters,
                "selector": g.selector,
                "selectorExact": g.selector_exact,
                "group": g.group_name,
                "waves": g.waves,
                "note": g.note or None,
                "objects": [
                    {"ref": o.ref, "change": o.change.value, "diff": o.diff} for o in g.objects
                ],
            }
            for g in plan.groups
        ],
        "placements": [
            {"bundle": p.bundle, "status": p.status, "gained": p.gained, "lost": p.lost}
            for p in plan.placements
        ],
        "waveMoves": [
            {"cluster": m.cluster, "base": m.base, "head": m.head} for m in plan.wave_moves
        ],
    }


def render_json(plan: FleetPlan) -> str:
    return json.dumps(plan_data(plan), indent=2) + "\n"
