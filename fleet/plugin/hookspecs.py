"""Every hook a fleet plugin can implement, declared once, typed, documented.

A plugin is a module or object with functions decorated `@hookimpl` whose names match the
specs below (pluggy project "fleet"). Plugins are found through the entry-point group
`fleet`; the built-ins in `plugins/` are registered the same way, before them, so an
installed plugin can replace a built-in. pluggy calls implementations last-registered first.

The core never calls these hooks directly: `fleet.plugin.manager.FleetPlugins` has one typed
method per hook. Hooks marked "Experimental: declared, not called yet" are a contract for
plugins being written now; the engine parts that call them land later, and their signature
may still change until then.

Plugins import these names (and every type a hook receives) from `fleet.plugin`, the public
API, never from this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from fleet.events.model import Delivery, Event, Notification, NotifierTarget

FleetEvent = Event  # the name notifier plugins were written against

if TYPE_CHECKING:
    from fleet.gates.model import Gate
    from fleet.registry.provider import RegistryProvider
    from fleet.render.api import RendererRegistry, RenderRequest
    from fleet.spec.bundle_options import BundleOptions
    from fleet.spec.definition import MetricProvider, RegistrySpec
    from fleet.spec.rollout_spec import GateSpec

PROJECT = "fleet"
ENTRY_POINT_GROUP = "fleet"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class HealthVerdict:
    """One object's health as a health-check plugin sees it."""

    ready: bool
    message: str = ""


@hookspec
def fleet_register_renderers(registry: RendererRegistry) -> None:
    """Register renderers: call `registry.add(renderer)` once per renderer this plugin offers.

    Called once when the plugin manager is loaded (and again after plugins are registered or
    unregistered at run time), for each plugin in registration order: built-ins, then
    installed plugins, then plugins registered at run time. `renderer` implements
    `fleet.plugin.Renderer` (`name`, `version`, `render(request)`).

    A plugin that adds a name a built-in already registered replaces the built-in. Adding a
    name another installed plugin registered is an error at start-up unless the call is
    `registry.add(renderer, override=True)`. The return value is ignored.
    """


@hookspec(firstresult=True)
def fleet_detect_renderer(bundle_dir: Path, options: BundleOptions) -> str | None:
    """Which renderer handles a bundle whose fleet.yaml names none? First non-None answer wins.

    Called once per render when `options.renderer` is unset. `bundle_dir` is the absolute
    bundle directory; `options` the bundle options merged for the cluster. Return a renderer
    name, or None to let the next plugin decide. Built-ins: `helm` when `helm.chart` is set
    or Chart.yaml exists; `kustomize` when `kustomize.dir` is set or a kustomization file
    exists; `yaml` otherwise (registered `trylast`). Detection must only look, never write.
    """


@hookspec(firstresult=True)
def fleet_post_renderer(renderer: str, bundle_dir: Path, options: BundleOptions) -> str | None:
    """Which renderer runs over the output of `renderer` for this bundle? First non-None wins.

    Called once per render, and once per bundle when deployment ids are computed, after the
    renderer is chosen. `renderer` is the chosen renderer's name; `bundle_dir` and `options`
    as for `fleet_detect_renderer` (at targeting time the bundle's own options, before
    targetCustomizations). Return the name of a registered renderer to run as the second
    stage (it gets `request.input_manifests`), or None for no opinion. The core names no
    renderer here: the built-in kustomize plugin answers `kustomize` when `kustomize.dir` is
    set (for any renderer but kustomize itself) or when a `helm` bundle holds a
    kustomization at its root (Rancher Fleet's helm + kustomize). Only look, never raise for
    a broken bundle: the post-renderer reports that when it renders (its `check`).
    """


@hookspec
def fleet_transform_manifests(manifests: list[dict[str, Any]], request: RenderRequest) -> None:
    """Change rendered manifests for one cluster before they are applied (broadcast).

    Called after every render, for every implementation, with the manifests of one bundle
    for one cluster after `namespace`/`defaultNamespace` were applied. Modify `manifests` in
    place: edit objects, append or remove them (ownership labels, pull secrets, image
    pinning). The list is this cluster's own copy; the render cache is not affected.
    `request` says which bundle, options and cluster. The return value is ignored.
    """


@hookspec(firstresult=True)
def fleet_resolve_image(image: str, spec: RegistrySpec | None) -> str | None:
    """The digest of a container image, for digest pinning? First non-None answer wins.

    Called once per image per commit, when a bundle with `images: {pinDigests: true}` is
    targeted (`fleet.registry.image_pins`), for each image its rendered manifests hold
    that is not pinned yet. `image` is the reference as written in a manifest
    (`quay.io/org/app:1.2`, `nginx`); `spec` is the definition's `registries` entry for
    its host (None when the definition names none and the bundle said
    `images.unlistedRegistries: resolve`). Return the manifest digest (`sha256:...`) the
    image is to run at (from a mirror, a catalogue, a test), or None: then the core asks
    the registry itself (the `fleet_registry` provider and a manifest `HEAD`). No built-in
    plugin implements it. Raise `fleet.plugin.TransientError` when the source is down (the
    bundle waits for the next load), a `FleetError` for an image that cannot be pinned.
    """


@hookspec(firstresult=True)
def fleet_registry(host: str, spec: RegistrySpec | None) -> RegistryProvider | None:
    """Which provider serves this registry host? First non-None answer wins.

    Called once per registry host a fleet talks to (chart versions, tags, digests), before
    a client is made. `host` is `host[:port]` of a reference (`""` when the reference names
    none, as `nginx:1.27`: the Docker Hub plugin answers for it); `spec` is the
    definition's `registries` entry for that host, or None. Return a `RegistryProvider`
    (`fleet.plugin.RegistryProvider`, the generic OCI behaviour, subclassed for what a
    service does differently), or None. A plugin answers for its own `type` when `spec` is
    given, else for its well-known hosts; the built-in `oci` plugin (tried last) answers
    for every host no other plugin claims, and for `type: oci`.
    """


@hookspec(firstresult=True)
def fleet_health_check(obj: dict[str, Any]) -> HealthVerdict | None:
    """Is this object healthy? For custom kinds the built-in kstatus rules do not know.

    Experimental: declared, not called yet (the health waiter calls it per applied object,
    before its own rules). `obj` is the live object read from the cluster (with `status`).
    Return a `HealthVerdict`, or None when this plugin does not know the kind.
    """


@hookspec
def fleet_notifier_types() -> list[str] | None:
    """Which `notifiers[].type` values this plugin serves (broadcast: every plugin answers).

    Called when a commit is loaded and by `fleet validate`: a notifier whose type no plugin
    names is a file:line error there, not a delivery failure later. Return the type names
    your `fleet_notify` answers for (built-ins: `webhook`, `slack`, `alertmanager`,
    `github`, `gitlab`), or None.
    """


@hookspec(firstresult=True)
def fleet_notify(notifier: NotifierTarget, notification: Notification) -> Delivery | None:
    """Deliver a notification to one notifier of the definition. First non-None answer wins.

    Called on fleet's notifier thread (never on the rollout's), once per notification
    the notifier's route selects (`notifiers[].events`, `severities`, `bundles`,
    `clusters`), after fleet dropped what is not a state change and grouped the same
    failure on many clusters into one `Notification` (its `events`, `title`, `resolved`).
    `notifier` is the definition's entry with the operator's secret (`secret`, `api_url`
    from `FLEET_NOTIFIER_<CREDENTIAL>[_URL]`). Return None when `notifier.type` is not
    yours, else a `Delivery` (ok, or failed with one line: never the secret). Built-ins
    serve `webhook`, `slack`, `alertmanager`, `github` and `gitlab`; an installed plugin
    answering for one of those types replaces it. Do not raise for delivery failures:
    return `Delivery.failed(...)` (fleet logs it and records a `notifier.failed` event);
    `fleet.plugin.post_json` does a POST with retries and backoff.
    """


@hookspec(firstresult=True)
def fleet_gate(spec: GateSpec, providers: Mapping[str, MetricProvider]) -> Gate | None:
    """Build the gate `spec` describes, if `spec.type` is yours. First non-None answer wins.

    Called when a commit is loaded (so `fleet validate` and every sync check the gates'
    parameters), once per gate of a wave or a bundle's `rolloutStrategy`. `spec.params`
    holds every key of the entry but `type` and `name`, as written (camelCase);
    `providers` are the definition's `metricProviders` by name (`fleet.plugin.
    provider_for` picks the one a gate names). Raise `GateConfigError(message, key)` for
    bad parameters (reported at the file:line of `key`), return None when the type is not
    yours, else an object with `check(ctx: GateContext) -> GateResult` (see
    `fleet.gates.model`). Built-ins serve `prometheus`, `http` and `approval`; an
    installed plugin answering for one of those replaces it.
    """


@hookspec
def fleet_gate_types() -> list[str] | None:
    """Which gate `type` values this plugin serves (broadcast), for `fleet plugins` and
    for the "unknown gate type" error's list of known ones. Return the names or None."""


@hookspec(firstresult=True)
def fleet_cluster_credentials(cluster: str, credential: str) -> dict[str, Any] | None:
    """Who provides credentials for this named credential? First non-None answer wins.

    Experimental: declared, not called yet (workers call it before connecting to a
    cluster). `cluster` is the cluster's name in the fleet definition, `credential` the
    credential name it refers to. Return a kubeconfig as a mapping (parsed YAML, kept in
    memory), or None when this plugin does not know the credential. Secrets never live in
    Git: plugins read them from the worker's environment or a secret store.
    """
