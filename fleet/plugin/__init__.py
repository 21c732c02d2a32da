"""fleet's public plugin API: everything a plugin (built-in or third-party) may import.

A plugin imports from here and nowhere else in `fleet` (an import-linter contract checks
this for `plugins/`): the rest of the package is internal and may change between
releases. The names below are the contract.

- Hooks: `hookimpl` marks an implementation; the hooks are declared and documented in
  `fleet.plugin.hookspecs` (the README's plugin guide has the table).
- Renderers: `Renderer` (the protocol), `RenderRequest` (what a renderer reads),
  `RendererRegistry` (what `fleet_register_renderers` receives), `KUSTOMIZATION_FILES`.
- Bundle options as renderers see them: `BundleOptions`, `HelmOptions`,
  `KustomizeOptions`, `YamlOptions`; the target: `ClusterContext`.
- Types other hooks receive or return: `HealthVerdict`; for notifiers
  (`fleet_notify`) `Notification` (grouped `Event`s, `FleetEvent` is the same class),
  `NotifierTarget`, `Delivery`, `EventType`, `Severity`, and `post_json` (an HTTP POST
  with retries and backoff).
- Outgoing requests to URLs from Git: `http_client` (an httpx client that checks every
  request against the operator's `FLEET_ALLOWED_HOSTS` before connecting and never
  follows redirects; `post_json` checks the same way), `check_url` and `UrlRefused` for
  a plugin that sends requests some other way (`fleet.net`).
- Registries (`fleet_registry`): `RegistryProvider` (subclass it), `RegistrySpec` (the
  definition's entry), `ImageReference`/`parse_reference`, `RateLimit`/`parse_quota`,
  `RegistryClient` (the OCI distribution client a provider's `list_tags` receives);
  for a renderer that pulls from a registry, `registry_credential(request.registries,
  host)` (a `Credential` from the worker's environment, or None) and `docker_config`
  (that credential as an auth file for a tool: never on its command line).
- Gates (`fleet_gate`): `GateSpec` (the entry: `type`, `name`, `params`), `MetricProvider`
  and `provider_for` (the definition's `metricProviders`), `Gate` (what the hook returns:
  `check(ctx)`), `GateContext`, `GateTarget`, `GateResult`, `GateVerdict`, `Measurement`,
  `GateConfigError` (bad parameters, with the key), `parse_duration` ("30s", "5m").
  What the built-in measuring gates share, so a third party's gate behaves alike:
  `GateParams` (read and check parameters, unknown keys rejected), `AnalysisPolicy` and
  `run_analysis` (count/interval/failureLimit/inconclusiveLimit rounds kept in the gate's
  memory; `decide`, `round_outcome`, `Outcome` are its pure parts), `describe_measurements`
  and `format_value` (values for messages), `parse_condition` (`Condition`,
  `ConditionError`: a `successCondition` without eval), `GateTemplate`, `Placeholder`,
  `target_values`, `MissingValue` (`{{cluster}}`, `{{labels.KEY}}` substitutions), and
  `authorization_header`, `metrics_secret`, `metrics_variable`, `gate_variable` (the
  operator's FLEET_METRICS_<NAME> / FLEET_GATE_<NAME> credentials), `credential_guard`
  (an httpx request hook: a gate sending a credential refuses hosts its
  FLEET_METRICS_HOSTS_<NAME> / FLEET_GATE_HOSTS_<NAME> binding does not list).
- Errors: `FleetError(message, file=..., line=...)`, printed as one `path:line: message`;
  `TransientError` for a failure that may pass (a chart server down): never cached.
- Helpers renderers share with the core, so plugins parse and merge as fleet does:
  `Manifest`, `load_manifests`, `parse_yaml_documents`, `dump_manifests`, `deep_merge`
  (Helm's values rule), `PatchError`/`apply_patch` (the overlay patch types), and the
  Helm values templating of Rancher Fleet (`build_context`, `has_template`,
  `render_values`, `TemplateError`), and `find_tool` (`Tool`, `ToolNotConfigured`): an
  external binary from its `FLEET_*` variable, `PATH` or the interpreter's directory;
  `run_tool` (`ToolResult`, `ToolTimeout`) runs it without a shell, in its own process
  group, killed whole after `FLEET_RENDER_TIMEOUT` seconds.
- Testing a plugin: `FleetPlugins` (load the built-ins, `register` yours), `render_bundle`,
  `RenderCache`, `RenderResult`.

Importing this module is cheap: no Kubernetes client, no Git, no Celery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet.errors import FleetError, TransientError
from fleet.events.http import post_json
from fleet.events.model import Delivery, Event, EventType, Notification, NotifierTarget, Severity
from fleet.gates import (
    AnalysisPolicy,
    Condition,
    ConditionError,
    Gate,
    GateConfigError,
    GateContext,
    GateParams,
    GateResult,
    GateTarget,
    GateTemplate,
    GateVerdict,
    Measurement,
    MissingValue,
    Outcome,
    Placeholder,
    authorization_header,
    credential_guard,
    decide,
    describe_measurements,
    format_value,
    gate_variable,
    metrics_secret,
    metrics_variable,
    parse_condition,
    provider_for,
    round_outcome,
    run_analysis,
    target_values,
)
from fleet.manifest import Manifest
from fleet.net import UrlRefused, check_url, http_client
from fleet.plugin.hookspecs import FleetEvent, HealthVerdict, hookimpl
from fleet.plugin.manager import FleetPlugins
from fleet.registry.access import registry_credential
from fleet.registry.credentials import Credential, docker_config
from fleet.registry.provider import RateLimit, RegistryProvider, parse_quota
from fleet.registry.reference import ImageReference, parse_reference
from fleet.render.api import (
    KUSTOMIZATION_FILES,
    RegisteredRenderer,
    Renderer,
    RendererRegistry,
    RendererSource,
    RenderRequest,
)
from fleet.render.cache import RenderCache
from fleet.render.manifests import dump_manifests, load_manifests, parse_yaml_documents
from fleet.render.patching import PatchError, apply_patch
from fleet.render.pipeline import RenderResult, render_bundle
from fleet.render.tools import (
    Tool,
    ToolNotConfigured,
    ToolResult,
    ToolTimeout,
    find_tool,
    run_tool,
)
from fleet.spec.bundle_options import BundleOptions, HelmOptions, KustomizeOptions, YamlOptions
from fleet.spec.cluster import ClusterContext
from fleet.spec.definition import MetricProvider, RegistrySpec
from fleet.spec.merge import deep_merge
from fleet.spec.rollout_spec import GateSpec, parse_duration
from fleet.targeting.templating import TemplateError, build_context, has_template, render_values

if TYPE_CHECKING:
    from fleet.registry.client import RegistryClient


def __getattr__(name: str) -> Any:
    """`RegistryClient` on first use: it brings httpx, which `fleet --help` need not load."""
    if name == "RegistryClient":
        from fleet.registry.client import RegistryClient

        return RegistryClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KUSTOMIZATION_FILES",
    "AnalysisPolicy",
    "BundleOptions",
    "ClusterContext",
    "Condition",
    "ConditionError",
    "Credential",
    "Delivery",
    "Event",
    "EventType",
    "FleetError",
    "FleetEvent",
    "FleetPlugins",
    "Gate",
    "GateConfigError",
    "GateContext",
    "GateParams",
    "GateResult",
    "GateSpec",
    "GateTarget",
    "GateTemplate",
    "GateVerdict",
    "HealthVerdict",
    "HelmOptions",
    "ImageReference",
    "KustomizeOptions",
    "Manifest",
    "Measurement",
    "MetricProvider",
    "MissingValue",
    "Notification",
    "NotifierTarget",
    "Outcome",
    "PatchError",
    "Placeholder",
    "RateLimit",
    "RegisteredRenderer",
    "RegistryClient",
    "RegistryProvider",
    "RegistrySpec",
    "RenderCache",
    "RenderRequest",
    "RenderResult",
    "Renderer",
    "RendererRegistry",
    "RendererSource",
    "Severity",
    "TemplateError",
    "Tool",
    "ToolNotConfigured",
    "ToolResult",
    "ToolTimeout",
    "TransientError",
    "UrlRefused",
    "YamlOptions",
    "apply_patch",
    "authorization_header",
    "build_context",
    "check_url",
    "credential_guard",
    "decide",
    "deep_merge",
    "describe_measurements",
    "docker_config",
    "dump_manifests",
    "find_tool",
    "format_value",
    "gate_variable",
    "has_template",
    "hookimpl",
    "http_client",
    "load_manifests",
    "metrics_secret",
    "metrics_variable",
    "parse_condition",
    "parse_duration",
    "parse_quota",
    "parse_reference",
    "parse_yaml_documents",
    "post_json",
    "provider_for",
    "registry_credential",
    "render_bundle",
    "render_values",
    "round_outcome",
    "run_analysis",
    "run_tool",
    "target_values",
]
