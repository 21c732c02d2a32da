"""Phrases every output format shares: how a group, its clusters and its waves read."""

from __future__ import annotations

from fleet.plan.model import Change, ChangeGroup, FleetPlan, Placement

SHOWN_CLUSTERS = 10  # names listed before "+N more" (JSON always lists them all)


def short(sha: str) -> str:
    return sha[:12]


def cluster_list(clusters: list[str], limit: int = SHOWN_CLUSTERS) -> str:
    shown = ", ".join(clusters[:limit])
    more = len(clusters) - limit
    return shown + (f", +{more} more" if more > 0 else "")


def where(group: ChangeGroup) -> str:
    """`group prod (env=prod): 40 clusters`, `env=prod: 40 clusters`, `3 clusters`..."""
    count = f"{len(group.clusters)} cluster{'' if len(group.clusters) == 1 else 's'}"
    if group.everywhere and len(group.clusters) > 1:
        return f"every cluster, {count}"
    if group.group_name and group.selector_exact:
        return f"group {group.group_name} ({group.selector}), {count}"
    if group.group_name:
        return f"group {group.group_name}, {count}"
    if group.selector_exact:
        return f"selector {group.selector}, {count}"
    if group.selector and len(group.clusters) > 1:
        return f"{count} sharing {group.selector}"
    return count


def headline(group: ChangeGroup) -> str:
    verb = {Change.CHANGED: "changes", Change.ADDED: "added", Change.REMOVED: "removed"}
    text = f"{group.bundle} {verb[group.change]} on {where(group)}"
    if group.note:
        text += f" ({group.note})"
    return text


def waves_of(group: ChangeGroup, plan: FleetPlan) -> str:
    if not group.waves:
        return "removals are not gated by waves" if group.change is Change.REMOVED else ""
    parts = [f"{w} ({group.waves[w]})" for w in plan.waves if w in group.waves]
    return "waves: " + ", ".join(parts)


def object_lines(group: ChangeGroup) -> list[str]:
    marks = {Change.CHANGED: "~", Change.ADDED: "+", Change.REMOVED: "-"}
    return [f"{marks[o.change]} {o.ref}" for o in group.objects]


def placement_line(placement: Placement) -> str:
    parts = []
    if placement.gained:
        parts.append(f"+{len(placement.gained)} ({cluster_list(list(placement.gained), 5)})")
    if placement.lost:
        parts.append(f"-{len(placement.lost)} ({cluster_list(list(placement.lost), 5)})")
    return f"{placement.bundle} [{placement.status}]: " + ", ".join(parts)
