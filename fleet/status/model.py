"""The status model `fleet sync`, `fleet diff` and `fleet status` print: rows and roll-ups.

One row per (cluster, bundle) with Rancher Fleet's state, the short deployment id Git
wants, the commit the cluster runs and a one-line message; rolled up per bundle, per
cluster and for the fleet with `fleet.states` (worst state wins). The same model is
rendered as a table for people and as JSON for scripts, so both always agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fleet.states import BundleState, count_states, summary_message, worst_state

MESSAGE_WIDTH = 100


@dataclass(frozen=True)
class ObjectHealth:
    """One object of a unit as a live look judged it: `Kind namespace/name`, ready or not
    and why (`fleet status --tree`, `fleet explain`)."""

    ref: str
    ready: bool
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"object": self.ref, "ready": self.ready, "message": self.message}


@dataclass
class UnitStatus:
    """One bundle on one cluster."""

    cluster: str
    bundle: str
    state: BundleState
    deployment_id: str  # what Git wants ('' for a bundle that left Git)
    commit: str  # the commit the cluster runs ('' when it runs nothing)
    message: str = ""
    wave: str = ""
    writes: int = 0
    objects: list[ObjectHealth] | None = None  # None: not looked at object by object

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "cluster": self.cluster,
            "bundle": self.bundle,
            "state": self.state.value,
            "deploymentId": self.deployment_id,
            "commit": self.commit,
            "message": self.message,
            "wave": self.wave,
            "writes": self.writes,
        }
        if self.objects is not None:
            found["objects"] = [o.to_json() for o in self.objects]
        return found


@dataclass
class FleetStatus:
    """A whole fleet at one commit: rows, removals done or due, and the roll-ups."""

    fleet: str
    commit: str
    units: list[UnitStatus] = field(default_factory=list)
    removed: list[UnitStatus] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> clusters (--tree)

    @property
    def state(self) -> BundleState:
        return worst_state(u.state for u in self.all_units())

    @property
    def ready(self) -> bool:
        return self.state is BundleState.READY

    def bundles(self) -> dict[str, BundleState]:
        """bundle -> worst state over its clusters."""
        return _roll_up((u.bundle, u.state) for u in self.all_units())

    def clusters(self) -> dict[str, BundleState]:
        """cluster -> worst state over its bundles."""
        return _roll_up((u.cluster, u.state) for u in self.all_units())

    def all_units(self) -> list[UnitStatus]:
        return [*self.units, *self.removed]

    def to_json(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet,
            "commit": self.commit,
            "state": self.state.value,
            "summary": {s.value: n for s, n in self.counts().items()},
            "bundles": {
                name: {"state": state.value, "message": self.summary_of(bundle=name)}
                for name, state in self.bundles().items()
            },
            "clusters": {
                name: {"state": state.value, "message": self.summary_of(cluster=name)}
                for name, state in self.clusters().items()
            },
            "units": [u.to_json() for u in self.units],
            "removed": [u.to_json() for u in self.removed],
        }

    def summary_of(self, *, bundle: str | None = None, cluster: str | None = None) -> str:
        """Rancher-style "NotReady(1) [prod-eu]" for one bundle or one cluster."""
        units = self.all_units()
        if bundle is not None:
            return summary_message({u.cluster: u.state for u in units if u.bundle == bundle})
        return summary_message({u.bundle: u.state for u in units if u.cluster == cluster})

    def counts(self) -> dict[BundleState, int]:
        return count_states(u.state for u in self.all_units())


def _roll_up(pairs: Iterable[tuple[str, BundleState]]) -> dict[str, BundleState]:
    grouped: dict[str, list[BundleState]] = {}
    for name, state in pairs:
        grouped.setdefault(name, []).append(state)
    return {name: worst_state(states) for name, states in grouped.items()}


def one_line(text: str, width: int = MESSAGE_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart (kubectl's look).

    The one table printer: `fleet status`/`sync`/`diff`, `fleet targets` and `fleet plugins`
    all print through it, on a terminal and in a pipe alike."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def render_table(status: FleetStatus) -> str:
    """Units (cluster x bundle), removals, then the roll-ups per bundle, cluster and fleet."""
    rows = [
        [
            u.cluster,
            u.bundle,
            u.state.value,
            u.deployment_id[:12] or "-",
            u.commit[:12] or "-",
            one_line(u.message),
        ]
        for u in sorted(status.units, key=lambda u: (u.cluster, u.bundle))
    ]
    rows += [
        [u.cluster, u.bundle, u.state.value, "(removed)", u.commit[:12] or "-", one_line(u.message)]
        for u in sorted(status.removed, key=lambda u: (u.cluster, u.bundle))
    ]
    out = format_table(["CLUSTER", "BUNDLE", "STATE", "DEPLOYMENT", "COMMIT", "MESSAGE"], rows)
    bundle_rows = [
        [name, state.value, status.summary_of(bundle=name)]
        for name, state in sorted(status.bundles().items())
    ]
    out += "\n" + format_table(["BUNDLE", "STATE", "NOT READY"], bundle_rows)
    cluster_rows = [
        [name, state.value, status.summary_of(cluster=name)]
        for name, state in sorted(status.clusters().items())
    ]
    out += "\n" + format_table(["CLUSTER", "STATE", "NOT READY"], cluster_rows)
    counts = ", ".join(f"{n} {s.value}" for s, n in status.counts().items())
    out += f"\nfleet {status.fleet} at {status.commit[:12] or '-'}: {status.state.value}"
    out += f" ({counts or 'no units'})\n"
    return out


def render_json(status: FleetStatus, **extra: Any) -> str:
    return json.dumps({**status.to_json(), **extra}, indent=2) + "\n"
