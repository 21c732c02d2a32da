"""`dependsOn` between deployment units: a fact of the unit graph of one cluster.

Targeting produces the units; this module answers which units a unit depends on (by bundle
name or by a selector over bundle labels, on the same cluster), an apply order with
dependencies first, and whether the graph has a cycle. The planner uses it to make units
wait for their dependencies; loading a commit uses it to reject a cycle (such units could
never start), with the bundle's fleet.yaml and line.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleet.errors import FleetError
from fleet.spec.loader import FleetRepo
from fleet.targeting.selectors import compile_selector
from fleet.targeting.units import DeploymentUnit


def dependencies(
    unit: DeploymentUnit, same_cluster: Sequence[DeploymentUnit]
) -> tuple[list[DeploymentUnit], list[str]]:
    """(units `unit` depends on, on its cluster; names of dependencies not deployed there)."""
    found: dict[str, DeploymentUnit] = {}
    missing: list[str] = []
    by_name = {u.bundle: u for u in same_cluster}
    for dep in unit.options.depends_on:
        if dep.name is not None:
            target = by_name.get(dep.name)
            if target is None:
                missing.append(dep.name)
            elif target.bundle != unit.bundle:
                found[target.bundle] = target
        if dep.selector is not None:
            selector = compile_selector(dep.selector)
            for other in same_cluster:
                if other.bundle != unit.bundle and selector.matches(other.options.labels):
                    found[other.bundle] = other
    return list(found.values()), missing


def dependency_order(units: Sequence[DeploymentUnit]) -> list[DeploymentUnit]:
    """One cluster's units with every dependency before its dependents (stable otherwise;
    cycles keep their original order)."""
    placed: dict[str, DeploymentUnit] = {}
    visiting: set[str] = set()
    by_bundle = {u.bundle: u for u in units}

    def visit(unit: DeploymentUnit) -> None:
        if unit.bundle in placed or unit.bundle in visiting:
            return
        visiting.add(unit.bundle)
        for dep in dependencies(unit, units)[0]:
            if dep.bundle in by_bundle:
                visit(dep)
        visiting.discard(unit.bundle)
        placed[unit.bundle] = unit

    for unit in units:
        visit(unit)
    return list(placed.values())


def dependency_cycle(units: Sequence[DeploymentUnit]) -> list[str] | None:
    """A `dependsOn` cycle among one cluster's units (bundle names, first repeated at the
    end: `[a, b, a]`), or None. Such units could never start, so a commit with one is
    rejected like any other invalid commit."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    by_bundle = {u.bundle: u for u in units}

    def visit(unit: DeploymentUnit) -> list[str] | None:
        state[unit.bundle] = 1
        path.append(unit.bundle)
        for dep in dependencies(unit, units)[0]:
            if state.get(dep.bundle) == 1:
                return [*path[path.index(dep.bundle) :], dep.bundle]
            if dep.bundle in by_bundle and dep.bundle not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[unit.bundle] = 2
        return None

    for unit in units:
        if unit.bundle not in state:
            found = visit(unit)
            if found:
                return found
    return None


def reject_dependency_cycles(repo: FleetRepo, units: list[DeploymentUnit]) -> None:
    """A `dependsOn` cycle on any cluster makes the commit invalid (its units never start)."""
    by_cluster: dict[str, list[DeploymentUnit]] = {}
    for unit in units:
        by_cluster.setdefault(unit.cluster, []).append(unit)
    bundles = {b.name: b for b in repo.bundles}
    for cluster, on_cluster in by_cluster.items():
        cycle = dependency_cycle(on_cluster)
        if cycle:
            file, line = bundles[cycle[0]].where(("dependsOn",))
            raise FleetError(
                f"dependsOn cycle on cluster {cluster}: {' -> '.join(cycle)}", file=file, line=line
            )
