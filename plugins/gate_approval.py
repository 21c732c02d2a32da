"""Built-in gate `approval`: a person says the wave is good (`fleet rollout approve`).

    gates:
      - type: approval
        timeout: 4h        # optional: not approved within 4h of the wave being Ready -> failed

Pending until `fleet rollout approve BUNDLE --wave WAVE` was given for this revision
(`GateContext.approved`), then passed. Without `timeout` it waits as long as it takes.
A pending answer asks to be checked again on every tick (no `next_check`), so an approval
is seen at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleet.plugin import GateContext, GateParams, GateResult, GateSpec, MetricProvider, hookimpl

TYPE = "approval"
PARAMETERS = ("timeout",)


def _duration_text(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")


@dataclass(frozen=True, slots=True)
class ApprovalGate:
    label: str
    timeout: int | None  # seconds after the wave became Ready

    def check(self, ctx: GateContext) -> GateResult:
        if ctx.approved:
            return GateResult.passed(f"{self.label}: approved")
        command = f"fleet rollout approve {ctx.bundle} --wave {ctx.wave}"
        if self.timeout is not None and ctx.elapsed >= self.timeout:
            return GateResult.failed(
                f"{self.label}: not approved within {_duration_text(self.timeout)} "
                f"(`{command}` was not given)"
            )
        left = f" ({_duration_text(int(self.timeout - ctx.elapsed))} left)" if self.timeout else ""
        return GateResult.pending(f"{self.label}: waiting for `{command}`{left}")


def build_gate(spec: GateSpec) -> ApprovalGate:
    params = GateParams(spec, PARAMETERS)
    timeout = params.duration("timeout", "1s") if params.has("timeout") else None
    return ApprovalGate(spec.name or "approval", timeout)


@hookimpl
def fleet_gate_types() -> list[str]:
    return [TYPE]


@hookimpl
def fleet_gate(spec: GateSpec, providers: Mapping[str, MetricProvider]) -> ApprovalGate | None:
    return build_gate(spec) if spec.type == TYPE else None
