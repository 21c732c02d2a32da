"""Targeting: which bundle goes to which cluster, with which options, under which id.

A pure function of the loaded repository (no I/O): `compute_units` returns one
`DeploymentUnit` per (bundle, cluster) the bundle targets.

Rules (Rancher Fleet's, where it has one):

- A bundle without `targets` targets every cluster. With `targets` (on an inline bundle or
  on its `bundles.paths[]` entry) a cluster is targeted when any entry matches; an entry
  with several criteria (clusterName, clusterSelector, clusterGroup, clusterGroupSelector)
  needs all of them.
- A cluster belongs to every group whose selector matches its labels. clusterGroupSelector
  matches the labels of the groups the cluster belongs to.
- `targetCustomizations`: the first entry that matches wins (same criteria rules).
  `doNotDeploy: true` drops the unit. Overrides: namespace, defaultNamespace,
  serviceAccount, diff, correctDrift, keepResources, kustomize and yaml replace; namespace
  labels/annotations merge; helm fields replace except `values` (deep-merged) and
  `valuesFiles` (appended after the base files, so they win, as Rancher merges them over
  the base values). The merged options carry no targetCustomizations.
- Then helm values templating (`fleet.targeting.templating`) unless `helm.disablePreProcess`.

Speed: merged options and their canonical JSON are computed once per (bundle,
customization); values containing `${` are templated once per distinct value of the
context parts they read (e.g. once per region for `${ .ClusterLabels.region }`), and ids
are cached with them. No pydantic validation per unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.errors import FleetError, Problem
from fleet.spec.bundle_options import BundleOptions, LabelSelector, TargetCustomization
from fleet.spec.bundles import Bundle
from fleet.spec.cluster import ClusterContext
from fleet.spec.definition import BundleTarget, TargetCluster, cluster_context
from fleet.spec.hashing import canonical_json, deployment_id
from fleet.spec.loader import FleetRepo
from fleet.spec.merge import deep_merge
from fleet.targeting.selectors import CompiledSelector, compile_selector
from fleet.targeting.templating import (
    EVERYTHING,
    TemplateError,
    TemplateUses,
    build_context,
    check_template,
    render_values,
    template_uses,
)

RendererOf = Callable[[Bundle], str]
UnitKey = tuple[str, str]  # (bundle, cluster): how every stage names one deployment unit
_EMPTY: Mapping[str, LabelSelector] = {}


@dataclass(frozen=True, slots=True)
class DeploymentUnit:
    """One bundle on one cluster: the merged options and the id of that desired state."""

    bundle: str
    cluster: str
    options: BundleOptions
    deployment_id: str
    customization: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    region: str | None = None
    groups: frozenset[str] = frozenset()
    bundle_path: str = ""
    renderer: str = "auto"
    # labels of every group of the definition (shared by all units), for partitions'
    # clusterGroupSelector; the unit's own groups are `groups`
    group_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.deployment_id[:12]

    @property
    def key(self) -> UnitKey:
        return (self.bundle, self.cluster)


@dataclass(slots=True)
class _Matcher:
    cluster_name: str | None
    selector: CompiledSelector | None
    group: str | None
    group_selector: CompiledSelector | None

    def matches(self, cluster: _Cluster) -> bool:
        if self.cluster_name is not None and self.cluster_name != cluster.name:
            return False
        if self.selector is not None and not self.selector.matches(cluster.labels):
            return False
        if self.group is not None and self.group not in cluster.groups:
            return False
        if self.group_selector is not None:
            matcher = self.group_selector
            return any(matcher.matches(cluster.group_labels.get(g, {})) for g in cluster.groups)
        return True


def _matcher(entry: BundleTarget | TargetCustomization) -> _Matcher:
    return _Matcher(
        entry.cluster_name,
        compile_selector(entry.cluster_selector) if entry.cluster_selector is not None else None,
        entry.cluster_group,
        compile_selector(entry.cluster_group_selector)
        if entry.cluster_group_selector is not None
        else None,
    )


@dataclass(slots=True)
class _Cluster:
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    region: str | None
    groups: frozenset[str]
    group_labels: Mapping[str, Mapping[str, str]]


@dataclass(slots=True)
class _Variant:
    """The merged options of one (bundle, customization) and how to id them per cluster."""

    bundle: Bundle
    name: str | None
    index: int | None
    options: BundleOptions
    options_doc: dict[str, Any]
    inputs: tuple[str, ...]
    renderer: str
    templated: bool
    needs_context: bool
    uses: TemplateUses = EVERYTHING
    fixed_id: str = ""
    cache: dict[tuple[Any, ...], tuple[BundleOptions, str]] = field(default_factory=dict)
    failed: bool = False

    def unit(self, cluster: _Cluster, problems: list[Problem]) -> DeploymentUnit | None:
        options, unit_id = self.options, self.fixed_id
        if self.templated or self.needs_context:
            key = self.uses.key(cluster.name, cluster.labels, cluster.annotations)
            hit = self.cache.get(key)
            if hit is None:
                if self.failed:
                    return None
                try:
                    hit = self.cache[key] = self._for_cluster(cluster)
                except TemplateError as err:
                    self.failed = True
                    problems.append(_template_problem(self.bundle, self.index, err, cluster.name))
                    return None
            options, unit_id = hit
        return DeploymentUnit(
            self.bundle.name,
            cluster.name,
            options,
            unit_id,
            self.name,
            cluster.labels,
            cluster.region,
            cluster.groups,
            self.bundle.rel_path,
            self.renderer,
            cluster.group_labels,
        )

    def _for_cluster(self, cluster: _Cluster) -> tuple[BundleOptions, str]:
        """Template the values for one cluster; cached by the context parts they read."""
        context = build_context(cluster.name, cluster.labels, cluster.annotations)
        options, doc = self.options, self.options_doc
        helm = options.helm
        if self.templated and helm is not None:
            values = render_values(helm.values, context)
            options = options.model_copy(
                update={"helm": helm.model_copy(update={"values": values})}
            )
            doc = {**doc, "helm": {**doc.get("helm", {}), "values": values}}
        context_json = canonical_json(context) if self.needs_context else ""
        unit_id = deployment_id(
            self.bundle.content_hash, self.inputs, canonical_json(doc), self.renderer, context_json
        )
        return options, unit_id


def merge_customization(base: BundleOptions, custom: TargetCustomization) -> BundleOptions:
    """`custom`'s overrides over `base` (see module docstring); no targetCustomizations."""
    update: dict[str, Any] = {"target_customizations": []}
    for name in ("namespace", "default_namespace", "service_account", "kustomize", "yaml"):
        if getattr(custom, name) is not None:
            update[name] = getattr(custom, name)
    for name in ("diff", "correct_drift", "keep_resources"):
        if getattr(custom, name) is not None:
            update[name] = getattr(custom, name)
    if custom.namespace_labels:
        update["namespace_labels"] = {**base.namespace_labels, **custom.namespace_labels}
    if custom.namespace_annotations:
        update["namespace_annotations"] = {
            **base.namespace_annotations,
            **custom.namespace_annotations,
        }
    if custom.helm is not None:
        helm = base.helm.model_copy() if base.helm is not None else custom.helm.model_copy()
        if base.helm is not None:
            changes: dict[str, Any] = {}
            for name in custom.helm.model_fields_set:
                value = getattr(custom.helm, name)
                if name == "values":
                    value = deep_merge(base.helm.values, value)
                elif name == "values_files":
                    value = [*base.helm.values_files, *value]
                changes[name] = value
            helm = base.helm.model_copy(update=changes)
        update["helm"] = helm
    return base.model_copy(update=update)


def _variant(bundle: Bundle, renderer: str, index: int | None, problems: list[Problem]) -> _Variant:
    base = bundle.options
    name: str | None = None
    if index is None:
        options = base.model_copy(update={"target_customizations": []})
    else:
        custom = base.target_customizations[index]
        name = custom.name or f"targetCustomizations[{index}]"
        options = merge_customization(base, custom)
    helm = options.helm
    pre_process = helm is not None and not helm.disable_pre_process
    templated = (
        pre_process and helm is not None and _check_templates(bundle, index, helm.values, problems)
    )
    inputs: list[str] = []
    needs_context = False
    if helm is not None:
        for raw in helm.values_files:
            inputs.append(bundle.input_hashes.get(raw, ""))
            needs_context = needs_context or (pre_process and raw in bundle.templated_inputs)
        if helm.chart and helm.chart in bundle.input_hashes:
            inputs.append(bundle.input_hashes[helm.chart])
    kustomize_dir = options.kustomize.dir if options.kustomize is not None else None
    if kustomize_dir is not None and kustomize_dir in bundle.input_hashes:
        inputs.append(bundle.input_hashes[kustomize_dir])
    doc = options.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    variant = _Variant(
        bundle, name, index, options, doc, tuple(inputs), renderer, templated, needs_context
    )
    if templated and not needs_context and helm is not None:
        try:
            variant.uses = template_uses(helm.values)
        except TemplateError:
            variant.failed = True  # already reported by _check_templates
    if not templated and not needs_context:
        variant.fixed_id = deployment_id(
            bundle.content_hash, variant.inputs, canonical_json(doc), renderer
        )
    return variant


def _check_templates(
    bundle: Bundle, index: int | None, values: Any, problems: list[Problem]
) -> bool:
    """True when `values` hold templates; syntax errors are reported once, here."""
    found = False
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), values)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "${" in value:
                found = True
                try:
                    check_template(value)
                except TemplateError as err:
                    problems.append(
                        _template_problem(bundle, index, TemplateError(err.message, path), None)
                    )
        elif isinstance(value, Mapping):
            stack.extend(((*path, k), v) for k, v in value.items())
            stack.extend((path, k) for k in value if isinstance(k, str))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
    return found


def _template_problem(
    bundle: Bundle, index: int | None, err: TemplateError, cluster: str | None
) -> Problem:
    """The error at the line of the value, in the file (and layer) that wrote it."""
    loc: tuple[str | int, ...] = ("helm", "values", *err.path)
    file, line = None, None
    if index is not None:
        file, line = bundle.where(("targetCustomizations", index, *loc))
    if line is None or index is None:
        file, line = bundle.where(loc)
    suffix = f" (cluster '{cluster}')" if cluster else ""
    return Problem(
        f"bundle '{bundle.name}': helm values template: {err.message}{suffix}", file, line
    )


@dataclass(slots=True)
class _Plan:
    """Everything about one bundle that does not depend on the cluster."""

    bundle: Bundle
    targets: tuple[_Matcher, ...]
    customizations: tuple[tuple[_Matcher, bool, _Variant | None], ...]
    base: _Variant

    def unit(self, cluster: _Cluster, problems: list[Problem]) -> DeploymentUnit | None:
        if self.targets and not any(t.matches(cluster) for t in self.targets):
            return None
        for matcher, do_not_deploy, variant in self.customizations:
            if matcher.matches(cluster):
                if do_not_deploy or variant is None:
                    return None
                return variant.unit(cluster, problems)
        return self.base.unit(cluster, problems)


def plan_bundle(bundle: Bundle, renderer_of: RendererOf | None, problems: list[Problem]) -> _Plan:
    renderer = renderer_of(bundle) if renderer_of is not None else (bundle.renderer or "auto")
    customs = []
    for i, custom in enumerate(bundle.options.target_customizations):
        variant = None if custom.do_not_deploy else _variant(bundle, renderer, i, problems)
        customs.append((_matcher(custom), custom.do_not_deploy, variant))
    return _Plan(
        bundle,
        tuple(_matcher(t) for t in bundle.targets),
        tuple(customs),
        _variant(bundle, renderer, None, problems),
    )


def _clusters(
    contexts: Iterable[ClusterContext],
    groups: Mapping[str, LabelSelector],
    group_labels: Mapping[str, Mapping[str, str]],
) -> list[_Cluster]:
    compiled = [(name, compile_selector(sel)) for name, sel in groups.items()]
    out = []
    for ctx in contexts:
        member = frozenset(name for name, sel in compiled if sel.matches(ctx.labels))
        annotations = ctx.annotations if isinstance(ctx, TargetCluster) else {}
        region = ctx.region if isinstance(ctx, TargetCluster) else ctx.labels.get("region")
        out.append(_Cluster(ctx.name, ctx.labels, annotations, region, member, group_labels))
    return out


def compute_units(repo: FleetRepo, renderer_of: RendererOf | None = None) -> list[DeploymentUnit]:
    """Every (bundle, cluster) unit of the fleet, bundles in order, then clusters in order.

    Raises FleetError listing every templating problem (one per bundle and customization).
    """
    problems: list[Problem] = []
    plans = [plan_bundle(bundle, renderer_of, problems) for bundle in repo.bundles]
    groups = {g.name: g.selector for g in repo.definition.groups}
    group_labels = {g.name: g.labels for g in repo.definition.groups}
    clusters = _clusters(
        (cluster_context(c) for c in repo.definition.clusters), groups, group_labels
    )
    units: list[DeploymentUnit] = []
    append = units.append
    for plan in plans:
        for cluster in clusters:
            unit = plan.unit(cluster, problems)
            if unit is not None:
                append(unit)
    if problems:
        raise FleetError(problems=problems)
    return units


def unit_for_cluster(
    bundle: Bundle,
    cluster: ClusterContext,
    groups: Mapping[str, LabelSelector] = _EMPTY,
    renderer_of: RendererOf | None = None,
    *,
    group_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> DeploymentUnit | None:
    """The unit of one bundle on one cluster; None when not targeted or doNotDeploy.

    For `fleet render` and tests; `compute_units` is the fast path for a whole fleet.
    """
    problems: list[Problem] = []
    plan = plan_bundle(bundle, renderer_of, problems)
    (target,) = _clusters([cluster], groups, group_labels or {})
    unit = plan.unit(target, problems)
    if problems:
        raise FleetError(problems=problems)
    return unit
