"""`fleet plan -o markdown`: a pull request comment.

A summary line and a table of change groups first, then one collapsed `<details>` section
per group (its clusters, waves, objects and diff: a change identical on 400 clusters is
one section). GitHub refuses comments over 65,536 characters, so the whole comment is kept
under `max_chars` (default 60,000): sections are added in order while they fit; a section
that does not fit is shown without its diff, else left out, and a closing note says what
was left out and how to see everything.
"""

from __future__ import annotations

import html

from fleet.plan.describe import (
    cluster_list,
    headline,
    object_lines,
    placement_line,
    short,
    waves_of,
)
from fleet.plan.model import ChangeGroup, FleetPlan

DEFAULT_MAX_CHARS = 60_000
_NOTE_RESERVE = 400  # room kept for the closing note


def _fence(text: str) -> str:
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _table(plan: FleetPlan) -> list[str]:
    rows = ["| bundle | change | where | waves |", "|---|---|---|---|"]
    for group in plan.groups:
        waves = waves_of(group, plan).removeprefix("waves: ") if group.waves else "-"
        where = headline(group).split(" on ", 1)[1]
        rows.append(f"| `{group.bundle}` | {group.change.value} | {where} | {waves} |")
    return rows


def _section(group: ChangeGroup, plan: FleetPlan, *, with_diff: bool) -> str:
    summary = html.escape(headline(group))
    parts = [
        f"<details><summary>{summary}</summary>",
        "",
        f"Clusters: {cluster_list(group.clusters, 50)}",
    ]
    waves = waves_of(group, plan)
    if waves:
        parts += ["", waves[0].upper() + waves[1:]]
    parts += [""] + [f"- `{line}`" for line in object_lines(group)]
    if with_diff:
        diff = "".join(o.diff for o in group.objects)
        fence = _fence(diff)
        parts += ["", f"{fence}diff", diff.rstrip("\n"), fence]
    else:
        parts += ["", f"_Diff left out to fit the comment ({group.diff_lines} lines)._"]
    parts += ["", "</details>", "", ""]
    return "\n".join(parts)


def render_markdown(plan: FleetPlan, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    head = [
        f"### fleet plan: `{plan.fleet}` `{short(plan.base)}` → `{short(plan.head)}`",
        "",
        f"**{plan.summary}**",
        "",
    ]
    out = "\n".join(head) + "\n"
    budget = max(max_chars - _NOTE_RESERVE, 0)
    rows_left = diffs_left = groups_left = 0
    lines_left = 0
    if plan.groups:
        table = _table(plan)
        text = ""
        for index, row in enumerate(table):
            if len(out) + len(text) + len(row) + 1 > budget and index > 1:
                rows_left = len(table) - index
                break
            text += row + "\n"
        out += text + "\n"
    for group in plan.groups:
        full = _section(group, plan, with_diff=True)
        if len(out) + len(full) <= budget:
            out += full
            continue
        brief = _section(group, plan, with_diff=False)
        diffs_left += 1
        lines_left += group.diff_lines
        if len(out) + len(brief) <= budget:
            out += brief
        else:
            groups_left += 1
    tail = []
    if plan.placements:
        tail += ["**Placement**", ""] + [f"- {placement_line(p)}" for p in plan.placements] + [""]
    if plan.wave_moves:
        tail += ["**Wave changes**", ""]
        tail += [f"- `{m.cluster}`: {m.base} → {m.head}" for m in plan.wave_moves] + [""]
    if plan.groups:
        tail += [f"Rollout order: {' → '.join(plan.waves_touched) or 'none (removals only)'}", ""]
    tail_text = "\n".join(tail)
    if len(out) + len(tail_text) <= budget:
        out += tail_text
    elif tail:
        out += "_Placement and wave details left out to fit the comment._\n"
    left = []
    if rows_left:
        left.append(f"{rows_left} table rows")
    if diffs_left:
        left.append(f"the diffs of {diffs_left} groups ({lines_left} lines)")
    if groups_left:
        left.append(f"{groups_left} of those groups entirely")
    if left:
        out += (
            f"\n_Left out to stay under {max_chars:,} characters: {'; '.join(left)}. "
            "Run `fleet plan` with `-o text` or `-o json` for the whole plan._\n"
        )
    return out
