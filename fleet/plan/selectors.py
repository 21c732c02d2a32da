"""`--selector`: a kubectl-style label selector string over cluster labels.

`env=prod`, `env==prod`, `env!=dev`, `region in (eu, us)`, `tier notin (edge)`, `gpu`,
`!gpu`, joined by commas (all must hold), as `kubectl get -l` reads them.
"""

from __future__ import annotations

import re

from fleet.errors import FleetError
from fleet.spec.bundle_options import LabelSelector
from fleet.targeting.selectors import CompiledSelector, compile_selector

_SET = re.compile(r"^([^\s=!(),]+)\s+(in|notin)\s+\(([^()]*)\)$")
_EQUALS = re.compile(r"^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$")
_EXISTS = re.compile(r"^(!?)\s*([^\s=!(),]+)$")


def _split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def parse_selector(text: str) -> CompiledSelector:
    """Compile `text`, or FleetError naming the part that is not a requirement."""
    labels: dict[str, str] = {}
    expressions: list[dict[str, object]] = []
    for part in _split(text):
        if match := _SET.match(part):
            key, op, values = match.groups()
            names = [v.strip() for v in values.split(",") if v.strip()]
            if not names:
                raise FleetError(f"--selector {text!r}: {part!r} lists no values")
            operator = "In" if op == "in" else "NotIn"
            expressions.append({"key": key, "operator": operator, "values": names})
        elif match := _EQUALS.match(part):
            key, op, value = match.groups()
            if op == "!=":
                expressions.append({"key": key, "operator": "NotIn", "values": [value]})
            else:
                labels[key] = value
        elif match := _EXISTS.match(part):
            negated, key = match.groups()
            operator = "DoesNotExist" if negated else "Exists"
            expressions.append({"key": key, "operator": operator})
        else:
            raise FleetError(
                f"--selector {text!r}: {part!r} is not a requirement "
                "(key=value, key!=value, key in (a,b), key notin (a,b), key, !key)"
            )
    selector = LabelSelector.model_validate(
        {"matchLabels": labels, "matchExpressions": expressions}
    )
    return compile_selector(selector)
