"""The desired state of a fleet at one commit: every unit, rendered, or nothing at all.

`fleet sync`, `fleet diff` and `fleet status` all start here, and `fleet render` shares the
request building, so what they compare and apply is exactly what `fleet render` prints.
A commit is all-or-nothing: the definition, every bundle and every unit's render must
succeed, otherwise `load_desired` raises one `FleetError` listing every problem (file:line,
once each: the render cache remembers a failed input, so a broken chart targeted at 1,000
clusters is reported once) and the caller applies nothing anywhere.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import FleetError, Problem
from fleet.manifest import Manifest
from fleet.plugin.manager import FleetPlugins
from fleet.render.api import RenderRequest
from fleet.render.cache import RenderCache
from fleet.render.pipeline import render_bundle, renderer_identity
from fleet.spec.bundles import Bundle
from fleet.spec.definition import TargetCluster, cluster_context
from fleet.spec.loader import FleetRepo, load_repository
from fleet.targeting.dependencies import reject_dependency_cycles
from fleet.targeting.units import DeploymentUnit, UnitKey, compute_units


def render_request(
    repo: FleetRepo, bundle: Bundle, unit: DeploymentUnit, cluster: TargetCluster
) -> RenderRequest:
    """The render request of one unit (the deployment id is the render cache key)."""
    return RenderRequest(
        bundle_dir=bundle.path,
        repo_root=repo.root,
        options=unit.options,
        cluster=cluster,
        options_file=bundle.options_file,
        bundle_name=bundle.name,
        cache_key=unit.deployment_id,
    )


def fleet_units(repo: FleetRepo, plugins: FleetPlugins) -> list[DeploymentUnit]:
    """Targeting with the renderers' identities in the deployment ids."""
    return compute_units(repo, renderer_of=lambda b: renderer_identity(plugins, b.path, b.options))


@dataclass
class DesiredState:
    """A loaded commit: its units (in targeting order) and each unit's manifests."""

    repo: FleetRepo
    commit: str
    units: list[DeploymentUnit]
    clusters: list[str]  # the clusters this run covers, in definition order
    manifests: dict[UnitKey, list[Manifest]] = field(default_factory=dict)
    renders: int = 0
    cache_hits: int = 0

    @property
    def fleet_name(self) -> str:
        return self.repo.definition.name

    def bundle_keep_resources(self) -> dict[str, bool]:
        """bundle -> its keepResources option (base options; for removals)."""
        return {b.name: b.options.keep_resources for b in self.repo.bundles}


def load_desired(
    checkout: Path,
    commit: str,
    plugins: FleetPlugins,
    *,
    clusters: Collection[str] = (),
    cache: RenderCache | None = None,
) -> DesiredState:
    """Load, target and render a checkout; `clusters` limits the run to those clusters.

    Raises FleetError with every problem found; nothing is half-loaded.
    """
    plugins.raise_for_failures()
    repo = load_repository(checkout)
    known = [c.name for c in repo.definition.clusters]
    unknown = [c for c in clusters if c not in known]
    if unknown:
        raise FleetError(
            f"no cluster {unknown[0]!r} in the definition (clusters: {', '.join(known) or 'none'})",
            file=repo.definition_file,
        )
    units = fleet_units(repo, plugins)
    if clusters:
        units = [u for u in units if u.cluster in clusters]
    reject_dependency_cycles(repo, units)
    covered = [name for name in known if not clusters or name in clusters]
    state = DesiredState(repo, commit, units, covered)
    # Renders persist across runs, keyed by deployment id: a no-op pass renders nothing.
    from fleet.source.git import cache_root  # GitPython: not for `fleet validate`

    cache = cache or RenderCache(directory=cache_root() / "renders")
    contexts = {c.name: cluster_context(c) for c in repo.definition.clusters}
    bundles = {b.name: b for b in repo.bundles}
    problems: dict[str, Problem] = {}
    for unit in units:
        request = render_request(repo, bundles[unit.bundle], unit, contexts[unit.cluster])
        try:
            result = render_bundle(request, plugins, cache)
        except FleetError as err:
            for problem in err.problems:
                problems.setdefault(str(problem), problem)
            continue
        state.manifests[(unit.bundle, unit.cluster)] = result.manifests
    state.renders, state.cache_hits = cache.misses, cache.hits
    if problems:
        raise FleetError(problems=problems.values())
    return state
