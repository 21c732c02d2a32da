"""The rollout store of REPO's fleet, opened as the runtime keeps it: `fleet serve`'s Redis
with `--redis` or FLEET_REDIS_URL, else the `fleet-system/<fleet>.rollout` ConfigMaps of
the clusters of REPO's definition (with the operator's cluster credentials, as `fleet
sync`). Shared by `fleet rollout ...` and `fleet images update` (which reads the records
to promote a tag wave by wave), so both read the same records the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from fleet.errors import FleetError

if TYPE_CHECKING:
    from fleet.runtime.clusters import ClusterSet
    from fleet.runtime.rollout_store import RolloutStore
    from fleet.spec.loader import FleetRepo


@dataclass
class RolloutSession:
    """An open store, the repository it belongs to, and (embedded) the connections."""

    store: RolloutStore
    repo: FleetRepo
    clusters: ClusterSet | None  # the embedded store's connections (None: Redis)


@contextmanager
def rollout_session(repo_path: str, redis: str | None) -> Iterator[RolloutSession]:
    """The store of REPO's fleet (see the module docstring); the clusters it connected
    to are closed on exit. FleetError when no cluster answers (embedded)."""
    from fleet import config
    from fleet.runtime.clusters import ClusterSet
    from fleet.runtime.rollout_store import ClusterRolloutStore, RedisRolloutStore
    from fleet.runtime.state_cache import connect_redis
    from fleet.source.local import resolve_source
    from fleet.spec.loader import load_repository

    settings = config.current()
    repo = load_repository(resolve_source(repo_path, None).path)
    url = redis or (settings.redis_url if settings.redis_configured else None)
    if url:
        store = RedisRolloutStore(connect_redis(url), repo.definition.name)
        yield RolloutSession(store, repo, None)
        return
    clusters = ClusterSet(list(repo.definition.clusters), retries=1, backoff=0.5)
    try:
        clusters.connect(settings.env)
        for name, why in sorted(clusters.down.items()):
            typer.echo(f"warning: cluster {name}: not reached ({why})", err=True)
        conns = [link.conn for link in clusters.links.values() if link.conn is not None
                 and link.down is None]  # fmt: skip
        if not conns:
            raise FleetError("no cluster of the definition answers: rollout records not read")
        yield RolloutSession(ClusterRolloutStore(conns, repo.definition.name), repo, clusters)
    finally:
        clusters.close()
