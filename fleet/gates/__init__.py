"""Gates: the checks between rollout waves (the model plugins implement; see `model`).

The tracker that runs them per wave and revision lives in `fleet.rollout`; the built-in
gate plugins (prometheus, http, approval) in `plugins/`.
"""

from fleet.gates.model import (
    Gate,
    GateConfigError,
    GateContext,
    GateResult,
    GateTarget,
    GateVerdict,
    Measurement,
    provider_for,
)

__all__ = [
    "Gate",
    "GateConfigError",
    "GateContext",
    "GateResult",
    "GateTarget",
    "GateVerdict",
    "Measurement",
    "provider_for",
]
