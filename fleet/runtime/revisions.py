"""A worker's view of one commit: the fleet's units at that commit, each rendered on demand.

A task names a unit by (repository URL, commit sha, bundle, cluster, deployment id), never
by its manifests, so the worker derives the unit again from Git: the cached mirror gives
the commit's files, targeting gives every unit (fast: 50,000 units in under two seconds)
and only the unit asked for is rendered. The same commit always gives the same ids, so a
task whose id does not match is stale, not a bug. Loaded commits are kept in a small LRU
with their render cache, so a worker applying one commit to many clusters renders each
distinct (bundle, values) once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from fleet.desired import fleet_units, render_request
from fleet.errors import FleetError
from fleet.manifest import Manifest
from fleet.plugin.manager import FleetPlugins
from fleet.render.cache import RenderCache
from fleet.render.pipeline import render_bundle
from fleet.source.git import GitSource
from fleet.spec.definition import ClusterSpec, TargetCluster, cluster_context
from fleet.spec.loader import FleetRepo, load_repository
from fleet.targeting.units import DeploymentUnit, UnitKey


@dataclass
class LoadedRevision:
    """One commit of a fleet repository, loaded and targeted; renders on demand."""

    repo: FleetRepo
    commit: str
    plugins: FleetPlugins
    units: dict[UnitKey, DeploymentUnit]
    cache: RenderCache = field(default_factory=RenderCache)

    @property
    def fleet_name(self) -> str:
        return self.repo.definition.name

    def cluster_spec(self, name: str) -> ClusterSpec:
        for spec in self.repo.definition.clusters:
            if spec.name == name:
                return spec
        raise FleetError(f"no cluster {name!r} in the definition at {self.commit[:12]}")

    def context(self, name: str) -> TargetCluster:
        return cluster_context(self.cluster_spec(name))

    def manifests(self, unit: DeploymentUnit) -> list[Manifest]:
        """The unit's rendered manifests (FleetError if its render fails)."""
        bundle = next(b for b in self.repo.bundles if b.name == unit.bundle)
        request = render_request(self.repo, bundle, unit, self.context(unit.cluster))
        return render_bundle(request, self.plugins, self.cache).manifests

    def keep_resources(self, bundle: str) -> bool | None:
        for b in self.repo.bundles:
            if b.name == bundle:
                return b.options.keep_resources
        return None


class RevisionLoader:
    """(url, commit) -> LoadedRevision, fetched through the Git mirror, LRU of `keep`."""

    def __init__(self, plugins: FleetPlugins | None = None, keep: int = 4) -> None:
        self.plugins = plugins or FleetPlugins.load()
        self.keep = keep
        self._loaded: OrderedDict[tuple[str, str], LoadedRevision] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, url: str, commit: str) -> LoadedRevision:
        """The commit's units; fetches only when the mirror does not have the commit yet."""
        key = (url, commit)
        with self._lock:
            found = self._loaded.get(key)
            if found is not None:
                self._loaded.move_to_end(key)
                return found
            revision = self._load(url, commit)
            self._loaded[key] = revision
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
            return revision

    def _load(self, url: str, commit: str) -> LoadedRevision:
        source = GitSource(url, commit)
        try:
            path = source.checkout(commit) if source.is_cloned else None
        except FleetError:
            path = None  # the mirror does not have this commit yet
        if path is None:
            source.fetch()
            path = source.checkout(commit)
        repo = load_repository(path)
        units = {(u.bundle, u.cluster): u for u in fleet_units(repo, self.plugins)}
        return LoadedRevision(repo, commit, self.plugins, units)
