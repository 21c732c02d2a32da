"""Base commit + head commit -> `FleetPlan`: what changes on which cluster, grouped.

Rules, decided here where the issue was silent (Argo CD's and Flux's habits where they
have one):

- Both commits are targeted in full; the units in scope (`PlanScope`: `--cluster`,
  `--bundle`, `--selector` over cluster labels) are compared by deployment id first. The
  same id means the same desired state (`fleet.targeting`), so such a unit is neither
  rendered at base nor diffed. Every distinct head render in scope is done (a broken head
  commit fails the plan with every problem, file:line), once per deployment id.
- A unit whose id changed but whose manifests render the same (a comment, an option that
  changes nothing rendered) is not a change: the plan is about what the clusters get.
- A base unit that does not render is compared as if it rendered nothing, and its group
  says so ("did not render at base"): a pull request that repairs main can be planned. A
  base whose definition does not load at all is an error.
- Unit changes with the same bundle, kind of change and byte-identical object diffs are one
  `ChangeGroup`, whatever the number of clusters, named by the labels its clusters share
  (and by the definition group with exactly those clusters, if any).
- Waves are the head commit's, per bundle (`fleet.rollout.waves`: a bundle's partitions,
  else the definition's waves, else auto-partitions): a group counts its added and changed
  clusters per wave; removals are not gated by waves (the planner's rule) and take none. A
  cluster whose definition wave differs between the commits is a `WaveMove`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet.desired import DesiredState
from fleet.errors import FleetError, Problem
from fleet.manifest import Manifest
from fleet.plan.model import Change, ChangeGroup, FleetPlan, ObjectChange, Placement, WaveMove
from fleet.plan.objects import compare_manifests
from fleet.plan.selectors import parse_selector
from fleet.rollout.waves import ALL_WAVE, REST_WAVE, DefinitionWaves, unit_waves
from fleet.targeting.selectors import compile_selector
from fleet.targeting.units import DeploymentUnit, UnitKey

BASE_BROKEN = "did not render at base"


@dataclass(frozen=True)
class PlanScope:
    """What `--cluster`, `--bundle` and `--selector` narrow the plan to (empty: all)."""

    clusters: tuple[str, ...] = ()
    bundles: tuple[str, ...] = ()
    selector: str | None = None

    def as_dict(self) -> dict[str, list[str]]:
        out = {"clusters": list(self.clusters), "bundles": list(self.bundles)}
        if self.selector is not None:
            out["selector"] = [self.selector]
        return {k: v for k, v in out.items() if v}


def relative_problems(err: FleetError, root: Path, commit: str, side: str) -> FleetError:
    """The same error with files relative to the checkout (what a reviewer can open); base
    problems say they are the base's."""
    out = []
    top = str(root).rstrip("/") + "/"
    for problem in err.problems:
        file = problem.file
        if file and file.startswith(top):
            file = file[len(top) :]
        message = problem.message if side == "head" else f"base {commit[:12]}: {problem.message}"
        out.append(Problem(message, file, problem.line))
    return type(err)(problems=out)


def compute_plan(
    base: DesiredState, head: DesiredState, scope: PlanScope = PlanScope()
) -> FleetPlan:
    """The plan from `base` to `head` (both targeted, nothing rendered yet): see module doc.

    Raises FleetError for an unknown `--cluster`/`--bundle`/`--selector`, and with every
    problem of the head commit's renders in scope.
    """
    labels = _cluster_labels(head, base)
    in_scope = _scope(scope, base, head, labels)
    head_units = {u.key: u for u in head.units if in_scope(u)}
    base_units = {u.key: u for u in base.units if in_scope(u)}
    misses = head.cache.misses
    head_rendered = _render_head(head, head_units.values())

    groups: dict[tuple[object, ...], ChangeGroup] = {}
    diffs: dict[tuple[str, str], tuple[tuple[ObjectChange, ...], str]] = {}
    waves = unit_waves(head.units, head.repo.definition.rollout)
    for key in _ordered_keys(head, base, head_units, base_units):
        old, new = base_units.get(key), head_units.get(key)
        if old is not None and new is not None and old.deployment_id == new.deployment_id:
            continue
        pair = (old.deployment_id if old else "", new.deployment_id if new else "")
        found = diffs.get(pair)
        if found is None:
            before, note = _base_manifests(base, old)
            after = head_rendered[new.deployment_id] if new is not None else []
            found = diffs[pair] = (compare_manifests(before, after), note)
        objects, note = found
        if not objects and not note:
            continue
        change = Change.ADDED if old is None else Change.REMOVED if new is None else Change.CHANGED
        bundle, cluster = key
        group = groups.get((bundle, change, objects, note))
        if group is None:
            group = groups[(bundle, change, objects, note)] = ChangeGroup(
                bundle, change, objects, note=note
            )
        group.clusters.append(cluster)
        if new is not None:
            wave = waves[key]
            group.waves[wave] = group.waves.get(wave, 0) + 1

    plan = FleetPlan(
        fleet=head.fleet_name,
        base=base.commit,
        head=head.commit,
        groups=sorted(groups.values(), key=_group_order),
        placements=_placements(base, head, base_units, head_units),
        waves=_wave_order(head, waves),
        wave_moves=_wave_moves(base, head, base_units, head_units),
        clusters_total=len({c for _, c in head_units} | {c for _, c in base_units}),
        units_total=len(head_units),
        renders=head.cache.misses - misses,
        filters=scope.as_dict(),
    )
    _name_groups(plan.groups, head, labels, set() if plan.filters else in_scope.clusters)
    return plan


def _cluster_labels(head: DesiredState, base: DesiredState) -> dict[str, Mapping[str, str]]:
    """Every cluster of either commit (head first, in definition order) -> its labels."""
    labels: dict[str, Mapping[str, str]] = {}
    for state in (head, base):
        for spec in state.repo.definition.clusters:
            labels.setdefault(spec.name, dict(spec.labels))
    return labels


def _scope(
    scope: PlanScope,
    base: DesiredState,
    head: DesiredState,
    labels: Mapping[str, Mapping[str, str]],
) -> _InScope:
    unknown = [c for c in scope.clusters if c not in labels]
    if unknown:
        raise FleetError(f"--cluster {unknown[0]!r}: no such cluster at base or head")
    bundles = {b.name for b in head.repo.bundles} | {b.name for b in base.repo.bundles}
    missing = [b for b in scope.bundles if b not in bundles]
    if missing:
        raise FleetError(f"--bundle {missing[0]!r}: no such bundle at base or head")
    selector = parse_selector(scope.selector) if scope.selector is not None else None
    wanted = {
        name
        for name, own in labels.items()
        if (not scope.clusters or name in scope.clusters)
        and (selector is None or selector.matches(own))
    }
    return _InScope(wanted, frozenset(scope.bundles))


@dataclass(frozen=True)
class _InScope:
    clusters: set[str]
    bundles: frozenset[str]

    def __call__(self, unit: DeploymentUnit) -> bool:
        return unit.cluster in self.clusters and (not self.bundles or unit.bundle in self.bundles)


def _render_head(head: DesiredState, units: Iterable[DeploymentUnit]) -> dict[str, list[Manifest]]:
    """Each distinct head render in scope, by deployment id, or FleetError with every problem."""
    rendered: dict[str, list[Manifest]] = {}
    problems: dict[str, Problem] = {}
    failed: set[str] = set()
    for unit in units:
        if unit.deployment_id in rendered or unit.deployment_id in failed:
            continue
        try:
            rendered[unit.deployment_id] = head.manifests(unit)
        except FleetError as err:
            failed.add(unit.deployment_id)
            for problem in err.problems:
                problems.setdefault(str(problem), problem)
    if problems:
        raise FleetError(problems=problems.values())
    return rendered


def _base_manifests(base: DesiredState, unit: DeploymentUnit | None) -> tuple[list[Manifest], str]:
    if unit is None:
        return [], ""
    try:
        return base.manifests(unit), ""
    except FleetError:
        return [], BASE_BROKEN


def _ordered_keys(
    head: DesiredState,
    base: DesiredState,
    head_units: Mapping[UnitKey, DeploymentUnit],
    base_units: Mapping[UnitKey, DeploymentUnit],
) -> list[UnitKey]:
    """Head's targeting order, then units only the base has (cluster lists read naturally)."""
    keys = list(head_units)
    keys += [k for k in base_units if k not in head_units]
    return keys


def _group_order(group: ChangeGroup) -> tuple[str, int, int]:
    order = {Change.CHANGED: 0, Change.ADDED: 1, Change.REMOVED: 2}
    return (group.bundle, order[group.change], -len(group.clusters))


def _placements(
    base: DesiredState,
    head: DesiredState,
    base_units: Mapping[UnitKey, DeploymentUnit],
    head_units: Mapping[UnitKey, DeploymentUnit],
) -> list[Placement]:
    base_names = {b.name for b in base.repo.bundles}
    head_names = {b.name for b in head.repo.bundles}
    before: dict[str, list[str]] = {}
    after: dict[str, list[str]] = {}
    for bundle, cluster in base_units:
        before.setdefault(bundle, []).append(cluster)
    for bundle, cluster in head_units:
        after.setdefault(bundle, []).append(cluster)
    out = []
    for bundle in sorted(before.keys() | after.keys()):
        had, has = before.get(bundle, []), after.get(bundle, [])
        had_set, has_set = set(had), set(has)
        gained = tuple(c for c in has if c not in had_set)
        lost = tuple(c for c in had if c not in has_set)
        if not gained and not lost:
            continue
        status = (
            "new"
            if bundle not in base_names
            else "removed"
            if bundle not in head_names
            else "moved"
        )
        out.append(Placement(bundle, status, gained, lost))
    return out


def _wave_order(head: DesiredState, waves: Mapping[UnitKey, str]) -> list[str]:
    """The definition's waves in order, then the bundles' own (partitions, auto-N)."""
    rollout = head.repo.definition.rollout
    order = (
        [ALL_WAVE]
        if rollout is None or not rollout.waves
        else [w.name for w in rollout.waves] + [REST_WAVE]
    )
    seen = set(order)
    for name in waves.values():
        if name not in seen:
            seen.add(name)
            order.append(name)
    return order


def _wave_moves(
    base: DesiredState,
    head: DesiredState,
    base_units: Mapping[UnitKey, DeploymentUnit],
    head_units: Mapping[UnitKey, DeploymentUnit],
) -> list[WaveMove]:
    before = DefinitionWaves(base.repo.definition.rollout).names(list(base_units.values()))
    after = DefinitionWaves(head.repo.definition.rollout).names(list(head_units.values()))
    return [
        WaveMove(cluster, before[cluster], name)
        for cluster, name in after.items()
        if cluster in before and before[cluster] != name
    ]


def _name_groups(
    groups: Sequence[ChangeGroup],
    head: DesiredState,
    labels: Mapping[str, Mapping[str, str]],
    scoped: set[str],
) -> None:
    """Each group's shared labels as a selector, whether it picks exactly those clusters,
    and the definition group with exactly those clusters."""
    members: dict[frozenset[str], str] = {}
    for spec in head.repo.definition.groups:
        selector = compile_selector(spec.selector)
        chosen = frozenset(name for name, own in labels.items() if selector.matches(own))
        members.setdefault(chosen, spec.name)
    for group in groups:
        shared = dict(labels.get(group.clusters[0], {}))
        for cluster in group.clusters[1:]:
            own = labels.get(cluster, {})
            shared = {k: v for k, v in shared.items() if own.get(k) == v}
        clusters = set(group.clusters)
        group.selector = ",".join(f"{k}={v}" for k, v in sorted(shared.items()))
        picked = {n for n, own in labels.items() if all(own.get(k) == v for k, v in shared.items())}
        group.selector_exact = bool(shared) and picked == clusters
        group.group_name = members.get(frozenset(clusters))
        group.everywhere = len(clusters) == len(scoped) and clusters == scoped
