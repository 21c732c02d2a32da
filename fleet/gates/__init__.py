"""Gates: the checks between rollout waves (the model plugins implement; see `model`).

The tracker that runs them per wave and revision lives in `fleet.rollout`; the built-in
gate plugins (prometheus, http, approval) in `plugins/`. What measuring gates share, so a
third party's gate behaves like the built-ins, is here too: reading parameters (`params`),
the measure-count-decide loop (`analysis`), `successCondition` expressions (`condition`),
`{{cluster}}` substitutions (`templating`) and the operator's credentials (`credentials`).
"""

from fleet.gates.analysis import (
    AnalysisPolicy,
    Outcome,
    decide,
    describe_measurements,
    format_value,
    round_outcome,
    run_analysis,
)
from fleet.gates.condition import Condition, ConditionError, parse_condition
from fleet.gates.credentials import (
    authorization_header,
    credential_guard,
    gate_variable,
    metrics_secret,
    metrics_variable,
)
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
from fleet.gates.params import GateParams
from fleet.gates.templating import GateTemplate, MissingValue, Placeholder, target_values

__all__ = [
    "AnalysisPolicy",
    "Condition",
    "ConditionError",
    "Gate",
    "GateConfigError",
    "GateContext",
    "GateParams",
    "GateResult",
    "GateTarget",
    "GateTemplate",
    "GateVerdict",
    "Measurement",
    "MissingValue",
    "Outcome",
    "Placeholder",
    "authorization_header",
    "credential_guard",
    "decide",
    "describe_measurements",
    "format_value",
    "gate_variable",
    "metrics_secret",
    "metrics_variable",
    "parse_condition",
    "provider_for",
    "round_outcome",
    "run_analysis",
    "target_values",
]
