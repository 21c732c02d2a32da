"""The sync engine: one cluster connection, one bundle, typed results. Both runtimes call it.

The embedded `fleet sync` / `fleet diff` / `fleet status` (`fleet.runtime.embedded`,
`fleet.runtime.live_status`) and the distributed workers (`fleet.runtime.worker`) only
orchestrate: which unit, when, on which connection. What happens on the cluster is these
these verbs, in the manner of fluxcd/pkg's ssa `ResourceManager` and Argo CD's gitops-engine:

- `deploy(conn, bundle, deployment_id, commit, manifests, options, fleet=...)`: apply
  (CRDs first, then namespaces, then the rest; a no-op writes nothing), correct drift when
  the bundle asks, prune what left the bundle, wait for health, record the inventory and
  stamp it as `fleet`'s. In: rendered manifests and the unit's options. Out: `UnitResult`
  (state, one-line message, per-object `ObjectResult`s, writes, the diff of a dry run).
- `remove(conn, bundle, fleet=..., claims=..., keep_resources=...)`: delete what the
  inventory says fleet applied, then the inventory. Out: `RemovalResult` (`.state`,
  `.message`, the objects).

Both `deploy` and `remove` take `fleet` (whose objects and inventory) and `claims` (a
callable giving `Claims`: what every bundle of the commit renders on this cluster). Claims
decide handovers (an object another bundle no longer renders is taken over, an object
another bundle now renders is left to it) and conflicts (two bundles rendering one object:
`fleet.engine.ownership`). Objects are identified by group, kind, namespace and name
(`fleet.engine.identity`), never by apiVersion.
- `read_deployed(conn, fleet=..., wanted=...)`: one metadata LIST of the inventories. Out:
  bundle -> `DeployedBundle` (id, commit, state, owner), only the bundles this fleet
  deployed or wants (`DeployedBundle.to_actual()` is the rollout planner's input).
- `inspect(conn, bundle, deployment_id, manifests, options)`: read-only drift and health
  of a deployed unit (server-side dry runs). Out: `Inspection` (state, message, drift).
- `rollback(conn, bundle, fleet, to=..., reason=...)`: apply a revision of the unit's
  history again, exactly as it ran (`fleet.engine.rollback`, `fleet.engine.history`:
  `list_revisions`, `read_revision`, `mark_revision`, `previous_good`). Out: `UnitResult`.
- `list_rolled_back(conn, fleet)`: the fleet's rolled-back revisions on a cluster (one
  metadata-only LIST), what a runtime that lost its rollout records rebuilds them from.

`ClusterUnreachable` propagates from every verb: retrying is the runtime's decision. Every
other API error is a result (ErrApplied, with the object and the reason). The engine knows
nothing of Git, targeting, Redis or Celery. Labels and annotations it writes:
`fleet.engine.labels`.
"""

from fleet.engine.apply import Action, ObjectResult
from fleet.engine.history import (
    HistoryUnreadable,
    Revision,
    RevisionStatus,
    list_revisions,
    list_rolled_back,
    mark_revision,
    previous_good,
    read_revision,
)
from fleet.engine.identity import Claims, Owner
from fleet.engine.inspection import Inspection, inspect
from fleet.engine.inventory import DeployedBundle, OwnerStamp, read_deployed
from fleet.engine.prune import RemovalResult, remove
from fleet.engine.rollback import RollbackRefused
from fleet.engine.rollback import rollback_unit as rollback
from fleet.engine.unit import UnitResult
from fleet.engine.unit import sync_unit as deploy

__all__ = [
    "Action",
    "Claims",
    "DeployedBundle",
    "HistoryUnreadable",
    "Inspection",
    "ObjectResult",
    "Owner",
    "OwnerStamp",
    "RemovalResult",
    "Revision",
    "RevisionStatus",
    "RollbackRefused",
    "UnitResult",
    "deploy",
    "inspect",
    "list_revisions",
    "list_rolled_back",
    "mark_revision",
    "previous_good",
    "read_deployed",
    "read_revision",
    "remove",
    "rollback",
]
