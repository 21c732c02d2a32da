"""A task's commit loaded again on a worker: (repository URL, commit) -> its DesiredState.

A task names a unit by (repository URL, commit sha, bundle, cluster, deployment id), never
by its manifests (`fleet.runtime.worker`), so the worker derives the unit again from Git:
the cached mirror gives the commit's files (fetched only when the mirror does not have the
commit yet), `fleet.desired.DesiredState.target` gives every unit, and only the unit a task
asks for is rendered. The scheduler's chart pins, image digests and deferred bundles for
the commit go in too, so both compute the same deployment ids. Loaded commits are kept in
a small LRU with their render cache, so a worker applying one commit to many clusters
renders each distinct (bundle, values) once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from fleet.desired import DesiredState
from fleet.errors import FleetError
from fleet.plugin.manager import FleetPlugins
from fleet.registry.charts import ChartPin
from fleet.registry.image_pins import ImagePin
from fleet.source.git import GitSource
from fleet.spec.loader import load_repository


class RevisionLoader:
    """(url, commit) -> its DesiredState, fetched through the Git mirror, LRU of `keep`."""

    def __init__(self, plugins: FleetPlugins | None = None, keep: int = 4) -> None:
        self.plugins = plugins or FleetPlugins.load()
        self.keep = keep
        self._loaded: OrderedDict[tuple[str, str, str], DesiredState] = OrderedDict()
        self._lock = threading.Lock()

    def load(
        self,
        url: str,
        commit: str,
        pins: Sequence[ChartPin] = (),
        images: Mapping[str, Sequence[ImagePin]] | None = None,
        defer: Mapping[str, str] | None = None,
    ) -> DesiredState:
        """The commit's units; fetches only when the mirror does not have the commit yet.
        `pins`: the scheduler's OCI chart versions for the commit, `images` its image
        digests by bundle, `defer` the bundles it deferred (so the ids agree)."""
        images, defer = images or {}, defer or {}
        pinned = sorted((b, str(p)) for b, found in images.items() for p in found)
        key = (url, commit, repr((tuple(pins), pinned, sorted(defer.items()))))
        with self._lock:
            found = self._loaded.get(key)
            if found is not None:
                self._loaded.move_to_end(key)
                return found
            revision = self._load(url, commit, pins, images, defer)
            self._loaded[key] = revision
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
            return revision

    def _load(
        self,
        url: str,
        commit: str,
        pins: Sequence[ChartPin],
        images: Mapping[str, Sequence[ImagePin]],
        defer: Mapping[str, str],
    ) -> DesiredState:
        source = GitSource(url, commit)
        try:
            path = source.checkout(commit) if source.is_cloned else None
        except FleetError:
            path = None  # the mirror does not have this commit yet
        if path is None:
            source.fetch()
            path = source.checkout(commit)
        return DesiredState.target(
            load_repository(path), commit, self.plugins, pins=pins, images=images, defer=defer
        )
