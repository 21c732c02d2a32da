"""What the definition and a bundle's `fleet.yaml` may say about progressive delivery.

Shared by the root definition (`rollout:` waves, gates, windows, freezes) and bundle options
(Rancher's `rolloutStrategy`, with fleet's gate extensions), so it sits below both:

- durations (`30s`, `5m`, `1h30m`) and `maxUnavailable` values (an int or `N%`);
- `GateSpec`: one check between waves. Its `type` names a gate plugin (`prometheus`,
  `http`, `approval` are built in, a third party adds more through the `fleet_gate` hook);
  every other key is that plugin's parameter, validated by the plugin when the commit is
  loaded (`fleet.gates.config`), so a typo is a file:line problem like any other;
- `OfflinePolicy`: what a wave does about a cluster that cannot be reached.

The planner (`fleet.rollout.planner`) and the rollout tracker (`fleet.rollout.tracker`) give these
their meaning; the README's "Progressive delivery" section documents them for users.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
GATE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _check_max_unavailable(value: Any) -> Any:
    """`maxUnavailable` is a non-negative int or a percentage string "N%" (0-100)."""
    if isinstance(value, bool):
        raise ValueError("maxUnavailable must be an integer or a percentage like '25%'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("maxUnavailable must not be negative")
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        if _PERCENT.match(value):
            return value
    raise ValueError(f"maxUnavailable must be an integer or a percentage like '25%', not {value!r}")


MaxUnavailable = Annotated[int | str, BeforeValidator(_check_max_unavailable)]


def parse_duration(value: Any) -> int:
    """Seconds from an int or a Go-style duration ("30s", "5m", "1h30m")."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and any(match.groups()):
            hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
            total = hours * 3600 + minutes * 60 + seconds
            if total > 0:
                return total
    raise ValueError(f"expected a positive duration like '30s', '5m' or '1h', not {value!r}")


def _duration(value: Any) -> Any:
    parse_duration(value)
    return value


Duration = Annotated[int | str, BeforeValidator(_duration)]

OfflinePolicy = Literal["wait", "skip", "unavailable"]
OFFLINE_POLICIES: tuple[str, ...] = ("wait", "skip", "unavailable")


class GateSpec(BaseModel):
    """One gate: `type` (a gate plugin), an optional `name` (default: the type, numbered
    when a wave has two of one type) and the plugin's own parameters (every other key).

    Parameters are kept as written (camelCase, as in YAML) in `params`; the plugin checks
    them when the commit is loaded and says what is wrong with which key.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=False)

    type: str = Field(min_length=1, description="The gate plugin: prometheus, http, approval, ...")
    name: Annotated[str, Field(pattern=GATE_NAME_PATTERN, max_length=63)] | None = Field(
        default=None,
        description="Shown in `fleet rollout status`; default: the type (numbered if repeated).",
    )

    @property
    def params(self) -> dict[str, Any]:
        """The plugin's parameters: every key but `type` and `name`."""
        return dict(self.model_extra or {})


def gate_names(gates: list[GateSpec]) -> list[str]:
    """Each gate's display name: its `name`, else its type, numbered when repeated."""
    counts: dict[str, int] = {}
    for gate in gates:
        if gate.name is None:
            counts[gate.type] = counts.get(gate.type, 0) + 1
    seen: dict[str, int] = {}
    names = []
    for gate in gates:
        if gate.name is not None:
            names.append(gate.name)
            continue
        seen[gate.type] = seen.get(gate.type, 0) + 1
        several = counts[gate.type] > 1
        names.append(f"{gate.type}-{seen[gate.type]}" if several else gate.type)
    return names
