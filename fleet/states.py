"""Rancher Fleet's display states and how they roll up: object -> bundle -> cluster -> fleet.

A Rancher Fleet user reads `ErrApplied` or `Modified` and knows what it means, so fleet
reports the same seven states with the same ranking (Rancher's `StateRank`): a roll-up is
always the worst state among its parts, and an empty roll-up is Ready (nothing to wait for).

What each state means in fleet's push model:

- Ready: applied, every object healthy, no drift.
- NotReady: applied, some object not healthy yet (or the health wait timed out).
- WaitApplied: dispatched (or an object was held back, e.g. its CRD not Established) but
  not applied yet.
- ErrApplied: the apply failed (invalid object, conflict, forbidden, render failure).
- OutOfSync: the cluster does not run the desired deployment id yet (a dry run that would
  change something reports this too).
- Pending: the scheduler has not dispatched the unit yet (rollout wave, dependsOn).
- Modified: applied and healthy, but objects were changed or deleted outside fleet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class BundleState(StrEnum):
    """One of Rancher Fleet's bundle/cluster display states (values are Rancher's names)."""

    READY = "Ready"
    NOT_READY = "NotReady"
    WAIT_APPLIED = "WaitApplied"
    ERR_APPLIED = "ErrApplied"
    OUT_OF_SYNC = "OutOfSync"
    PENDING = "Pending"
    MODIFIED = "Modified"

    @property
    def rank(self) -> int:
        """Rancher Fleet's StateRank: higher is worse, and wins a roll-up."""
        return STATE_RANK[self]

    @classmethod
    def parse(cls, text: str) -> BundleState:
        """A state read back from a cluster or a cache; unknown or empty -> NotReady, so
        whoever reads it looks again rather than trusting a value it does not know."""
        try:
            return cls(text)
        except ValueError:
            return cls.NOT_READY


# Rancher Fleet v1alpha1.StateRank, unchanged, so summaries match a Rancher user's intuition.
STATE_RANK: dict[BundleState, int] = {
    BundleState.ERR_APPLIED: 7,
    BundleState.WAIT_APPLIED: 6,
    BundleState.MODIFIED: 5,
    BundleState.OUT_OF_SYNC: 4,
    BundleState.PENDING: 3,
    BundleState.NOT_READY: 2,
    BundleState.READY: 1,
}


@dataclass(frozen=True, slots=True)
class ActualUnit:
    """What a cluster runs for one bundle: the deployment id, its state and commit.

    The one record of "what a cluster runs" that both runtimes hand the rollout planner:
    the embedded run reads it from the inventories (`fleet.engine.inventory.DeployedBundle.
    to_actual`), the distributed scheduler from its Redis cache (`CachedUnit` is one of
    these plus when and by whom it was reported). A state given as text is parsed.
    """

    deployment_id: str
    state: BundleState
    commit: str = ""
    message: str = ""
    keep_resources: bool = False
    objects: int | None = None  # objects in its inventory, when known (mass-delete guard)

    def __post_init__(self) -> None:
        if not isinstance(self.state, BundleState):
            object.__setattr__(self, "state", BundleState.parse(str(self.state)))

    @property
    def available(self) -> bool:
        """Applied and healthy (drift is reported, it does not block a rollout)."""
        state = self.state  # identity, not `in AVAILABLE`: the planner asks for every unit
        return state is _READY or state is _MODIFIED


AVAILABLE = frozenset({BundleState.READY, BundleState.MODIFIED})
_READY, _MODIFIED = BundleState.READY, BundleState.MODIFIED


def worst_state(states: Iterable[BundleState]) -> BundleState:
    """The highest-ranked state; Ready when there is nothing (an empty bundle is done)."""
    worst = BundleState.READY
    for state in states:
        if STATE_RANK[state] > STATE_RANK[worst]:
            worst = state
    return worst


def bundle_state(object_states: Iterable[BundleState]) -> BundleState:
    """State of one bundle on one cluster from the states of its objects."""
    return worst_state(object_states)


def cluster_state(bundle_states: Iterable[BundleState]) -> BundleState:
    """State of one cluster from the states of the bundles deployed to it."""
    return worst_state(bundle_states)


def fleet_state(cluster_states: Iterable[BundleState]) -> BundleState:
    """State of a whole fleet (or a cluster group) from the states of its clusters."""
    return worst_state(cluster_states)


def count_states(states: Iterable[BundleState]) -> dict[BundleState, int]:
    """How many parts are in each state, worst first (for status tables and metrics)."""
    counts = Counter(states)
    return {s: counts[s] for s in sorted(counts, key=lambda s: -STATE_RANK[s])}


def summary_message(named: Mapping[str, BundleState], *, limit: int = 10) -> str:
    """Rancher-style one-line summary of the parts that are not Ready.

    `{"prod-eu": NotReady, "dev-eu": ErrApplied}` -> `ErrApplied(1) [dev-eu]; NotReady(1)
    [prod-eu]`. Ready parts are left out, as Rancher does; at most `limit` names are shown
    in total so the line stays readable for big fleets. Empty string when all are Ready.
    """
    by_state: dict[BundleState, list[str]] = {}
    for name, state in sorted(named.items()):
        if state is not BundleState.READY:
            by_state.setdefault(state, []).append(name)
    parts: list[str] = []
    shown = 0
    for state in sorted(by_state, key=lambda s: -STATE_RANK[s]):
        names = by_state[state]
        room = max(limit - shown, 0)
        listed = names[:room]
        shown += len(listed)
        more = f", +{len(names) - len(listed)} more" if len(names) > len(listed) else ""
        label = f" [{', '.join(listed)}{more}]" if listed else f" [+{len(names)} more]"
        parts.append(f"{state.value}({len(names)}){label}")
    return "; ".join(parts)
