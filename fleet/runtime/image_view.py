"""`fleet images`: for every image policy, the tag it picks now and what each cluster runs.

Two reads, both read-only: one scan of the policies (`fleet.images.update.scan`, the same
the image loop does), and on every cluster of the commit the workloads fleet deployed
(Deployments, StatefulSets, DaemonSets, Jobs and CronJobs labelled with this fleet's
`fleet-gitops.io/fleet`, one LIST per kind), through the engine's kube client and the
operator's cluster credentials (`ClusterSet`, as `fleet status`).

A container whose image is the policy's repository (both sides normalised by the registry
provider, so `nginx` is `docker.io/library/nginx`) gives one row: its tag, and its digest
from an `@sha256:` pin, else from the `imageID` a running Pod of that namespace reports
for the same image, else "-". A row is `behind` when its tag is not the one the policy
picks now. An unreachable cluster is one row saying why; the other clusters are shown.

With `records` (the rollout store, opened by the caller), a `promotion: waves` policy
also gets one line per bundle: the wave its newest tag is at and what the next waits for
(`fleet.runtime.image_promotion`, on the commit shown and its own units).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet import config
from fleet.desired import load_desired
from fleet.engine.identity import short_name
from fleet.engine.kube import ClusterConnection
from fleet.engine.labels import LABEL_FLEET
from fleet.errors import FleetError
from fleet.images import update
from fleet.plugin.manager import FleetPlugins
from fleet.registry.access import Registries
from fleet.registry.reference import ImageReference, parse_reference
from fleet.render.images import containers
from fleet.rollout.record import BundleRollout, Controls
from fleet.runtime import image_promotion
from fleet.runtime.clusters import ClusterLink, ClusterSet
from fleet.source.local import resolve_source

WORKLOADS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
)


@dataclass(frozen=True)
class Running:
    """One container of one workload on one cluster."""

    cluster: str
    workload: str  # "Deployment ns/name"
    container: str
    image: str  # as the pod spec writes it
    tag: str | None
    digest: str | None


@dataclass
class PolicyImages:
    policy: str
    repository: str
    tag: str | None  # what the policy picks now (None: the scan failed)
    digest: str | None
    error: str | None
    running: list[Running] = field(default_factory=list)

    def behind(self, row: Running) -> bool:
        return self.tag is not None and row.tag != self.tag

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "repository": self.repository,
            "newest": {"tag": self.tag, "digest": self.digest},
            "error": self.error,
            "clusters": [
                {
                    "cluster": r.cluster,
                    "workload": r.workload,
                    "container": r.container,
                    "tag": r.tag,
                    "digest": r.digest,
                    "behind": self.behind(r),
                }
                for r in self.running
            ],
        }


@dataclass
class ImagesView:
    commit: str
    policies: list[PolicyImages]
    down: dict[str, str]  # cluster -> why unreachable
    promotion: list[str] = field(default_factory=list)  # `promotion: waves` progress lines


# () -> (records, controls) of the fleet's rollout store, read only when a policy is
# promoted by waves (the CLI opens the store `fleet rollout status` reads)
RecordsOf = Callable[[], tuple[Mapping[str, BundleRollout], Mapping[str, Controls]]]


def images_view(
    source: str | Path,
    *,
    branch: str | None = None,
    env: Mapping[str, str] | None = None,
    plugins: FleetPlugins | None = None,
    records: RecordsOf | None = None,
) -> ImagesView:
    """Scan the policies and read what every cluster of the commit runs; with `records`,
    where each bundle is in the promotion of each `promotion: waves` policy."""
    plugins = plugins or FleetPlugins.load()
    env = config.current().env if env is None else env
    checkout = resolve_source(source, branch)
    desired = load_desired(checkout.path, checkout.commit, plugins)
    definition = desired.repo.definition
    settings = config.Settings.from_env(env)
    result = update.scan(definition, plugins, settings=settings)
    registries = Registries(definition.registries, plugins, settings=settings)
    normalize = _normalizer(registries)
    views = []
    for spec in definition.image_policies:
        choice = result.choices.get(spec.name)
        views.append(PolicyImages(spec.name, spec.image, choice.tag if choice else None,
                                  choice.digest if choice else None,
                                  result.errors.get(spec.name)))  # fmt: skip
    wanted = {
        normalize(spec.image): view
        for spec, view in zip(definition.image_policies, views, strict=True)
    }
    specs = {c.name: c for c in definition.clusters}
    selector = f"{LABEL_FLEET}={short_name(desired.fleet_name)}"
    with ClusterSet([specs[name] for name in desired.clusters], retries=1, backoff=0.5) as run:
        with contextlib.suppress(FleetError):  # every cluster down: each says why below
            run.connect(env)
        found = run.each(lambda link: _read(link, selector))
        for cluster in sorted(found):
            for row in found[cluster] or []:
                key = normalize(row.image)
                if key is not None and key in wanted:
                    wanted[key].running.append(row)
        down = run.down
    promotion: list[str] = []
    if records is not None:

        def context(checkout: Path, commit: str) -> image_promotion.Context:
            found, controls = records()
            return image_promotion.Context(desired.repo, desired.units, found, controls)

        planner = image_promotion.planner(definition, result.choices, context)
        if planner is not None:
            try:
                plan = planner(checkout.path, checkout.commit)
                promotion = [*image_promotion.promotion_lines(plan), *plan.problems]
            except FleetError as err:  # the store: the images are worth showing anyway
                promotion = [f"rollout records not read: {err.reason}"]
    return ImagesView(desired.commit, views, down, promotion)


def _normalizer(registries: Registries) -> Callable[[str], tuple[str, str] | None]:
    def normalize(image: str) -> tuple[str, str] | None:
        try:
            ref = parse_reference(image)
            ref = registries.provider(ref.host).normalize(ref)
        except FleetError:
            return None
        return (ref.host.lower(), ref.repository)

    return normalize


def _read(link: ClusterLink, selector: str) -> list[Running]:
    return link.call("read workloads", lambda conn: _workloads(conn, link.name, selector))


def _workloads(conn: ClusterConnection, cluster: str, selector: str) -> list[Running]:
    rows: list[tuple[str, str, str, str]] = []  # (namespace, workload, container, image)
    for api_version, kind in WORKLOADS:
        res = conn.resource(api_version, kind)
        for item in conn.list_objects(res, None, label_selector=selector):
            meta = item.get("metadata") or {}
            namespace = str(meta.get("namespace") or "")
            # list items carry no kind; the pod-spec walk of digest pinning needs it
            for entry in containers({**item, "kind": kind}):
                image = entry.get("image")
                if isinstance(image, str):
                    workload = f"{kind} {namespace}/{meta.get('name')}"
                    rows.append((namespace, workload, str(entry.get("name")), image))
    ids = _image_ids(conn, {ns for ns, *_ in rows})
    out = []
    for namespace, workload, container, image in rows:
        ref = _parse(image)
        digest = ref.digest if ref else None
        out.append(Running(cluster, workload, container, image, ref.tag if ref else None,
                           digest or ids.get((namespace, image))))  # fmt: skip
    return out


def _image_ids(conn: ClusterConnection, namespaces: set[str]) -> dict[tuple[str, str], str]:
    """(namespace, image) -> the digest a running Pod reports in its `imageID`."""
    found: dict[tuple[str, str], str] = {}
    res = conn.resource("v1", "Pod")
    for namespace in sorted(namespaces):
        for pod in conn.list_objects(res, namespace):
            status = pod.get("status") or {}
            spec = {
                c.get("name"): c.get("image")
                for c in (pod.get("spec") or {}).get("containers") or []
            }
            for seen in status.get("containerStatuses") or []:
                image, image_id = spec.get(seen.get("name")), str(seen.get("imageID") or "")
                if isinstance(image, str) and "sha256:" in image_id:
                    found[(namespace, image)] = "sha256:" + image_id.rsplit("sha256:", 1)[1]
    return found


def _parse(image: str) -> ImageReference | None:
    try:
        return parse_reference(image)
    except FleetError:
        return None
