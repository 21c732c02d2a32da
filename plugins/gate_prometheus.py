"""Built-in gate `prometheus`: metric analysis in the style of Flagger and Argo Rollouts.

    metricProviders:
      - name: prod
        address: https://prometheus.example.com
        credential: prod-metrics           # FLEET_METRICS_PROD_METRICS: token or user:password
    rollout:
      waves:
        - name: canary
          gates:
            - type: prometheus
              name: error-rate
              query: >
                sum(rate(http_requests_total{cluster="{{cluster}}",code=~"5.."}[5m]))
                / sum(rate(http_requests_total{cluster="{{cluster}}"}[5m]))
              thresholdRange: {max: 0.05}
              interval: 1m
              count: 5

Every `interval` the gate takes a round: with `perCluster: true` (the default) one instant
query (`/api/v1/query`) per cluster of the wave, with that cluster's substitutions; else
one query for the wave, `{{clusters}}` being the regex alternation of its clusters. The
value is the first sample of the vector (or the scalar); an empty vector is "no data". A
value is good when it lies in `thresholdRange` and satisfies `successCondition` (both,
when both are given); NaN and "no data" are inconclusive, unless the condition tests
`isNaN(result)`, which then decides. HTTP errors, answers that are not JSON and
`status: error` are inconclusive with a one-line reason. The rounds are counted and
decided by `fleet.plugin.run_analysis` (`count`, `failureLimit`, `inconclusiveLimit`).

Substitutions may appear only inside double-quoted PromQL strings, where each value is
escaped for that string (and regex-escaped inside a `=~`/`!~` matcher), so a cluster label
cannot add text to the query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from fleet.plugin import (
    AnalysisPolicy,
    Condition,
    ConditionError,
    GateConfigError,
    GateContext,
    GateParams,
    GateResult,
    GateSpec,
    GateTemplate,
    GateVerdict,
    Measurement,
    MetricProvider,
    MissingValue,
    Placeholder,
    authorization_header,
    credential_guard,
    describe_measurements,
    format_value,
    hookimpl,
    http_client,
    metrics_secret,
    metrics_variable,
    parse_condition,
    provider_for,
    run_analysis,
    target_values,
)

TYPE = "prometheus"
PARAMETERS = (
    "query",
    "provider",
    "interval",
    "count",
    "successCondition",
    "thresholdRange",
    "failureLimit",
    "inconclusiveLimit",
    "perCluster",
)
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")
_REASON_LENGTH = 200


class NoValue(Exception):
    """The query gave no usable value; the message is the one-line reason."""


@dataclass(frozen=True, slots=True)
class Criterion:
    """When a measured value is good: inside `thresholdRange`, satisfying `successCondition`."""

    condition: Condition | None = None
    minimum: float | None = None
    maximum: float | None = None

    def judge(self, value: float) -> bool | None:
        """True (good), False (bad) or None (inconclusive: NaN the condition does not handle)."""
        if math.isnan(value):
            if self.condition is not None and self.condition.uses_nan:
                return self.condition.holds(value)
            return None
        if self.minimum is not None and value < self.minimum:
            return False
        if self.maximum is not None and value > self.maximum:
            return False
        return self.condition is None or self.condition.holds(value)

    def __str__(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f"min {format_value(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"max {format_value(self.maximum)}")
        if self.condition is not None:
            parts.append(str(self.condition))
        return ", ".join(parts)


def parse_criterion(params: GateParams) -> Criterion:
    """`successCondition` and `thresholdRange`, at least one of them."""
    condition = None
    text = params.text("successCondition")
    if text is not None:
        try:
            condition = parse_condition(text)
        except ConditionError as err:
            raise GateConfigError(f"successCondition: {err}", "successCondition") from None
    minimum = maximum = None
    limits = params.mapping("thresholdRange")
    if limits is not None:
        unknown = set(limits) - {"min", "max"}
        if unknown:
            raise GateConfigError(
                f"thresholdRange takes min and max, not {', '.join(sorted(map(str, unknown)))}",
                "thresholdRange",
            )
        if limits.get("min") is None and limits.get("max") is None:
            raise GateConfigError("thresholdRange needs min, max or both", "thresholdRange")
        if limits.get("min") is not None:
            minimum = params.number("thresholdRange", limits["min"])
        if limits.get("max") is not None:
            maximum = params.number("thresholdRange", limits["max"])
        if minimum is not None and maximum is not None and minimum > maximum:
            raise GateConfigError("thresholdRange: min is above max", "thresholdRange")
    if condition is None and minimum is None and maximum is None:
        raise GateConfigError(
            "a prometheus gate needs successCondition or thresholdRange", "successCondition"
        )
    return Criterion(condition, minimum, maximum)


# ------------------------------------------------------------------ PromQL substitutions


def string_literals(query: str) -> list[tuple[int, int, str]]:
    """(start, end, quote) of every string literal of a PromQL query; `#` comments skipped."""
    found = []
    position = 0
    while position < len(query):
        char = query[position]
        if char == "#":
            newline = query.find("\n", position)
            position = len(query) if newline < 0 else newline
            continue
        if char not in "\"'`":
            position += 1
            continue
        start, position = position, position + 1
        while position < len(query) and query[position] != char:
            position += 2 if query[position] == "\\" and char != "`" else 1
        if position >= len(query):
            raise GateConfigError(f"unterminated string in query at offset {start}", "query")
        position += 1
        found.append((start, position, char))
    return found


def regex_contexts(template: GateTemplate) -> dict[int, bool]:
    """For each placeholder (by start): True inside a regex matcher's string, False inside
    another double-quoted string; GateConfigError when one is outside a "..." string."""
    literals = string_literals(template.text)
    contexts = {}
    for placeholder in template.placeholders:
        literal = next((s for s in literals if s[0] < placeholder.start < s[1]), None)
        if literal is None or literal[2] != '"':
            raise GateConfigError(
                "{{" + placeholder.name + "}} must be inside a double-quoted string in query "
                '(like cluster="{{cluster}}"), so its value cannot change the query',
                "query",
            )
        before = template.text[: literal[0]].rstrip()
        regex = before.endswith(("=~", "!~"))
        if placeholder.name == "clusters" and not regex:
            raise GateConfigError(
                "{{clusters}} is a regex alternation: use it in a =~ matcher, "
                'like cluster=~"{{clusters}}"',
                "query",
            )
        contexts[placeholder.start] = regex
    return contexts


def promql_string(value: str) -> str:
    """`value` escaped for the inside of a PromQL double-quoted string."""
    out = []
    for char in value:
        if char in '\\"':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def regex_literal(value: str) -> str:
    """`value` as a literal in an RE2 regular expression."""
    return _RE2_SPECIAL.sub(r"\\\1", value)


# ------------------------------------------------------------------ the answer


def sample_value(answer: Any) -> float:
    """The value of an `/api/v1/query` answer (first sample of a vector, or the scalar);
    NoValue with the reason otherwise."""
    if not isinstance(answer, dict):
        raise NoValue("prometheus answered JSON that is not an object")
    if answer.get("status") != "success":
        kind = answer.get("errorType") or "error"
        raise NoValue(f"prometheus: {kind}: {answer.get('error') or 'no reason given'}")
    data = answer.get("data")
    if not isinstance(data, dict):
        data = {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "vector" and isinstance(result, list):
        if not result:
            raise NoValue("no data")
        sample = result[0].get("value") if isinstance(result[0], dict) else None
    elif kind == "scalar":
        sample = result
    else:
        raise NoValue(f"the query gives a {kind}, not an instant vector or a scalar")
    try:
        return float(sample[1])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        raise NoValue(
            f"prometheus answered a malformed sample: {sample!r}"[:_REASON_LENGTH]
        ) from None


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_LENGTH else text[: _REASON_LENGTH - 3] + "..."


@dataclass(frozen=True, slots=True)
class PrometheusGate:
    """A configured `prometheus` gate (see the module docstring)."""

    label: str
    provider: MetricProvider
    query: GateTemplate
    regex_at: Mapping[int, bool]
    criterion: Criterion
    policy: AnalysisPolicy
    per_cluster: bool

    def check(self, ctx: GateContext) -> GateResult:
        headers = {"Accept": "application/json"}
        if self.provider.credential:
            secret = metrics_secret(ctx, self.provider.credential)
            if secret is None:
                variable = metrics_variable(self.provider.credential)
                return GateResult.inconclusive(
                    f"{self.label}: {variable} is not set (the credential of metric "
                    f"provider {self.provider.name})"
                )
            headers["Authorization"] = authorization_header(secret)
        return run_analysis(ctx, self.policy, lambda: self.measure(ctx, headers), self.describe)

    def describe(self, verdict: GateVerdict, measured: Sequence[Measurement], summary: str) -> str:
        values = describe_measurements(measured, verdict)
        return f"{self.label}: {values} ({self.criterion}), {summary}"

    def measure(self, ctx: GateContext, headers: Mapping[str, str]) -> list[Measurement]:
        """One round: a measurement per cluster (or one for the wave)."""
        targets = list(ctx.targets) if self.per_cluster else [None]
        if not ctx.targets:
            return [Measurement(None, None, None, ctx.now, "no clusters in the wave")]
        url = self.provider.address.rstrip("/") + "/api/v1/query"
        timeout = float(self.provider.timeout_seconds)
        options: dict[str, Any] = {}
        if self.provider.credential:
            hooks = [credential_guard("metrics", self.provider.credential, ctx.env)]
            options["event_hooks"] = {"request": hooks}
        with http_client(timeout=timeout, headers=dict(headers), **options) as client:
            return [self._measure_one(client, url, ctx, target) for target in targets]

    def _measure_one(
        self, client: httpx.Client, url: str, ctx: GateContext, target: Any
    ) -> Measurement:
        cluster = target.cluster if target is not None else None
        try:
            query = self.query.render(target_values(ctx, target), self._escape)
        except MissingValue as err:
            return Measurement(cluster, None, None, ctx.now, str(err))
        try:
            value = sample_value(self._ask(client, url, query))
        except NoValue as err:
            return Measurement(cluster, None, None, ctx.now, _one_line(str(err)))
        return Measurement(cluster, value, self.criterion.judge(value), ctx.now)

    def _ask(self, client: httpx.Client, url: str, query: str) -> Any:
        name = self.provider.name
        try:
            response = client.get(url, params={"query": query})
        except httpx.TimeoutException:
            raise NoValue(
                f"prometheus {name} did not answer within {self.provider.timeout_seconds}s"
            ) from None
        except httpx.HTTPError as err:
            raise NoValue(f"cannot reach prometheus {name}: {type(err).__name__}: {err}") from None
        try:
            answer = response.json()
        except ValueError:
            raise NoValue(
                f"prometheus {name} answered HTTP {response.status_code}, not JSON"
            ) from None
        if response.status_code >= 400 and not (
            isinstance(answer, dict) and answer.get("status") == "error"
        ):
            raise NoValue(f"prometheus {name} answered HTTP {response.status_code}")
        return answer

    def _escape(self, placeholder: Placeholder, value: str) -> str:
        if self.regex_at.get(placeholder.start):
            parts = value.split("|") if placeholder.name == "clusters" else [value]
            value = "|".join(regex_literal(part) for part in parts)
        return promql_string(value)


def build_gate(spec: GateSpec, providers: Mapping[str, MetricProvider]) -> PrometheusGate:
    """The gate for `spec`, its parameters checked (GateConfigError names the key)."""
    params = GateParams(spec, PARAMETERS)
    provider = provider_for(spec, providers, TYPE)
    per_cluster = params.boolean("perCluster", True)
    text = params.text("query", required=True)
    assert text is not None
    template = GateTemplate.parse(text, "query", per_cluster=per_cluster)
    return PrometheusGate(
        label=spec.name or "prometheus query",
        provider=provider,
        query=template,
        regex_at=regex_contexts(template),
        criterion=parse_criterion(params),
        policy=AnalysisPolicy.from_params(params, default_count=3),
        per_cluster=per_cluster,
    )


@hookimpl
def fleet_gate_types() -> list[str]:
    return [TYPE]


@hookimpl
def fleet_gate(spec: GateSpec, providers: Mapping[str, MetricProvider]) -> PrometheusGate | None:
    return build_gate(spec, providers) if spec.type == TYPE else None
