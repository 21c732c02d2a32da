"""Bundle options: the `fleet.yaml` inside a bundle directory, in Rancher Fleet's format.

A Rancher Fleet repository must render the same here, so field names and meanings follow
Rancher Fleet's `fleet.yaml` reference. The models are strict (an unknown key is an error)
but accept every documented Rancher field, including ones fleet carries without acting on
yet. Per-cluster options are produced by merging a `targetCustomizations` entry over the
base options (see `fleet.targeting.units`).

This module is the contract between loading/targeting and rendering: renderers receive a
merged `BundleOptions` for one cluster.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleet.spec.rollout_spec import Duration, GateSpec, MaxUnavailable, OfflinePolicy


class StrictModel(BaseModel):
    """Base for user-facing models: unknown keys are errors, camelCase names as in YAML."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


class LabelSelectorRequirement(StrictModel):
    """One `matchExpressions[]` entry, with Kubernetes' rules on `values`."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        # Kubernetes rejects these too; accepting them would silently match nothing/everything.
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs a non-empty 'values' list")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no 'values'")
        return self


class LabelSelector(StrictModel):
    """A Kubernetes label selector (matchLabels AND matchExpressions)."""

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions"
    )


def not_a_flag(value: str | None) -> str | None:
    """Refuse a value that helm, kustomize or git would read as a flag (`--post-renderer=sh`).

    Values from Git that become command-line arguments must not start with `-`; renderers
    also pass them as `--flag=value` and after `--`, but the commit is refused here, with
    file:line, before anything runs.
    """
    if value is not None and value.startswith("-"):
        raise ValueError(f"{value!r} starts with '-': a tool would read it as a flag")
    return value


_CHART_URL_SCHEMES = ("https://", "oci://")


def chart_url_problem(url: str, *, what: str) -> str | None:
    """Why `url` is not an acceptable chart location, or None (https or oci, with a host)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if f"{scheme.lower()}://" not in _CHART_URL_SCHEMES:
        return (
            f"{what} {url!r}: only https:// and oci:// chart sources are accepted "
            "(plain http is refused: anyone on the path could change the chart)"
        )
    if not host or host.startswith("-"):
        return f"{what} {url!r} has no host"
    return None


class ValuesFrom(StrictModel):
    """Rancher's `helm.valuesFrom`: values read from a ConfigMap or Secret at deploy time."""

    config_map_key_ref: dict[str, str] | None = Field(default=None, alias="configMapKeyRef")
    secret_key_ref: dict[str, str] | None = Field(default=None, alias="secretKeyRef")


class HelmOptions(StrictModel):
    """`helm:` of a bundle. `chart` is a local path, a chart name in `repo`, or `oci://...`."""

    chart: str | None = None
    repo: str | None = None
    version: str | None = None
    release_name: str | None = Field(default=None, alias="releaseName")
    values: dict[str, Any] = Field(default_factory=dict)
    values_files: list[str] = Field(default_factory=list, alias="valuesFiles")
    values_from: list[ValuesFrom] = Field(default_factory=list, alias="valuesFrom")
    timeout_seconds: int | None = Field(default=None, alias="timeoutSeconds")
    force: bool = Field(
        default=False,
        description="Rancher's 'override immutable resources': an object whose immutable "
        "fields changed is deleted and recreated; fields other managers own are taken over.",
    )
    take_ownership: bool = Field(default=False, alias="takeOwnership")
    max_history: int | None = Field(default=None, alias="maxHistory")
    atomic: bool = False
    wait_for_jobs: bool = Field(default=False, alias="waitForJobs")
    disable_pre_process: bool = Field(default=False, alias="disablePreProcess")
    disable_dns: bool = Field(default=False, alias="disableDNS")
    skip_schema_validation: bool = Field(default=False, alias="skipSchemaValidation")
    disable_dependency_update: bool = Field(default=False, alias="disableDependencyUpdate")
    # `template` (`helm template`, fleet applies the objects) is the only mode: a `release`
    # mode (a real Helm release, hooks run by helm) is refused rather than parsed and ignored
    mode: Literal["template", "release"] = "template"

    @field_validator("mode")
    @classmethod
    def _template_only(cls, value: str) -> str:
        if value != "template":
            raise ValueError(
                "'release' is not supported: fleet renders charts with "
                "`helm template` and applies the objects itself (hooks are applied as "
                "plain objects); remove helm.mode"
            )
        return value

    @field_validator("chart", "repo", "version", "release_name")
    @classmethod
    def _not_a_flag(cls, value: str | None) -> str | None:
        return not_a_flag(value)

    @field_validator("repo")
    @classmethod
    def _repo_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.lower().startswith("https://"):
            raise ValueError(
                f"{value!r}: a chart repository must be an https:// URL (for OCI, write the "
                "oci:// reference as the chart; plain http is refused)"
            )
        problem = chart_url_problem(value, what="repository")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("chart")
    @classmethod
    def _chart_source(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("git::", "git@", "file:")):
            raise ValueError(
                f"{value!r}: helm fetches charts over https or oci only (or give a path "
                "inside the repository)"
            )
        problem = chart_url_problem(value, what="chart")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("values", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        return helm_values_with_string_keys(value) if isinstance(value, dict) else value


def helm_key(key: Any) -> str:
    """A values key as Helm sees it: its YAML parser (sigs.k8s.io/yaml) turns the keys of
    every mapping into JSON strings, `1` -> "1", `true` -> "true", `1.5` -> "1.5"."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return {"inf": ".inf", "-inf": "-.inf", "nan": ".nan"}.get(repr(key), repr(key))
    raise ValueError(f"a values key must be a string, a number or a boolean, not {key!r}")


def helm_values_with_string_keys(value: Any) -> Any:
    """`value` with every mapping key a string (`helm_key`), at every depth.

    Helm never sees a non-string key, and mixed `1`/`"b"` keys would break the sorted JSON
    that deployment ids hash. Two keys that become the same string (`1` and `"1"`) are an
    error: Helm would keep one of them at random.
    """
    if isinstance(value, list):
        return [helm_values_with_string_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        text = helm_key(key)
        if text in out:
            raise ValueError(f"values key {text!r} is given twice (once not as a string)")
        out[text] = helm_values_with_string_keys(item)
    return out


class KustomizeOptions(StrictModel):
    dir: str | None = None

    @field_validator("dir")
    @classmethod
    def _not_a_flag(cls, value: str | None) -> str | None:
        return not_a_flag(value)


class YamlOptions(StrictModel):
    overlays: list[str] = Field(default_factory=list)


class ComparePatch(StrictModel):
    """`diff.comparePatches[]`: fields of one object that drift detection ignores."""

    api_version: str | None = Field(default=None, alias="apiVersion")
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    operations: list[dict[str, Any]] = Field(default_factory=list)
    json_pointers: list[str] = Field(default_factory=list, alias="jsonPointers")


class DiffOptions(StrictModel):
    compare_patches: list[ComparePatch] = Field(default_factory=list, alias="comparePatches")


class CorrectDrift(StrictModel):
    enabled: bool = Field(
        default=False,
        description="Check for drift on every sync and put Git's values back, taking over "
        "fields other managers took (kubectl scale, kubectl edit).",
    )
    force: bool = Field(
        default=False,
        description="When correcting drift, also delete and recreate an object whose "
        "immutable fields differ.",
    )
    keep_fail_history: bool = Field(default=False, alias="keepFailHistory")


class Partition(StrictModel):
    """One rollout wave: the clusters a selector picks, rolled out together."""

    name: str | None = None
    max_unavailable: MaxUnavailable | None = Field(default=None, alias="maxUnavailable")
    cluster_name: str | None = Field(default=None, alias="clusterName")
    cluster_selector: LabelSelector | None = Field(default=None, alias="clusterSelector")
    cluster_group: str | None = Field(default=None, alias="clusterGroup")
    cluster_group_selector: LabelSelector | None = Field(default=None, alias="clusterGroupSelector")
    # fleet extensions (progressive delivery), as on the definition's waves
    gates: list[GateSpec] = Field(default_factory=list)
    bake: Duration | None = None
    offline: OfflinePolicy | None = None
    delay: Duration | None = None


class RolloutStrategy(StrictModel):
    """Rancher Fleet's rollout strategy; `partitions` are this bundle's waves (they win over
    the definition's `rollout.waves` for this bundle). fleet adds gates, bake and
    autoRollback (for every wave of the bundle)."""

    max_unavailable: MaxUnavailable | None = Field(default=None, alias="maxUnavailable")
    max_unavailable_partitions: MaxUnavailable | None = Field(
        default=None, alias="maxUnavailablePartitions"
    )
    auto_partition_size: MaxUnavailable | None = Field(default=None, alias="autoPartitionSize")
    auto_partition_threshold: int | None = Field(default=None, ge=0, alias="autoPartitionThreshold")
    max_new: int | None = Field(default=None, ge=1, alias="maxNew")
    partitions: list[Partition] = Field(default_factory=list)
    # fleet extensions
    gates: list[GateSpec] = Field(default_factory=list)
    bake: Duration | None = None
    auto_rollback: bool | None = Field(default=None, alias="autoRollback")
    offline: OfflinePolicy | None = None


class DependsOn(StrictModel):
    """Another bundle that must be Ready on the same cluster first (by name or selector)."""

    name: str | None = None
    selector: LabelSelector | None = None


class IgnoreOptions(StrictModel):
    conditions: list[dict[str, str]] = Field(default_factory=list)


_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class PullSecretOption(StrictModel):
    """One `images.pullSecrets[]` entry: a `kubernetes.io/dockerconfigjson` Secret made from
    the credential of the definition's registry `registry`, in every namespace the bundle's
    objects use (`fleet.engine.pull_secrets`); its credential is never in Git or a manifest."""

    registry: str = Field(
        min_length=1,
        description="The name of an entry of the definition's `registries` that has a "
        "`credential`; the worker's environment holds the credential itself.",
    )
    name: str | None = Field(
        default=None,
        description="The Secret's name (default fleet-pull-<registry>).",
    )
    attach: bool = Field(
        default=True,
        description="Add the Secret to `imagePullSecrets` of every pod spec of the bundle "
        "(only its name goes into the manifests).",
    )

    @field_validator("name")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid Secret name (lower-case DNS subdomain)")
        return value

    @property
    def secret_name(self) -> str:
        return self.name or f"fleet-pull-{self.registry.lower()}"


class ImageOptions(StrictModel):
    """fleet extension `images`: digest pinning of the rendered manifests' container images
    (`fleet.registry.image_pins`) and pull Secrets (`pullSecrets`); in a bundle's fleet.yaml
    or the definition's `defaults`."""

    pin_digests: bool = Field(
        default=False,
        alias="pinDigests",
        description="Rewrite every container image to name:tag@sha256:..., resolved once "
        "per commit through the definition's registries.",
    )
    unlisted_registries: Literal["skip", "resolve"] = Field(
        default="skip",
        alias="unlistedRegistries",
        description="An image on a registry the definition's `registries` do not name: "
        "`skip` leaves it unpinned with a warning (default: fleet contacts only the hosts "
        "the definition names); `resolve` asks that registry anonymously.",
    )
    pull_secrets: list[PullSecretOption] = Field(
        default_factory=list,
        alias="pullSecrets",
        description="Pull Secrets made from the worker's registry credentials in every "
        "namespace the bundle uses, and (attach) listed in its pods' imagePullSecrets.",
    )

    @field_validator("pull_secrets")
    @classmethod
    def _one_per_name(cls, value: list[PullSecretOption]) -> list[PullSecretOption]:
        names = [p.secret_name for p in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"pull secret {twice[0]!r} is given twice")
        return value


class TargetCustomization(StrictModel):
    """One `targetCustomizations[]` entry; the first entry that matches a cluster wins."""

    name: str | None = None
    cluster_name: str | None = Field(default=None, alias="clusterName")
    cluster_selector: LabelSelector | None = Field(default=None, alias="clusterSelector")
    cluster_group: str | None = Field(default=None, alias="clusterGroup")
    cluster_group_selector: LabelSelector | None = Field(default=None, alias="clusterGroupSelector")
    do_not_deploy: bool = Field(default=False, alias="doNotDeploy")
    # overrides, merged over the base options
    namespace: str | None = None
    default_namespace: str | None = Field(default=None, alias="defaultNamespace")
    service_account: str | None = Field(default=None, alias="serviceAccount")
    helm: HelmOptions | None = None
    kustomize: KustomizeOptions | None = None
    yaml: YamlOptions | None = None
    diff: DiffOptions | None = None
    correct_drift: CorrectDrift | None = Field(default=None, alias="correctDrift")
    keep_resources: bool | None = Field(default=None, alias="keepResources")
    namespace_labels: dict[str, str] | None = Field(default=None, alias="namespaceLabels")
    namespace_annotations: dict[str, str] | None = Field(default=None, alias="namespaceAnnotations")

    @field_validator("namespace", "default_namespace")
    @classmethod
    def _not_a_flag(cls, value: str | None) -> str | None:
        return not_a_flag(value)


class BundleOptions(StrictModel):
    """Everything a bundle's `fleet.yaml` may say (Rancher Fleet's format)."""

    # Rancher's optional explicit bundle name; otherwise derived from the path (fleet.spec.loader)
    name: str | None = None

    default_namespace: str | None = Field(default=None, alias="defaultNamespace")
    namespace: str | None = None
    service_account: str | None = Field(default=None, alias="serviceAccount")
    namespace_labels: dict[str, str] = Field(default_factory=dict, alias="namespaceLabels")
    namespace_annotations: dict[str, str] = Field(
        default_factory=dict, alias="namespaceAnnotations"
    )
    labels: dict[str, str] = Field(default_factory=dict)
    helm: HelmOptions | None = None
    kustomize: KustomizeOptions | None = None
    yaml: YamlOptions | None = None
    diff: DiffOptions | None = None
    correct_drift: CorrectDrift | None = Field(default=None, alias="correctDrift")
    keep_resources: bool = Field(default=False, alias="keepResources")
    delete_crd_resources: bool = Field(
        default=False,
        alias="deleteCRDResources",
        description="Rancher's: pruning or removing the bundle may delete its "
        "CustomResourceDefinitions, and with them every object of their kinds "
        "(default: CRDs are kept and reported).",
    )
    paused: bool = False
    rollout_strategy: RolloutStrategy | None = Field(default=None, alias="rolloutStrategy")
    depends_on: list[DependsOn] = Field(default_factory=list, alias="dependsOn")
    target_customizations: list[TargetCustomization] = Field(
        default_factory=list, alias="targetCustomizations"
    )
    ignore: IgnoreOptions | None = None
    override_targets: list[dict[str, Any]] = Field(default_factory=list, alias="overrideTargets")
    image_scans: list[dict[str, Any]] = Field(default_factory=list, alias="imageScans")
    # fleet extension: force a renderer by plugin name (`yaml`, `helm`, `kustomize`, ...)
    renderer: str | None = None
    # fleet extension: seconds to wait for health after apply (capped by the operator,
    # FLEET_MAX_WAIT_SECONDS: see fleet.runtime.waits)
    wait_timeout_seconds: int | None = Field(default=None, alias="waitTimeoutSeconds")
    # fleet extension: digest pinning of container images (`fleet.registry.image_pins`)
    images: ImageOptions | None = None

    @field_validator("namespace", "default_namespace")
    @classmethod
    def _not_a_flag(cls, value: str | None) -> str | None:
        return not_a_flag(value)

    @property
    def target_namespace(self) -> str:
        """Where the bundle's namespaced objects without a namespace go (Rancher's rule:
        `namespace`, else `defaultNamespace`, else `default`)."""
        return self.namespace or self.default_namespace or "default"
