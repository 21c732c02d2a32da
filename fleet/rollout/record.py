"""What fleet remembers about a bundle's rollout: one `BundleRollout` per bundle.

A rollout is the walk of one *revision* of a bundle through its waves. The revision is
`revision_of(units)`: a short hash of the distinct deployment ids the commit gives the
bundle's units, so a commit that does not change a bundle does not restart its rollout,
and any change to what a cluster would run (files, values, options) is a new revision.

Per wave the record keeps when it became Ready (the start of its verification: bake and
gates run from then), its verdict, and per gate its last answer, its `memory` (the
gate's own counts, `fleet.gates.model`) and when to ask it again. Per bundle it keeps the
outcome of the current revision (`progressing`, `succeeded`, `failed`, `halted`,
`rolledBack`, `aborted`) and the revisions that must not be rolled out again
(`rejected`: failed and rolled back, or aborted; a new revision, that is a commit that
changes the bundle, is rolled out normally).

Everything is JSON (`to_json` / `from_json`) so a store can keep it anywhere: Redis in
the distributed mode, the process in the embedded one (`fleet.runtime.rollout_store`).
Operator commands (`fleet rollout pause|resume|abort|approve`) are not part of the
record: they are `Controls`, written only by the CLI, read by whoever runs the rollout,
so the two never overwrite each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleet.gates.model import GateVerdict, Measurement
from fleet.targeting.units import DeploymentUnit

PROGRESSING = "progressing"
SUCCEEDED = "succeeded"
FAILED = "failed"
HALTED = "halted"  # a gate could not tell (inconclusive): nothing rolled back
ROLLED_BACK = "rolledBack"
ABORTED = "aborted"
OUTCOMES = (PROGRESSING, SUCCEEDED, FAILED, HALTED, ROLLED_BACK, ABORTED)
REJECTED_KEPT = 20  # rejected revisions remembered per bundle
MEASUREMENTS_KEPT = 10  # per gate


def revision_of(deployment_ids: Iterable[str]) -> str:
    """A bundle's revision: 12 hex digits over its units' distinct deployment ids."""
    digest = hashlib.sha256("\n".join(sorted(set(deployment_ids))).encode())
    return digest.hexdigest()[:12]


def bundle_revisions(units: Iterable[DeploymentUnit]) -> dict[str, str]:
    """bundle -> its revision, over the units a commit gives it (what the tracker, the
    rollout commands and the promotion by waves compare records against)."""
    ids: dict[str, list[str]] = {}
    for unit in units:
        ids.setdefault(unit.bundle, []).append(unit.deployment_id)
    return {bundle: revision_of(found) for bundle, found in ids.items()}


@dataclass
class GateRecord:
    name: str
    type: str
    verdict: str = GateVerdict.PENDING.value
    message: str = ""
    next_check: float | None = None
    checked_at: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "verdict": self.verdict,
            "message": self.message,
            "nextCheck": self.next_check,
            "checkedAt": self.checked_at,
            "memory": self.memory,
            "measurements": [m.to_json() for m in self.measurements[-MEASUREMENTS_KEPT:]],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateRecord:
        return cls(
            name=str(data.get("name", "")),
            type=str(data.get("type", "")),
            verdict=str(data.get("verdict", GateVerdict.PENDING.value)),
            message=str(data.get("message", "")),
            next_check=_float(data.get("nextCheck")),
            checked_at=_float(data.get("checkedAt")),
            memory=dict(data.get("memory") or {}),
            measurements=[Measurement.from_json(m) for m in data.get("measurements") or []],
        )


@dataclass
class WaveRecord:
    name: str
    ready_at: float | None = None  # every unit Ready at the revision: verification starts
    passed_at: float | None = None
    verdict: str = GateVerdict.PENDING.value
    message: str = ""
    clusters: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)  # clusters put back
    gates: dict[str, GateRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "readyAt": self.ready_at,
            "passedAt": self.passed_at,
            "verdict": self.verdict,
            "message": self.message,
            "clusters": self.clusters,
            "rolledBack": self.rolled_back,
            "gates": {k: g.to_json() for k, g in self.gates.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WaveRecord:
        return cls(
            name=str(data.get("name", "")),
            ready_at=_float(data.get("readyAt")),
            passed_at=_float(data.get("passedAt")),
            verdict=str(data.get("verdict", GateVerdict.PENDING.value)),
            message=str(data.get("message", "")),
            clusters=[str(c) for c in data.get("clusters") or []],
            rolled_back=[str(c) for c in data.get("rolledBack") or []],
            gates={k: GateRecord.from_json(g) for k, g in (data.get("gates") or {}).items()},
        )


@dataclass
class BundleRollout:
    bundle: str
    revision: str
    commit: str = ""
    started_at: float = 0.0
    outcome: str = PROGRESSING
    message: str = ""
    failed_wave: str = ""
    finished_at: float | None = None
    waves: dict[str, WaveRecord] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)  # revision -> why
    previous: str = ""  # the revision before this one (what a rollback goes back to)

    def wave(self, name: str) -> WaveRecord:
        found = self.waves.get(name)
        if found is None:
            found = self.waves[name] = WaveRecord(name)
        return found

    def reject(self, revision: str, reason: str) -> None:
        self.rejected[revision] = reason
        while len(self.rejected) > REJECTED_KEPT:
            del self.rejected[next(iter(self.rejected))]

    def restart(self, revision: str, commit: str, now: float) -> BundleRollout:
        """The record of a new revision of this bundle (what it rejected is carried over)."""
        fresh = BundleRollout(self.bundle, revision, commit, started_at=now)
        fresh.rejected = dict(self.rejected)
        fresh.previous = self.revision
        return fresh

    @property
    def finished(self) -> bool:
        return self.outcome != PROGRESSING

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "revision": self.revision,
            "commit": self.commit,
            "startedAt": self.started_at,
            "outcome": self.outcome,
            "message": self.message,
            "failedWave": self.failed_wave,
            "finishedAt": self.finished_at,
            "waves": {k: w.to_json() for k, w in self.waves.items()},
            "rejected": self.rejected,
            "previous": self.previous,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BundleRollout:
        outcome = str(data.get("outcome", PROGRESSING))
        return cls(
            bundle=str(data.get("bundle", "")),
            revision=str(data.get("revision", "")),
            commit=str(data.get("commit", "")),
            started_at=float(data.get("startedAt") or 0.0),
            outcome=outcome if outcome in OUTCOMES else PROGRESSING,
            message=str(data.get("message", "")),
            failed_wave=str(data.get("failedWave", "")),
            finished_at=_float(data.get("finishedAt")),
            waves={k: WaveRecord.from_json(w) for k, w in (data.get("waves") or {}).items()},
            rejected={str(k): str(v) for k, v in (data.get("rejected") or {}).items()},
            previous=str(data.get("previous", "")),
        )


@dataclass
class Controls:
    """What operators said about a bundle's rollout (written by `fleet rollout ...`).

    `approved`: revision -> the waves approved for it. `paused`: no new dispatch until
    resumed. `aborted`: revisions stopped by hand (held, not rolled back). `rolled_back`:
    revisions `fleet rollout rollback` put back (held like the tracker's rejected ones).
    `resumed_at`: the last `resume`, which also lets a halted or failed (not rolled back)
    revision be verified again."""

    paused: bool = False
    reason: str = ""
    approved: dict[str, list[str]] = field(default_factory=dict)
    aborted: list[str] = field(default_factory=list)
    rolled_back: dict[str, str] = field(default_factory=dict)
    resumed_at: float = 0.0

    def approves(self, revision: str, wave: str) -> bool:
        return wave in self.approved.get(revision, ())

    def to_json(self) -> dict[str, Any]:
        return {
            "paused": self.paused,
            "reason": self.reason,
            "approved": self.approved,
            "aborted": self.aborted,
            "rolledBack": self.rolled_back,
            "resumedAt": self.resumed_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Controls:
        approved = data.get("approved") or {}
        return cls(
            paused=bool(data.get("paused", False)),
            reason=str(data.get("reason", "")),
            approved={str(k): [str(w) for w in v] for k, v in approved.items()},
            aborted=[str(r) for r in data.get("aborted") or []],
            rolled_back={str(k): str(v) for k, v in (data.get("rolledBack") or {}).items()},
            resumed_at=float(data.get("resumedAt") or 0.0),
        )


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
