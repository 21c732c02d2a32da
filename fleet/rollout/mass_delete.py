"""The mass-delete guard: a commit that would delete most of what a fleet runs stops first.

A typo in the definition's bundle `paths`, a wrong branch, or an emptied directory makes
a commit that is valid and renders fine, yet removes bundles everywhere. Argo CD refuses
an automated sync that would leave an application empty unless `allowEmpty` is set;
fleet does the same per cluster and for the fleet as a whole. Two rules, judged on the
removals a plan holds (bundles that left Git or stopped targeting a cluster), before
anything is deleted:

1. **Every bundle from a cluster**: a cluster that runs bundles of this fleet would be
   left with none at all (no unit of the commit targets it), and removing them deletes
   objects;
2. **A share of the fleet's objects**: the removals would delete more than `share`
   (default 0.5) of the objects this fleet's inventories list on the clusters in scope,
   and at least `minimum` (default 10) objects, so small fleets can remove a bundle
   without ceremony.

Objects are counted from the inventories (`ActualUnit.objects`, the inventory's
`fleet-gitops.io/objects` annotation, or the inventory itself). A removal with
`keepResources` deletes nothing and counts zero; the embedded run also subtracts objects
that another bundle of the commit still wants on that cluster (a handover, not a delete).
Objects pruned from a bundle that stays are not counted (see the README).

Pure: the runtimes count, this module judges and words the verdict. How the guard is
lifted is the runtime's (`fleet sync --allow-mass-delete`, `fleet serve
--allow-mass-delete` or a commit trailer `Fleet-Allow-Mass-Delete: true`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fleet.rollout.planner import Removal
from fleet.states import ActualUnit
from fleet.targeting.units import UnitKey

DEFAULT_SHARE = 0.5
DEFAULT_MINIMUM = 10
SYNC_ALLOW = "run fleet sync --allow-mass-delete"
SERVE_ALLOW = (
    "restart fleet serve with --allow-mass-delete, or push a commit whose message has the "
    "trailer 'Fleet-Allow-Mass-Delete: true'"
)
COMMIT_TRAILER = "fleet-allow-mass-delete: true"


@dataclass(frozen=True)
class MassDeleteRule:
    """The thresholds: FLEET_MASS_DELETE_SHARE and FLEET_MASS_DELETE_MIN_OBJECTS."""

    share: float = DEFAULT_SHARE
    minimum: int = DEFAULT_MINIMUM


@dataclass(frozen=True)
class RemovalCount:
    """One removal and how many objects it would delete (None: not known)."""

    bundle: str
    cluster: str
    objects: int | None


@dataclass
class MassDelete:
    """The verdict: `reasons` empty means the removals may go ahead."""

    reasons: list[str] = field(default_factory=list)
    deleting: int = 0
    total: int = 0

    @property
    def blocked(self) -> bool:
        return bool(self.reasons)

    def message(self, allow: str) -> str:
        """One line: what would happen, that nothing was deleted, and how to allow it."""
        return (
            f"mass delete stopped: this commit {'; and '.join(self.reasons)}; nothing was "
            f"deleted (a typo in the definition's bundle paths?). If it is intended, {allow}"
        )

    def to_json(self, allow: str) -> dict[str, object]:
        return {
            "blocked": self.blocked,
            "reasons": list(self.reasons),
            "deleting": self.deleting,
            "total": self.total,
            "message": self.message(allow) if self.blocked else "",
        }


def judge_mass_delete(
    fleet: str,
    removals: Sequence[RemovalCount],
    deployed: Mapping[UnitKey, int | None],
    desired: Collection[UnitKey],
    rule: MassDeleteRule,
) -> MassDelete:
    """Judge `removals` against what the clusters run (`deployed`: (bundle, cluster) ->
    objects listed, None unknown) and what the commit wants (`desired` unit keys)."""
    verdict = MassDelete(
        deleting=sum(r.objects or 0 for r in removals),
        total=sum(n or 0 for n in deployed.values()),
    )
    wanted_on = {cluster for _, cluster in desired}
    for cluster in sorted({r.cluster for r in removals}):
        if cluster in wanted_on:
            continue
        running = [b for b, c in deployed if c == cluster]
        here = [r for r in removals if r.cluster == cluster]
        if running and any(r.objects is None or r.objects > 0 for r in here):
            objects = sum(r.objects or 0 for r in here)
            verdict.reasons.append(
                f"would remove every bundle of fleet {fleet} from cluster {cluster} "
                f"({len(running)} bundles, {objects} objects)"
            )
    if verdict.deleting >= max(rule.minimum, 1) and verdict.deleting > rule.share * verdict.total:
        share = verdict.deleting / verdict.total if verdict.total else 1.0
        verdict.reasons.append(
            f"would delete {verdict.deleting} of the fleet's {verdict.total} objects "
            f"({share:.0%}, more than FLEET_MASS_DELETE_SHARE {rule.share:.0%})"
        )
    return verdict


def commit_allows(message: str) -> bool:
    """The commit message carries the trailer `Fleet-Allow-Mass-Delete: true`."""
    return any(line.strip().lower() == COMMIT_TRAILER for line in message.splitlines())


def cached_verdict(
    fleet: str,
    removals: Sequence[Removal],
    cached: Mapping[UnitKey, ActualUnit],
    desired: Iterable[UnitKey],
    rule: MassDeleteRule,
) -> MassDelete:
    """The verdict from cached counts (`fleet serve`)."""
    counts = []
    for removal in removals:
        rec = cached.get((removal.bundle, removal.cluster))
        objects = 0 if removal.keep_resources else (rec.objects if rec is not None else None)
        counts.append(RemovalCount(removal.bundle, removal.cluster, objects))
    deployed = {key: rec.objects for key, rec in cached.items()}
    return judge_mass_delete(fleet, counts, deployed, set(desired), rule)
