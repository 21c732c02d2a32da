"""The plan of a change as data: what the renderers (`text`, `markdown`, `json`) print.

A *unit change* is one bundle on one cluster that is added, removed or changed between the
two commits. Unit changes that are the same on several clusters (same bundle, same kind of
change, byte-identical object diffs) form one `ChangeGroup`: a values change that renders
identically on 400 clusters is one group of 400 clusters, shown once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Change(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class ObjectChange:
    """One rendered object added, removed or changed; `diff` is a unified YAML diff."""

    ref: str  # "apps/v1 Deployment web/frontend" (apiVersion kind namespace/name)
    change: Change
    diff: str


@dataclass
class ChangeGroup:
    """One bundle's identical change on a set of clusters."""

    bundle: str
    change: Change
    objects: tuple[ObjectChange, ...]
    clusters: list[str] = field(default_factory=list)  # definition order
    waves: dict[str, int] = field(default_factory=dict)  # wave -> clusters of this group in it
    selector: str = ""  # the labels these clusters share, "env=prod,region=eu" ("" if none)
    selector_exact: bool = False  # that selector picks exactly these clusters of the fleet
    group_name: str | None = None  # a definition group with exactly these clusters
    everywhere: bool = False  # every cluster of the fleet (in scope)
    note: str = ""  # e.g. "did not render at base"

    @property
    def diff_lines(self) -> int:
        return sum(o.diff.count("\n") for o in self.objects)


@dataclass(frozen=True, slots=True)
class Placement:
    """Which clusters gain or lose a bundle; `status` new | removed | moved."""

    bundle: str
    status: str
    gained: tuple[str, ...]
    lost: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WaveMove:
    """A cluster whose rollout wave differs between the two commits."""

    cluster: str
    base: str
    head: str


@dataclass
class FleetPlan:
    """The whole plan; `changed` decides `--exit-code`."""

    fleet: str
    base: str  # commit shas
    head: str
    groups: list[ChangeGroup] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)
    waves: list[str] = field(default_factory=list)  # head's waves, in rollout order
    wave_moves: list[WaveMove] = field(default_factory=list)
    clusters_total: int = 0
    units_total: int = 0  # head units in scope
    renders: int = 0  # renders done (cache misses) for this plan
    filters: dict[str, list[str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.groups or self.wave_moves)

    @property
    def bundles(self) -> list[str]:
        return sorted({g.bundle for g in self.groups})

    @property
    def clusters(self) -> list[str]:
        seen: dict[str, None] = {}
        for group in self.groups:
            seen.update(dict.fromkeys(group.clusters))
        return list(seen)

    @property
    def waves_touched(self) -> list[str]:
        """Waves with an added or changed unit, in rollout order (removals take no wave)."""
        touched = {w for g in self.groups for w in g.waves}
        return [w for w in self.waves if w in touched]

    @property
    def summary(self) -> str:
        if not self.changed:
            return "no changes: base and head render the same on every cluster"
        if not self.groups:
            return f"no manifest changes; {_count(len(self.wave_moves), 'cluster')} change wave"
        text = (
            f"{_count(len(self.bundles), 'bundle')} "
            f"{'changes' if len(self.bundles) == 1 else 'change'} "
            f"on {_count(len(self.clusters), 'cluster')}"
        )
        waves = self.waves_touched
        if waves:
            text += f" in {_count(len(waves), 'wave')}"
        return text


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
