"""The desired state of a fleet at one commit: every unit, rendered, or nothing at all.

`fleet sync`, `fleet diff` and `fleet status` all start here, and `fleet render` shares the
request building, so what they compare and apply is exactly what `fleet render` prints.
A commit is all-or-nothing: the definition, every bundle and every unit's render must
succeed, otherwise `load_desired` raises one `FleetError` listing every problem (file:line,
once each: the render cache remembers a failed input, so a broken chart targeted at 1,000
clusters is reported once) and the caller applies nothing anywhere. The one exception is
a registry that does not answer now: a bundle whose pinned images or chart need it is
*deferred* (`DesiredState.deferred`, neither synced nor removed by either runtime) and the
commit's other bundles go ahead.

One class for both runtimes: `DesiredState.target` loads and targets a commit (fast:
50,000 units in under two seconds) and renders nothing; `manifests(unit)` renders one unit
on demand and remembers it (a distributed worker renders only the unit its task names);
`render_all()` renders every unit or raises with every problem (`fleet sync`, `fleet
status`, the scheduler, via `load_desired`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from fleet import config
from fleet.engine.identity import Claims
from fleet.engine.pull_secrets import PullSecret
from fleet.errors import FleetError, Problem, TransientError
from fleet.gates.config import GateSet
from fleet.images.checks import check_image_policies
from fleet.manifest import Manifest
from fleet.net import url_problem
from fleet.plugin.manager import FleetPlugins
from fleet.registry.access import Registries, spec_host
from fleet.registry.charts import ChartPin, ChartPins
from fleet.registry.credentials import credential_from_env, docker_config
from fleet.registry.image_pins import ImagePin, ImagePins, pins_digests
from fleet.render.api import RenderRequest
from fleet.render.cache import RenderCache
from fleet.render.images import attach_pull_secrets, container_images, pin_images
from fleet.render.pipeline import render_bundle, renderer_identity
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.bundles import Bundle
from fleet.spec.cluster import ClusterContext
from fleet.spec.credential_hosts import check_credential_hosts, definition_gates, strategy_gates
from fleet.spec.definition import (
    ClusterSpec,
    RegistrySpec,
    TargetCluster,
    cluster_context,
)
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
    render_key: str | None = None,
) -> RenderRequest:
    """The render request of one unit (the deployment id is the render cache key, or
    `render_key`: the id before image digests, which change no render); also
    `fleet render`'s, for a bundle directory outside any fleet definition. `registries`:
    the definition's, so a renderer finds the credential of a chart's registry."""
    return RenderRequest(
        bundle_dir=bundle.path,
        repo_root=repo_root,
        options=unit.options,
        cluster=cluster,
        options_file=bundle.options_file,
        bundle_name=bundle.name,
        cache_key=render_key or unit.deployment_id,
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


def check_urls(repo: FleetRepo, settings: config.Settings | None = None) -> None:
    """Every URL of the commit that fleet will send requests to (notifiers' `url`,
    `metricProviders[].address`, a gate's `url` parameter) inside the operator's
    allow-list (`fleet.net.url_problem`, names not resolved), or FleetError with each
    one outside it at its file:line. For `fleet validate`: at run time every request is
    checked again, after DNS resolution."""
    definition, file = repo.definition, str(repo.definition_file)

    def line(loc: tuple[str | int, ...]) -> int | None:
        return repo.document.line_of(loc) if repo.document else None

    found: list[tuple[str, str | None, int | None, str]] = []  # what, file, line, url
    for i, notifier in enumerate(definition.notifiers):
        if notifier.url:
            found.append((f"notifier {notifier.name!r}", file, line(("notifiers", i, "url")),
                          notifier.url))  # fmt: skip
    for i, provider in enumerate(definition.metric_providers):
        found.append((f"metric provider {provider.name!r}", file,
                      line(("metricProviders", i, "address")), provider.address))  # fmt: skip
    for loc, spec in definition_gates(definition.rollout):
        url = spec.params.get("url")
        if isinstance(url, str):
            found.append((f"gate {spec.name or spec.type}", file, line((*loc, "url")), url))
    for bundle in repo.bundles:
        for loc, spec in strategy_gates(bundle.options.rollout_strategy):
            url = spec.params.get("url")
            if isinstance(url, str):
                where, at = bundle.where((*loc, "url"))
                found.append((f"gate {spec.name or spec.type}", where, at, url))
    problems = [
        Problem(f"{what}: {problem}", where, at)
        for what, where, at, url in found
        if (problem := url_problem(url, settings)) is not None
    ]
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


def check_pull_secrets(repo: FleetRepo) -> None:
    """Every `images.pullSecrets[].registry` names a `registries` entry with a
    `credential` and an address (or `type: dockerhub`), or FleetError at its bundle."""
    specs = {spec.name: spec for spec in repo.definition.registries}
    problems = []
    for bundle in repo.bundles:
        images = bundle.options.images
        for wanted in images.pull_secrets if images is not None else []:
            spec = specs.get(wanted.registry)
            why = None
            if spec is None:
                why = "is not in the definition's registries"
            elif not spec.credential:
                why = "has no credential"
            elif pull_host(spec) is None:
                why = "has no host (and is not type dockerhub)"
            if why is not None:
                message = (
                    f"bundle {bundle.name}: images.pullSecrets: registry {wanted.registry!r} {why}"
                )
                problems.append(Problem(message, str(bundle.options_file or bundle.path)))
    if problems:
        raise FleetError(problems=problems)


CHART_DOWN = "chart not resolved"  # a deferred bundle's reason: its chart (else its images)
IMAGES_DOWN = "image digests not resolved"
DOCKER_HUB_AUTH = "https://index.docker.io/v1/"  # the key Docker Hub credentials go under


def pull_host(spec: RegistrySpec) -> str | None:
    """The `auths` key of a registry's pull secret: its host, Docker Hub's for a
    `type: dockerhub` entry without one."""
    host = spec_host(spec)
    if host is None and spec.type == "dockerhub":
        return DOCKER_HUB_AUTH
    return host


def pull_secrets_of(
    options: BundleOptions, specs: Sequence[RegistrySpec], env: Mapping[str, str] | None = None
) -> list[PullSecret]:
    """The pull secrets a unit asks for, each a Docker config of its registry's credential
    from `env` (the runtime's, default this process's: `fleet sync`'s or the worker's).
    UserError naming the variables when a credential is not set."""
    wanted = options.images.pull_secrets if options.images is not None else []
    by_name = {spec.name: spec for spec in specs}
    env = config.current().env if env is None else env
    found = []
    for item in wanted:
        spec = by_name[item.registry]  # check_pull_secrets made sure
        host, name = pull_host(spec), spec.credential
        assert host is not None and name is not None
        bound = spec_host(spec) or "docker.io"  # the host FLEET_REGISTRY_HOSTS_<NAME> lists
        credential = credential_from_env(name, env, host=bound)
        found.append(PullSecret(item.secret_name, docker_config(host, credential)))
    return found


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


def image_pins(
    repo: FleetRepo, plugins: FleetPlugins, preset: Mapping[str, Sequence[ImagePin]] = {}
) -> ImagePins:
    """The image pins of this commit (`fleet.registry.image_pins`), through the
    definition's registries and the `fleet_resolve_image` hook: `preset` (resolved by the
    scheduler, by bundle) first, anything else resolved when asked."""
    registries = Registries(repo.definition.registries, plugins)
    return ImagePins.preset(registries, preset, plugins.resolve_image)


def fleet_units(
    repo: FleetRepo,
    plugins: FleetPlugins,
    pins: ChartPins | None = None,
    images: ImagePins | None = None,
    deferred: dict[str, TransientError] | None = None,
) -> list[DeploymentUnit]:
    """Targeting with the renderers' identities, the versions and digests of the OCI
    charts (resolved once, here: `fleet.registry.charts`) and the digests of the images
    a bundle pins (`images`, resolved before from its renders) in the deployment ids.

    `deferred` (bundle -> why): given, a bundle whose chart cannot be resolved now (its
    registry or index down) goes there with the id `... charts: unresolved` instead of
    failing the whole commit, and a bundle already in it is not asked about; without it
    (`fleet targets`, `fleet render`) that TransientError propagates."""
    check_registries(repo, plugins)
    check_credential_hosts(repo, config.current().env)  # before any registry is asked
    check_pull_secrets(repo)
    check_notifiers(repo, plugins)
    check_image_policies(repo, plugins)
    pinned = pins if pins is not None else chart_pins(repo, plugins)
    charted = {  # deferred for their images only: their charts resolve
        name for name, err in (deferred or {}).items() if not err.reason.startswith(CHART_DOWN)
    }

    def identity(bundle: Bundle) -> str:
        renderer = renderer_identity(plugins, bundle.path, bundle.options)
        if deferred is not None and bundle.name in deferred and bundle.name not in charted:
            return f"{renderer} charts: unresolved"
        try:
            charts = pinned.identity(bundle)
        except TransientError as err:
            if deferred is None:
                raise
            deferred[bundle.name] = TransientError(f"chart not resolved: {err.reason}")
            return f"{renderer} charts: unresolved"
        found = f"{renderer} charts: {charts}" if charts else renderer
        digests = images.identity(bundle.name) if images is not None else ""
        return f"{found} images: {digests}" if digests else found

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
    images: ImagePins | None = None  # the pinned images' digests, resolved when targeted
    # the render cache key of a unit of a pinning bundle: its id before the digests
    render_keys: dict[UnitKey, str] = field(default_factory=dict)
    # bundle -> why its images or chart could not be resolved now (a registry down): its
    # units are not synced (and not removed) until a later load resolves them
    deferred: dict[str, TransientError] = field(default_factory=dict)
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
        images: Mapping[str, Sequence[ImagePin]] = {},
        defer: Mapping[str, str] = {},
    ) -> DesiredState:
        """Target a loaded repository; `clusters` limits it to those clusters; `pins`
        are OCI chart versions, `images` image pins by bundle, resolved before (by the
        scheduler, for a worker); `defer` (bundle -> reason) the bundles the scheduler
        deferred (`deferred`): not asked of any registry here, so the ids agree.

        Raises FleetError for an unknown cluster name or a dependsOn cycle. Renders
        nothing, but the bundles that pin image digests and have no `images` preset: their
        units are rendered (every cluster's, whatever `clusters` says, so the ids agree
        with a full load) to find their images, which are resolved here.
        """
        check_clusters(repo, clusters)
        pinned = chart_pins(repo, plugins, pins)
        state = cls(repo, commit, plugins, [], [], cache or RenderCache(), pinned)
        state.images = image_pins(repo, plugins, images)
        state.deferred = {bundle: TransientError(why) for bundle, why in defer.items()}
        units = fleet_units(repo, plugins, pinned, deferred=state.deferred)
        if any(pins_digests(b.options) for b in repo.bundles):
            state.render_keys = {u.key: u.deployment_id for u in units}
            state.units = units
            state.resolve_images()
            units = fleet_units(repo, plugins, pinned, state.images, state.deferred)
            state._manifests.clear()  # rendered under the ids before the digests
            state.render_keys = {
                u.key: state.render_keys[u.key]
                for u in units
                if u.bundle in state.images.bundles or u.bundle in state.deferred
            }
        if clusters:
            units = [u for u in units if u.cluster in clusters]
        reject_dependency_cycles(repo, units)
        state.gates = check_gates(repo, plugins)
        state.units = units
        state.clusters = [
            c.name for c in repo.definition.clusters if not clusters or c.name in clusters
        ]
        return state

    def resolve_images(self) -> None:
        """Render the units of every bundle that pins digests and has no pins yet, and
        resolve their images once each (`fleet.registry.image_pins`). A bundle whose
        registry is down goes to `deferred`; any other problem raises, with every one."""
        assert self.images is not None
        problems: dict[str, Problem] = {}
        for bundle in self.repo.bundles:
            options = bundle.options.images
            if options is None or not options.pin_digests or bundle.name in self.images.bundles:
                continue
            if bundle.name in self.deferred:
                continue  # its chart is not resolved, or the scheduler deferred it
            try:
                found: list[str] = []
                for unit in self.units:
                    if unit.bundle == bundle.name:
                        found.extend(container_images(self._rendered(unit)))
                self.images.pin_bundle(bundle.name, dict.fromkeys(found), options)
            except TransientError as err:
                self.deferred[bundle.name] = TransientError(f"{IMAGES_DOWN}: {err.reason}")
            except FleetError as err:
                for problem in err.problems:
                    problems.setdefault(str(problem), problem)
        if problems:
            raise FleetError(problems=problems.values())

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
        render fails; the render cache remembers the failure for the same input), with
        the bundle's images pinned to their digests when it pins them; the bundle's
        `TransientError` when its images could not be resolved (`deferred`)."""
        deferred = self.deferred.get(unit.bundle)
        if deferred is not None:
            raise deferred
        return self._rendered(unit)

    def deferred_reasons(self) -> dict[str, str]:
        """bundle -> why it is deferred ("image digests not resolved: ...", "chart not
        resolved: ..."): the planner's `deferred`, and what workers get through Redis."""
        return {bundle: err.reason for bundle, err in sorted(self.deferred.items())}

    def renderable(self, bundle: str) -> bool:
        """False for a bundle deferred for its chart: it cannot be rendered until then."""
        found = self.deferred.get(bundle)
        return found is None or not found.reason.startswith(CHART_DOWN)

    def _rendered(self, unit: DeploymentUnit) -> list[Manifest]:
        """`manifests` without the deferred check (the objects a deferred bundle claims
        are known without its digests)."""
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
                render_key=self.render_keys.get(unit.key),
            )
            found = render_bundle(request, self.plugins, self.cache).manifests
            if self.images is not None and unit.bundle in self.images.bundles:
                pin_images(found, {p.image: p.digest for p in self.images.of(unit.bundle)})
            images = unit.options.images
            if images is not None:  # names only: the Secrets are made at apply time
                attach_pull_secrets(found, [p.secret_name for p in images.pull_secrets if p.attach])
            self._manifests[unit.key] = found
        return found

    def claims(self, cluster: str) -> Claims:
        """What every bundle of this commit renders on `cluster` (`fleet.engine.identity`):
        the engine's answer to "does another bundle still want this object?". Renders the
        cluster's units that are not rendered yet (FleetError if one fails)."""
        found = self._claims.get(cluster)
        if found is None:
            found = Claims.of(
                (u.bundle, self._rendered(u), u.options.target_namespace)
                for u in self.units
                if u.cluster == cluster and self.renderable(u.bundle)
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
            if unit.bundle in self.deferred:
                continue  # its registry is down: reported by the runtime, not a bad commit
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


def targeted_units(
    repo: FleetRepo, plugins: FleetPlugins, commit: str = ""
) -> list[DeploymentUnit]:
    """The units of a loaded commit with the ids `fleet sync` and `fleet serve` give them,
    pinned images' digests included (a bundle that pins digests is rendered to find them):
    what a rollout record's revision is computed from, so `fleet rollout wait` and the
    promotion by waves compare against the same revision the runtimes recorded."""
    return DesiredState.target(repo, commit, plugins).units


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
