"""The root `fleet.yaml` (`kind: Fleet`): clusters, groups, bundle sources, rollout, ...

The models are strict (an unknown key is an error with a hint, see `fleet.spec.validation`) and
export a JSON Schema (`fleet schema`) for yaml-language-server. Cross references (a group
used but not defined, duplicate names) are checked by `check_references`, outside pydantic,
so each problem keeps its own file:line.

Secrets never live here: a cluster names a kubeconfig file on the worker's disk or a
`credential` that the worker resolves from its own environment (`fleet.runtime.credentials`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from fleet.errors import Problem
from fleet.spec.bundle_options import BundleOptions, LabelSelector, StrictModel
from fleet.spec.cluster import ClusterContext
from fleet.spec.image_policies import ImagePolicySpec, ImageUpdatesSpec
from fleet.spec.rollout_spec import Duration as Duration  # re-exported for the definition's users
from fleet.spec.rollout_spec import GateSpec, OfflinePolicy
from fleet.spec.rollout_spec import MaxUnavailable as MaxUnavailable
from fleet.spec.rollout_spec import parse_duration as parse_duration

API_VERSION = "fleet-gitops.io/v1alpha1"

# DNS-1123 label: cluster names end up in queue names, env var names and Kubernetes objects.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]


RemoteHost = Annotated[
    str,
    Field(
        pattern=r"^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?(:[0-9]{1,5})?$",
        description="a host name or IP, optionally with :port (no scheme, no path)",
    ),
]


class KubeconfigRef(StrictModel):
    """A kubeconfig file on the worker's disk, inside the operator's `FLEET_KUBECONFIG_DIR`.

    The path comes from Git, so it is taken literally: relative to that directory (or
    absolute inside it), never expanded against the worker's environment (`~` and `$` are
    refused here, with file:line: `${FLEET_GIT_TOKEN}` must not become the token).
    `fleet.runtime.credentials` confines it to the directory; `origin` is the file and line
    of `path` in the definition, for the runtime's errors.
    """

    path: str = Field(min_length=1)
    context: str | None = None
    _origin: tuple[str, int | None] | None = PrivateAttr(default=None)

    @field_validator("path")
    @classmethod
    def _literal(cls, value: str) -> str:
        if value.startswith("~") or "$" in value:
            raise ValueError(
                "kubeconfig.path is not expanded ('~' and '$' are refused): give a path "
                "relative to the worker's FLEET_KUBECONFIG_DIR"
            )
        if "\0" in value:
            raise ValueError("kubeconfig.path must not contain a NUL character")
        return value

    @property
    def origin(self) -> tuple[str, int | None] | None:
        return self._origin

    def locate(self, file: str, line: int | None) -> None:
        """Remember where `path` is written (the loader calls this)."""
        self._origin = (file, line)


class ClusterSpec(StrictModel):
    """One target cluster. Reach it by `kubeconfig` or by `credential` (not both).

    With neither, the credential name defaults to the cluster name, so a demo or a
    `FLEET_CREDENTIALS_DIR` of `<cluster>.kubeconfig` files needs no extra lines.
    `region` routes apply tasks to a worker queue; it defaults to the `region` label.
    """

    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    kubeconfig: KubeconfigRef | None = None
    credential: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][-_.A-Za-z0-9]*$")
    region: str | None = None

    @model_validator(mode="after")
    def _one_way_in(self) -> ClusterSpec:
        if self.kubeconfig is not None and self.credential is not None:
            raise ValueError("give either 'kubeconfig' or 'credential', not both")
        return self

    @property
    def effective_region(self) -> str | None:
        return self.region or self.labels.get("region")

    @property
    def credential_name(self) -> str:
        return self.credential or self.name


class GroupSpec(StrictModel):
    """A named label selector. `labels` describe the group itself (for clusterGroupSelector)."""

    name: Name
    selector: LabelSelector
    labels: dict[str, str] = Field(default_factory=dict)
    description: str | None = None


class BundleTarget(StrictModel):
    """One `targets[]` entry: a cluster is targeted when it meets every criterion given.

    A bundle with several entries targets the union (any entry matches); a bundle without
    `targets` targets every cluster of the fleet.
    """

    name: str | None = None
    cluster_name: str | None = Field(default=None, alias="clusterName")
    cluster_selector: LabelSelector | None = Field(default=None, alias="clusterSelector")
    cluster_group: str | None = Field(default=None, alias="clusterGroup")
    cluster_group_selector: LabelSelector | None = Field(default=None, alias="clusterGroupSelector")

    @model_validator(mode="after")
    def _has_criterion(self) -> BundleTarget:
        if not has_criterion(self):
            raise ValueError(
                "a target needs clusterName, clusterSelector, clusterGroup or "
                "clusterGroupSelector (use clusterSelector: {} for all clusters)"
            )
        return self


def has_criterion(entry: Any) -> bool:
    """Does a target or targetCustomization entry say which clusters it is for?"""
    return any(
        getattr(entry, attr) is not None
        for attr in ("cluster_name", "cluster_selector", "cluster_group", "cluster_group_selector")
    )


def _glob_shorthand(value: Any) -> Any:
    return {"glob": value} if isinstance(value, str) else value


class PathSpec(StrictModel):
    """`bundles.paths[]`: a glob (relative to the repository root) and optional targets.

    Every directory the glob matches is one bundle. A plain string is shorthand for
    `{glob: ...}`.
    """

    glob: str = Field(min_length=1)
    targets: list[BundleTarget] = Field(default_factory=list)


class InlineBundle(BundleOptions):
    """A bundle declared in the root definition: explicit name, directory, options, targets."""

    name: Name
    path: str = Field(min_length=1)
    targets: list[BundleTarget] = Field(default_factory=list)


class BundleSources(StrictModel):
    paths: list[Annotated[PathSpec, BeforeValidator(_glob_shorthand)]] = Field(default_factory=list)
    inline: list[InlineBundle] = Field(default_factory=list)


class Wave(StrictModel):
    """A rollout wave: the clusters of a selector, a group or a list, rolled out together,
    then verified by its gates before the next wave starts."""

    name: Name
    selector: LabelSelector | None = None
    group: str | None = None
    clusters: list[str] | None = None
    max_unavailable: MaxUnavailable | None = Field(default=None, alias="maxUnavailable")
    gates: list[GateSpec] = Field(
        default_factory=list,
        description="Checks that must pass on this wave before the next one starts (after "
        "every unit of the wave is Ready); added to `rollout.gates`.",
    )
    bake: Duration | None = Field(
        default=None,
        description="Soak time: the wave must stay healthy (and its gates good) this long "
        "after it is Ready before the next wave starts; default `rollout.bake`.",
    )
    offline: OfflinePolicy | None = Field(
        default=None,
        description="A cluster of this wave that cannot be reached: `wait` for it (default), "
        "`skip` it (the wave completes without it), or count it as `unavailable` (it uses "
        "the maxUnavailable budget; the wave completes once it is the only one left).",
    )
    delay: Duration | None = Field(
        default=None, description="Wait this long after the previous wave passed."
    )
    max_new: int | None = Field(
        default=None,
        ge=1,
        alias="maxNew",
        description="At most this many of a bundle's units of this wave start a new "
        "revision at once (pacing); default `rollout.maxNew`.",
    )

    @model_validator(mode="after")
    def _one_choice(self) -> Wave:
        given = [self.selector is not None, self.group is not None, self.clusters is not None]
        if sum(given) != 1:
            raise ValueError("a wave needs exactly one of 'selector', 'group' or 'clusters'")
        return self


class ClusterScope(StrictModel):
    """The clusters a window or a freeze applies to: a selector, a group, a list, or (none
    given) every cluster."""

    selector: LabelSelector | None = None
    group: str | None = None
    clusters: list[str] | None = None

    @model_validator(mode="after")
    def _at_most_one(self) -> ClusterScope:
        given = [self.selector is not None, self.group is not None, self.clusters is not None]
        if sum(given) > 1:
            raise ValueError("give at most one of 'selector', 'group' or 'clusters'")
        return self


class MaintenanceWindow(ClusterScope):
    """When a new revision may start on the clusters it selects: from each time the cron
    `schedule` (5 fields, UTC) fires, for `duration`. A cluster selected by one or more
    windows starts new revisions only inside one of them."""

    schedule: str = Field(min_length=9, description="cron, 5 fields, UTC: '0 2 * * 1-5'")
    duration: Duration

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from fleet.spec.cron import parse_cron

        parse_cron(value)  # CronError is a ValueError: a file:line problem
        return value


class Freeze(ClusterScope):
    """No new revision starts on the clusters it selects while it is in the definition (and,
    with `until`, until that time). Removing it from Git ends the freeze."""

    reason: str = Field(default="", max_length=200)
    until: str | None = Field(
        default=None, description="ISO 8601 time (UTC if no offset) when the freeze ends."
    )

    @field_validator("until")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is not None:
            freeze_end(value)
        return value


def freeze_end(until: str) -> float:
    """Seconds since the epoch of a freeze's `until` (ISO 8601; UTC when no offset)."""
    try:
        when = datetime.fromisoformat(until)
    except ValueError:
        raise ValueError(
            f"until must be an ISO 8601 time like '2026-12-24T18:00:00Z', not {until!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class Rollout(StrictModel):
    """Progressive rollout across clusters (executed by the planner, validated here)."""

    max_unavailable: MaxUnavailable | None = Field(default=None, alias="maxUnavailable")
    waves: list[Wave] = Field(default_factory=list)
    gates: list[GateSpec] = Field(
        default_factory=list, description="Gates every wave must pass (before its own)."
    )
    bake: Duration | None = Field(default=None, description="Every wave's soak time.")
    auto_rollback: bool = Field(
        default=False,
        alias="autoRollback",
        description="A wave whose gate fails is put back to the previous good revision "
        "(the exact manifests that ran before, from the cluster's history).",
    )
    offline: OfflinePolicy = Field(default="wait", description="Every wave's offline policy.")
    max_new: int | None = Field(default=None, ge=1, alias="maxNew")
    windows: list[MaintenanceWindow] = Field(default_factory=list)
    freezes: list[Freeze] = Field(default_factory=list)


class MetricProvider(StrictModel):
    """A metrics server that `prometheus` gates (or a plugin's) query. `credential` names
    the operator's FLEET_METRICS_<CREDENTIAL> (a bearer token, or `user:password` for basic
    auth); never a secret in Git."""

    name: Name
    type: str = Field(default="prometheus", min_length=1)
    address: str = Field(min_length=1, description="http(s)://host:port[/path]")
    credential: Name | None = None
    timeout_seconds: int = Field(default=10, ge=1, le=120, alias="timeoutSeconds")


DEFAULT_POLL_INTERVAL = "1m"  # Flux's GitRepository default interval is 1m too


class SourceSpec(StrictModel):
    poll_interval: Duration = Field(default=DEFAULT_POLL_INTERVAL, alias="pollInterval")


def poll_interval(spec: SourceSpec | None) -> int:
    """Seconds between polls from the definition's `source.pollInterval` (default 1m)."""
    return parse_duration(spec.poll_interval if spec is not None else DEFAULT_POLL_INTERVAL)


class RegistrySpec(StrictModel):
    """An image registry served by a registry plugin (`type`: oci, dockerhub, quay, ghcr...)."""

    name: Name
    type: str = Field(min_length=1)
    host: str | None = None
    url: str | None = None
    credential: str | None = None

    @model_validator(mode="after")
    def _one_address(self) -> RegistrySpec:
        if self.host is not None and self.url is not None:
            raise ValueError("give either 'host' or 'url', not both")
        return self


NotifierEvent = Literal[
    "commit.detected",
    "commit.rejected",
    "unit.applied",
    "unit.failed",
    "unit.pruned",
    "bundle.removed",
    "drift.detected",
    "drift.corrected",
    "wave.started",
    "wave.passed",
    "wave.failed",
    "rollout.succeeded",
    "rollout.failed",
    "rollout.rolledBack",
    "cluster.unreachable",
    "cluster.recovered",
    "notifier.failed",
    "image.updated",
    "image.scanFailed",
    "image.promotionHeld",
    "commit.*",
    "unit.*",
    "bundle.*",
    "drift.*",
    "wave.*",
    "rollout.*",
    "cluster.*",
    "image.*",
    "*",
]
# Every event type (fleet.events.model.EventType; a unit test keeps the two equal): the
# names of `NotifierEvent` without the `subject.*` and `*` patterns.
EVENT_TYPES = tuple(name for name in get_args(NotifierEvent) if "*" not in name)
Severity = Literal["info", "warning", "error"]
NamePattern = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9*?\[\]-]+$")]


class NotifierSpec(StrictModel):
    """Where events go: `type` names a notifier plugin (webhook, slack, alertmanager,
    github, gitlab, or an installed one). Secrets never live here: `credential` names the
    operator's `FLEET_NOTIFIER_<CREDENTIAL>` (and `..._URL`, where a token may be sent)."""

    name: Name
    type: str = Field(min_length=1)
    url: str | None = Field(
        default=None,
        description="Where to deliver (webhook, alertmanager). A notifier that sends a token "
        "(github, gitlab, slack) takes its URL from the operator's environment instead.",
    )
    credential: Name | None = Field(
        default=None,
        description="The secret's name: the operator sets FLEET_NOTIFIER_<CREDENTIAL> "
        "(upper-cased, non-alphanumerics as _), and optionally FLEET_NOTIFIER_<CREDENTIAL>_URL.",
    )
    events: list[NotifierEvent] = Field(
        default_factory=list,
        description="Event types (or `unit.*`, `*`) this notifier gets; empty: failures, "
        "recoveries, rejected commits, rollouts and drift (not every applied unit).",
    )
    severities: list[Severity] = Field(
        default_factory=list, description="Only events of these severities; empty: all."
    )
    bundles: list[NamePattern] = Field(
        default_factory=list, description="Only events of these bundles (globs); empty: all."
    )
    clusters: list[NamePattern] = Field(
        default_factory=list, description="Only events of these clusters (globs); empty: all."
    )
    repository: str | None = Field(
        default=None,
        min_length=1,
        description="github: `owner/repo`; gitlab: the project id or `group/project` whose "
        "commits get a status.",
    )
    context: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="The commit status' context (name); default `fleet/<fleet name>`.",
    )
    retries: int = Field(default=3, ge=0, le=10, description="Delivery retries, with backoff.")
    timeout_seconds: int = Field(
        default=10, ge=1, le=120, alias="timeoutSeconds", description="Per delivery attempt."
    )


class FleetDefinition(StrictModel):
    """The root `fleet.yaml` of a fleet repository."""

    api_version: Literal["fleet-gitops.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Fleet"]
    name: Name
    description: str | None = None
    clusters: list[ClusterSpec] = Field(default_factory=list)
    groups: list[GroupSpec] = Field(default_factory=list)
    bundles: BundleSources = Field(default_factory=BundleSources)
    defaults: BundleOptions | None = None
    rollout: Rollout | None = None
    source: SourceSpec | None = None
    registries: list[RegistrySpec] = Field(default_factory=list)
    notifiers: list[NotifierSpec] = Field(default_factory=list)
    metric_providers: list[MetricProvider] = Field(default_factory=list, alias="metricProviders")
    image_policies: list[ImagePolicySpec] = Field(
        default_factory=list,
        alias="imagePolicies",
        description="Which tag of an image is the newest (semver, numerical or alphabetical, "
        "after filterTags and exclusionList); markers in bundle files name a policy.",
    )
    image_updates: ImageUpdatesSpec | None = Field(
        default=None,
        alias="imageUpdates",
        description="Scan interval and how changed markers are committed back to Git.",
    )
    # hosts whose kustomize remote references (https, git over https/ssh) bundles may use;
    # anything else remote is refused, file:// always (fleet.spec.kustomize_remote)
    kustomize_remote_hosts: list[RemoteHost] = Field(
        default_factory=list,
        alias="kustomizeRemoteHosts",
        description="Hosts (`host` or `host:port`) whose kustomize remote references "
        "(https files, git over https or ssh) bundles may use; what they resolve to is part "
        "of the deployment id. Anything else remote, and file:// always, is refused.",
    )


@dataclass(frozen=True)
class TargetCluster(ClusterContext):
    """A `ClusterContext` with what targeting and templating also need from the definition."""

    annotations: dict[str, str] = field(default_factory=dict)
    region: str | None = None


def cluster_context(spec: ClusterSpec) -> TargetCluster:
    """What renderers and templating may know about a cluster (never its credentials)."""
    return TargetCluster(
        name=spec.name,
        labels=dict(spec.labels),
        annotations=dict(spec.annotations),
        region=spec.effective_region,
    )


Loc = tuple[str | int, ...]


def check_references(definition: FleetDefinition) -> Iterator[tuple[Loc, str]]:
    """Duplicate names and references to undefined groups/clusters, as (location, message)."""
    yield from _duplicates(definition.clusters, ("clusters",), "cluster")
    yield from _duplicates(definition.groups, ("groups",), "group")
    yield from _duplicates(definition.bundles.inline, ("bundles", "inline"), "bundle")
    yield from _duplicates(definition.registries, ("registries",), "registry")
    yield from _duplicates(definition.notifiers, ("notifiers",), "notifier")
    yield from _duplicates(definition.image_policies, ("imagePolicies",), "image policy")
    yield from _registry_hosts(definition.registries)
    groups = {g.name for g in definition.groups}
    clusters = {c.name for c in definition.clusters}
    for i, path in enumerate(definition.bundles.paths):
        yield from _target_refs(path.targets, ("bundles", "paths", i, "targets"), groups)
    for i, inline in enumerate(definition.bundles.inline):
        yield from _target_refs(inline.targets, ("bundles", "inline", i, "targets"), groups)
    if definition.rollout is not None:
        yield from _duplicates(definition.rollout.waves, ("rollout", "waves"), "wave")
        for i, wave in enumerate(definition.rollout.waves):
            if wave.group is not None and wave.group not in groups:
                yield ("rollout", "waves", i, "group"), undefined_group(wave.group, groups)
            for j, name in enumerate(wave.clusters or ()):
                if name not in clusters:
                    yield ("rollout", "waves", i, "clusters", j), f"undefined cluster '{name}'"
        scoped = (("windows", definition.rollout.windows), ("freezes", definition.rollout.freezes))
        for key, scopes in scoped:
            for i, scope in enumerate(scopes):
                yield from _scope_refs(scope, ("rollout", key, i), groups, clusters)


def _scope_refs(
    scope: ClusterScope, loc: Loc, groups: set[str], clusters: set[str]
) -> Iterator[tuple[Loc, str]]:
    """A window's or a freeze's `group` and `clusters` must name defined ones."""
    if scope.group is not None and scope.group not in groups:
        yield (*loc, "group"), undefined_group(scope.group, groups)
    for j, name in enumerate(scope.clusters or ()):
        if name not in clusters:
            yield (*loc, "clusters", j), f"undefined cluster '{name}'"


def _registry_hosts(registries: list[RegistrySpec]) -> Iterator[tuple[Loc, str]]:
    """Two entries for one registry host: which credential would apply is a guess."""
    first: dict[str, int] = {}
    for i, spec in enumerate(registries):
        address = spec.host or spec.url
        if address is None:
            continue
        host = address.split("://", 1)[-1].split("/", 1)[0].lower()
        key = "host" if spec.host else "url"
        if host in first:
            yield (
                ("registries", i, key),
                (f"registry host '{host}' is already served by registries[{first[host]}]"),
            )
        else:
            first[host] = i


def undefined_group(name: str, groups: set[str]) -> str:
    from fleet.spec.validation import did_you_mean

    return f"undefined group '{name}'" + did_you_mean(name, groups)


def _target_refs(
    targets: list[BundleTarget], loc: Loc, groups: set[str]
) -> Iterator[tuple[Loc, str]]:
    for j, target in enumerate(targets):
        if target.cluster_group is not None and target.cluster_group not in groups:
            yield (*loc, j, "clusterGroup"), undefined_group(target.cluster_group, groups)


def _duplicates(items: list[Any], loc: Loc, what: str) -> Iterator[tuple[Loc, str]]:
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.name in first:
            yield (
                (*loc, i, "name"),
                f"duplicate {what} name '{item.name}' "
                f"(first defined in {loc[-1]}[{first[item.name]}])",
            )
        else:
            first[item.name] = i


def problems_at(doc_lines: Any, file: str, found: Iterator[tuple[Loc, str]]) -> list[Problem]:
    """Attach file:line (from a YamlDocument) to (location, message) pairs."""
    return [Problem(message, file, doc_lines.line_of(loc)) for loc, message in found]
