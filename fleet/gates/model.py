"""Gates: the checks that declare a wave operational before the next wave starts.

A gate is a plugin (`fleet_gate` hook): given a `GateSpec` (its `type` and parameters) the
plugin that serves the type returns a `Gate`, an object with one method, `check`. fleet
calls `check` again and again while the wave is being verified (each planner tick, at the
earliest at the `next_check` a previous answer asked for), with a `GateContext`: the
bundle, the wave, its clusters (name, labels, the namespaces the bundle uses there), when
the wave became Ready, the time now, and `memory`, a small JSON-able dict that fleet keeps
for this gate, this wave and this revision (in Redis in the distributed mode, in the
clusters' rollout records in the embedded one), so a gate that measures several times
(`interval`, `count`, `failureLimit`) keeps its counts across ticks and restarts.

`check` answers a `GateResult`: `passed`, `pending` (not decided yet: measurements to take,
an approval to wait for; `next_check` says when to ask again), `failed` (the wave is not
operational: the rollout of the bundle halts and, with `autoRollback`, the wave is rolled
back) or `inconclusive` (cannot tell: the rollout halts, nothing is rolled back, `fleet
rollout resume` verifies again). Every result has a one-line `message` with the measured
values (`error rate 0.12 > 0.05 on canary`) and, optionally, `measurements` for `fleet
rollout status` and metrics. `check` must not raise for a failing check; an exception is a
bug in the plugin and is reported as `inconclusive` with its message.

Built in (plugins/): `prometheus` (PromQL analysis), `http` (a smoke-test request) and
`approval` (`fleet rollout approve`). Health (every unit of the wave Ready) and `bake`
(soak time) are not plugins: the rollout tracker (`fleet.rollout.tracker`) applies them to every
wave. A third party adds a gate in one file: a module with a `@hookimpl def fleet_gate(spec,
providers)` returning its `Gate` when `spec.type` is its own, declared as an entry point.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleet.spec.definition import MetricProvider
from fleet.spec.rollout_spec import GateSpec


class GateVerdict(enum.Enum):
    PASSED = "passed"
    PENDING = "pending"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"

    @property
    def decided(self) -> bool:
        return self is not GateVerdict.PENDING


@dataclass(frozen=True, slots=True)
class Measurement:
    """One observation a gate made: on which cluster (None: the whole wave), the value as
    measured (a number, or a short text), whether it counted as good, and when."""

    cluster: str | None
    value: float | str | None
    ok: bool | None  # None: inconclusive (no data, an error)
    at: float
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "value": self.value, "ok": self.ok, "at": self.at,
                "note": self.note}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Measurement:
        value = data.get("value")
        return cls(
            cluster=data.get("cluster"),
            value=value if isinstance(value, int | float | str) else None,
            ok=data.get("ok"),
            at=float(data.get("at", 0.0)),
            note=str(data.get("note", "")),
        )


@dataclass(frozen=True, slots=True)
class GateResult:
    """A gate's answer; `message` is one line (never a secret)."""

    verdict: GateVerdict
    message: str
    next_check: float | None = None  # pending: when to ask again (epoch seconds)
    measurements: tuple[Measurement, ...] = ()

    @classmethod
    def passed(cls, message: str, *measurements: Measurement) -> GateResult:
        return cls(GateVerdict.PASSED, message, None, measurements)

    @classmethod
    def pending(
        cls, message: str, next_check: float | None = None, *measurements: Measurement
    ) -> GateResult:
        return cls(GateVerdict.PENDING, message, next_check, measurements)

    @classmethod
    def failed(cls, message: str, *measurements: Measurement) -> GateResult:
        return cls(GateVerdict.FAILED, message, None, measurements)

    @classmethod
    def inconclusive(cls, message: str, *measurements: Measurement) -> GateResult:
        return cls(GateVerdict.INCONCLUSIVE, message, None, measurements)


@dataclass(frozen=True, slots=True)
class GateTarget:
    """One cluster of the wave being verified, as a gate may use it in a query or a URL
    (`{{cluster}}`, `{{namespace}}`, labels)."""

    cluster: str
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace: str = ""  # the bundle's namespace there (its defaultNamespace/namespace)


@dataclass
class GateContext:
    """What a gate knows when it is asked. `memory` is the gate's own, kept between calls
    (JSON-able values only; keep it small: counts, the last measurements). `approved` is
    True once `fleet rollout approve BUNDLE --wave WAVE` was given for this revision.
    `secret(name)` is the operator's FLEET_GATE_<NAME> (or None): never put it in a message.
    """

    fleet: str
    bundle: str
    wave: str
    revision: str
    commit: str
    targets: Sequence[GateTarget]
    since: float  # when every unit of the wave was Ready at this revision
    now: float
    memory: dict[str, Any]
    approved: bool = False
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    def secret(self, name: str | None) -> str | None:
        if not name:
            return None
        key = "FLEET_GATE_" + "".join(c if c.isalnum() else "_" for c in name.upper())
        return self.env.get(key) or None

    @property
    def elapsed(self) -> float:
        """Seconds since the wave became Ready."""
        return max(0.0, self.now - self.since)


class Gate(Protocol):
    """A configured gate (what a plugin's `fleet_gate` returns)."""

    def check(self, ctx: GateContext) -> GateResult: ...


class GateConfigError(ValueError):
    """A gate's parameters are wrong; `key` names the parameter (for file:line)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def provider_for(
    spec: GateSpec, providers: Mapping[str, MetricProvider], kind: str
) -> MetricProvider:
    """The metric provider a gate names (`provider:`), or the only one of `kind`;
    GateConfigError when that is ambiguous or undefined."""
    name = spec.params.get("provider")
    candidates = [p for p in providers.values() if p.type == kind]
    if name is None:
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise GateConfigError(f"no metricProviders entry of type {kind} in the definition")
        names = ", ".join(sorted(p.name for p in candidates))
        raise GateConfigError(f"several {kind} providers ({names}): name one", "provider")
    if not isinstance(name, str) or name not in providers:
        known = ", ".join(sorted(providers)) or "none"
        raise GateConfigError(f"undefined metric provider {name!r} (defined: {known})", "provider")
    found = providers[name]
    if found.type != kind:
        raise GateConfigError(f"provider {name} is of type {found.type}, not {kind}", "provider")
    return found
