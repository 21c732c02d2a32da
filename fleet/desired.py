"""The desired state of a fleet at one commit: every unit, rendered, or nothing at all.

`fleet sync`, `fleet diff` and `fleet status` all start here, and `fleet render` shares the
request building, so what they compare and apply is exactly what `fleet render` prints.
A commit is all-or-nothing: the definition, every bundle and every unit's render must
succeed, otherwise `load_desired` raises one `FleetError` listing every problem (file:line,
once each: the render cache remembers a failed input, so a broken chart targeted at 1,000
clusters is reported once) and the caller applies nothing anywhere.

One class for both runtimes: `DesiredState.target` loads and targets a commit (fast:
50,000 units in under two seconds) and renders nothing; `manifests(unit)` renders one unit
on demand and remembers it (a distributed worker renders only the unit its task names);
`render_all()` renders every unit or raises with every problem (`fleet sync`, `fleet
status`, the scheduler, via `load_desired`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from fleet.engine.identity import Claims
from fleet.errors import FleetError, Problem, TransientError
from fleet.gates.config import GateSet
from fleet.manifest import Manifest
from fleet.plugin.manager import FleetPlugins
from fleet.registry.access import Registries, spec_host
from fleet.registry.charts import ChartPin, ChartPins
from fleet.render.api import RenderRequest
from fleet.render.cache import RenderCache
from fleet.render.pipeline import render_bundle, renderer_identity
from fleet.spec.bundles import Bundle
from fleet.spec.cluster import ClusterContext
from fleet.spec.definition import ClusterSpec, RegistrySpec, TargetCluster, cluster_context
from fleet.spec.loader import FleetRepo, load_repository
from fleet.targeting.dependencies import reject_dependency_cycles
from fleet.targeting.units import DeploymentUnit, UnitKey, compute_units


def render_request(
    repo_root: Path,
    bundle: Bundle,
    unit: DeploymentUnit,
    cluster: ClusterContext,
    *,
    registries: Sequence[RegistrySpec] = (),
    chart_versions: tuple[tuple[str, str, str, str], ...] = (),
) -> RenderRequest:
    """The render request of one unit (the deployment id is the render cache key); also
    `fleet render`'s, for a bundle directory outside any fleet definition. `registries`:
    the definition's, so a renderer finds the credential of a chart's registry."""
    return RenderRequest(
        bundle_dir=bundle.path,
        repo_root=repo_root,
        options=unit.options,
        cluster=cluster,
        options_file=bundle.options_file,
        bundle_name=bundle.name,
        cache_key=unit.deployment_id,
        registries=tuple(registries),
        chart_versions=chart_versions,
    )


def check_clusters(repo: FleetRepo, clusters: Collection[str]) -> None:
    """Every name in `clusters` is a cluster of the definition, or FleetError naming it."""
    known = [c.name for c in repo.definition.clusters]
    unknown = [c for c in clusters if c not in known]
    if unknown:
        raise FleetError(
            f"no cluster {unknown[0]!r} in the definition (clusters: {', '.join(known) or 'none'})",
            file=repo.definition_file,
        )


def check_notifiers(repo: FleetRepo, plugins: FleetPlugins) -> None:
    """Every `notifiers` entry has a plugin for its `type`, or FleetError at its line."""
    served = plugins.notifier_types()
    problems = []
    for index, spec in enumerate(repo.definition.notifiers):
        if spec.type not in served:
            line = repo.document.line_of(("notifiers", index, "type")) if repo.document else None
            known = ", ".join(sorted(served)) or "none"
            problems.append(
                Problem(
                    f"notifier {spec.name!r}: no notifier plugin serves type {spec.type!r} "
                    f"(installed: {known})",
                    str(repo.definition_file),
                    line,
                )
            )
    if problems:
        raise FleetError(problems=problems)


def check_registries(repo: FleetRepo, plugins: FleetPlugins) -> None:
    """Every `registries` entry has a plugin for its `type`, or FleetError at its line."""
    problems = []
    for index, spec in enumerate(repo.definition.registries):
        if plugins.registry_provider(spec_host(spec) or "", spec) is None:
            line = repo.document.line_of(("registries", index, "type")) if repo.document else None
            problems.append(
                Problem(
                    f"registry {spec.name!r}: no registry plugin serves type {spec.type!r}",
                    str(repo.definition_file),
                    line,
                )
            )
    if problems:
        raise FleetError(problems=problems)


def check_gates(repo: FleetRepo, plugins: FleetPlugins) -> GateSet:
    """Every gate of the commit built by its plugin (`fleet.gates.config`), or FleetError
    with each gate that cannot be (unknown type, bad parameters) at its file:line."""
    definition = repo.definition
    gates = GateSet.build(
        definition.rollout,
        {b.name: b.options for b in repo.bundles},
        definition.metric_providers,
        plugins.gate,
        plugins.gate_types,
    )
    problems = []
    for found in gates.problems:
        if found.where == "definition":
            line = repo.document.line_of(found.loc) if repo.document else None
            problems.append(Problem(found.message, str(repo.definition_file), line))
        else:
            bundle = next(b for b in repo.bundles if b.name == found.where)
            file, line = bundle.where(found.loc)
            problems.append(Problem(found.message, file, line))
    if problems:
        raise FleetError(problems=problems)
    return gates


def chart_pins(
    repo: FleetRepo, plugins: FleetPlugins, preset: Sequence[ChartPin] = ()
) -> ChartPins:
    """The pin set of this commit's OCI charts, through the definition's registries:
    `preset` (resolved by the scheduler) first, anything else resolved when asked."""
    return ChartPins.preset(Registries(repo.definition.registries, plugins), preset)


def fleet_units(
    repo: FleetRepo, plugins: FleetPlugins, pins: ChartPins | None = None
) -> list[DeploymentUnit]:
    """Targeting with the renderers' identities, and the versions and digests of the OCI
    charts (resolved once, here: `fleet.registry.charts`), in the deployment ids."""
    check_registries(repo, plugins)
    check_notifiers(repo, plugins)
    pinned = pins if pins is not None else chart_pins(repo, plugins)

    def identity(bundle: Bundle) -> str:
        renderer = renderer_identity(plugins, bundle.path, bundle.options)
        charts = pinned.identity(bundle)
        return f"{renderer} charts: {charts}" if charts else renderer

    return compute_units(repo, renderer_of=identity)


@dataclass
class DesiredState:
    """A targeted commit: its units (in targeting order), each rendered once on demand."""

    repo: FleetRepo
    commit: str
    plugins: FleetPlugins
    units: list[DeploymentUnit]
    clusters: list[str]  # the clusters this state covers, in definition order
    cache: RenderCache = field(default_factory=RenderCache)
    pins: ChartPins | None = None  # the OCI charts' versions, resolved when targeted
    gates: GateSet = field(default_factory=GateSet)  # every gate, built when targeted
    renders: int = 0  # renders done by `render_all` (cache misses) ...
    cache_hits: int = 0  # ... and answered from the render cache
    _manifests: dict[UnitKey, list[Manifest]] = field(default_factory=dict, repr=False)
    _claims: dict[str, Claims] = field(default_factory=dict, repr=False)

    @classmethod
    def target(
        cls,
        repo: FleetRepo,
        commit: str,
        plugins: FleetPlugins,
        *,
        clusters: Collection[str] = (),
        cache: RenderCache | None = None,
        pins: Sequence[ChartPin] = (),
    ) -> DesiredState:
        """Target a loaded repository; `clusters` limits it to those clusters; `pins`
        are OCI chart versions resolved before (by the scheduler, for a worker).

        Raises FleetError for an unknown cluster name or a dependsOn cycle. Renders nothing.
        """
        check_clusters(repo, clusters)
        pinned = chart_pins(repo, plugins, pins)
        units = fleet_units(repo, plugins, pinned)
        if clusters:
            units = [u for u in units if u.cluster in clusters]
        reject_dependency_cycles(repo, units)
        gates = check_gates(repo, plugins)
        covered = [c.name for c in repo.definition.clusters if not clusters or c.name in clusters]
        return cls(repo, commit, plugins, units, covered, cache or RenderCache(), pinned, gates)

    @property
    def fleet_name(self) -> str:
        return self.repo.definition.name

    @cached_property
    def by_key(self) -> dict[UnitKey, DeploymentUnit]:
        return {u.key: u for u in self.units}

    def cluster_spec(self, name: str) -> ClusterSpec:
        for spec in self.repo.definition.clusters:
            if spec.name == name:
                return spec
        raise FleetError(f"no cluster {name!r} in the definition at {self.commit[:12]}")

    def context(self, name: str) -> TargetCluster:
        return cluster_context(self.cluster_spec(name))

    def manifests(self, unit: DeploymentUnit) -> list[Manifest]:
        """The unit's rendered manifests, rendered at the first call (FleetError if the
        render fails; the render cache remembers the failure for the same input)."""
        found = self._manifests.get(unit.key)
        if found is None:
            bundle = next(b for b in self.repo.bundles if b.name == unit.bundle)
            request = render_request(
                self.repo.root,
                bundle,
                unit,
                self.context(unit.cluster),
                registries=self.repo.definition.registries,
                chart_versions=self.pins.versions(bundle) if self.pins else (),
            )
            found = render_bundle(request, self.plugins, self.cache).manifests
            self._manifests[unit.key] = found
        return found

    def claims(self, cluster: str) -> Claims:
        """What every bundle of this commit renders on `cluster` (`fleet.engine.identity`):
        the engine's answer to "does another bundle still want this object?". Renders the
        cluster's units that are not rendered yet (FleetError if one fails)."""
        found = self._claims.get(cluster)
        if found is None:
            found = Claims.of(
                (u.bundle, self.manifests(u), u.options.target_namespace)
                for u in self.units
                if u.cluster == cluster
            )
            self._claims[cluster] = found
        return found

    def render_all(self) -> None:
        """Render every unit, or raise one FleetError with every problem (once each); a
        `TransientError` when one of them is (a chart server down): rendering again may work."""
        hits, misses = self.cache.hits, self.cache.misses
        problems: dict[str, Problem] = {}
        transient = False  # one render failed for a reason that may pass: load it again
        for unit in self.units:
            try:
                self.manifests(unit)
            except FleetError as err:
                transient = transient or isinstance(err, TransientError)
                for problem in err.problems:
                    problems.setdefault(str(problem), problem)
        self.renders = self.cache.misses - misses
        self.cache_hits = self.cache.hits - hits
        if problems:
            raise (TransientError if transient else FleetError)(problems=problems.values())


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
    # Renders persist across runs, keyed by deployment id: a no-op pass renders nothing.
    from fleet.source.git import cache_root  # GitPython: not for `fleet validate`

    cache = cache or RenderCache(directory=cache_root() / "renders")
    state = DesiredState.target(repo, commit, plugins, clusters=clusters, cache=cache)
    state.render_all()
    return state
