"""The built-in gates' parameters: checked when the gate is built, each error naming its key;
and how substitutions are escaped so a cluster label cannot change a query or a URL."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.plugin import (
    FleetPlugins,
    Gate,
    GateConfigError,
    GateContext,
    GateSpec,
    GateTarget,
    GateVerdict,
    MetricProvider,
    authorization_header,
    target_values,
)
from plugins.gate_approval import ApprovalGate
from plugins.gate_http import HttpGate, _quote
from plugins.gate_prometheus import NoValue, PrometheusGate, promql_string, sample_value

PROVIDERS = {"prom": MetricProvider(name="prom", address="http://127.0.0.1:9")}
QUERY = 'sum(rate(errors{cluster="{{cluster}}"}[1m]))'


@pytest.fixture(scope="module")
def plugins() -> FleetPlugins:
    return FleetPlugins.load(entry_points=False)


def _gate(plugins: FleetPlugins, providers: Any = None, **entry: Any) -> Gate:
    gate = plugins.gate(GateSpec(**entry), PROVIDERS if providers is None else providers)
    assert gate is not None
    return gate


def _error(plugins: FleetPlugins, providers: Any = None, **entry: Any) -> GateConfigError:
    with pytest.raises(GateConfigError) as caught:
        _gate(plugins, providers, **entry)
    return caught.value


def test_the_built_in_gate_types(plugins: FleetPlugins) -> None:
    assert {"prometheus", "http", "approval"} <= plugins.gate_types()
    assert plugins.gate(GateSpec(type="datadog"), PROVIDERS) is None


def test_prometheus_defaults(plugins: FleetPlugins) -> None:
    gate = _gate(plugins, type="prometheus", query=QUERY, thresholdRange={"max": 0.05})
    assert isinstance(gate, PrometheusGate)
    assert (gate.policy.count, gate.policy.interval) == (3, 30)
    assert (gate.policy.failure_limit, gate.policy.inconclusive_limit) == (0, 0)
    assert gate.per_cluster and gate.provider.name == "prom"
    assert str(gate.criterion) == "max 0.05"


def test_prometheus_parameters_as_written(plugins: FleetPlugins) -> None:
    gate = _gate(
        plugins,
        type="prometheus",
        name="error-rate",
        query='sum(up{cluster=~"{{clusters}}"})',
        provider="prom",
        interval="1m",
        count=5,
        successCondition="result < 0.05",
        thresholdRange={"min": 0, "max": 1},
        failureLimit=1,
        inconclusiveLimit=2,
        perCluster=False,
    )
    assert isinstance(gate, PrometheusGate)
    assert (gate.label, gate.policy.interval, gate.policy.count) == ("error-rate", 60, 5)
    assert (gate.policy.failure_limit, gate.policy.inconclusive_limit) == (1, 2)
    assert str(gate.criterion) == "min 0, max 1, result < 0.05"
    assert not gate.per_cluster


@pytest.mark.parametrize(
    ("entry", "key", "text"),
    [
        ({}, "query", "needs 'query'"),
        ({"query": QUERY}, "successCondition", "needs successCondition or thresholdRange"),
        ({"query": QUERY, "successCondition": "result <"}, "successCondition", "ends too early"),
        ({"query": QUERY, "successCondition": "result = 1"}, "successCondition", "=="),
        ({"query": QUERY, "thresholdRange": {}}, "thresholdRange", "min, max or both"),
        ({"query": QUERY, "thresholdRange": {"max": "x"}}, "thresholdRange", "a number"),
        ({"query": QUERY, "thresholdRange": {"maximum": 1}}, "thresholdRange", "not maximum"),
        ({"query": QUERY, "thresholdRange": {"min": 2, "max": 1}}, "thresholdRange", "above"),
        ({"query": QUERY, "thresholdRange": 0.05}, "thresholdRange", "a mapping"),
        ({"query": QUERY, "count": 0}, "count", "between 1"),
        ({"query": QUERY, "count": "3"}, "count", "an integer"),
        ({"query": QUERY, "interval": "soon"}, "interval", "duration"),
        ({"query": QUERY, "failureLimit": -1}, "failureLimit", "between 0"),
        ({"query": QUERY, "inconclusiveLimit": True}, "inconclusiveLimit", "an integer"),
        ({"query": QUERY, "perCluster": "yes"}, "perCluster", "true or false"),
        ({"query": QUERY, "failurLimit": 1}, "failurLimit", "did you mean 'failureLimit'?"),
        ({"query": QUERY, "provider": "thanos"}, "provider", "undefined metric provider"),
        ({"query": "up{cluster={{cluster}}}"}, "query", "inside a double-quoted string"),
        ({"query": "up{cluster='{{cluster}}'}"}, "query", "inside a double-quoted string"),
        ({"query": 'up{c="{{clusters}}"}'}, "query", "use it in a =~ matcher"),
        ({"query": 'up{c="{{cluster}}"}', "perCluster": False}, "query", "needs one cluster"),
        ({"query": 'up{c=~"{{labels.region}}"}', "perCluster": False}, "query", "one cluster"),
        ({"query": 'up{c="{{clustr}}"}'}, "query", "unknown substitution {{clustr}}"),
        ({"query": 'up{c="{{labels.}}"}'}, "query", "needs a label key"),
        ({"query": 'up{c="{{ }}"}'}, "query", "unclosed or empty"),
        ({"query": 'up{c="{{cluster}}}'}, "query", "unterminated string"),
    ],
)
def test_prometheus_parameter_errors_name_the_key(
    plugins: FleetPlugins, entry: dict[str, Any], key: str, text: str
) -> None:
    criterion = key == "successCondition" or "thresholdRange" in entry
    extra = {} if criterion else {"thresholdRange": {"max": 1}}
    err = _error(plugins, type="prometheus", **extra, **entry)
    assert err.key == key
    assert text in str(err)


def test_the_provider_must_be_a_prometheus_one(plugins: FleetPlugins) -> None:
    entry = {"type": "prometheus", "query": QUERY, "thresholdRange": {"max": 1}}
    err = _error(plugins, {}, **entry)
    assert "no metricProviders entry of type prometheus" in str(err)
    two = {**PROVIDERS, "other": MetricProvider(name="other", address="http://x")}
    assert _error(plugins, two, **entry).key == "provider"
    assert isinstance(_gate(plugins, two, provider="other", **entry), PrometheusGate)


def _ctx(*targets: GateTarget, **env: str) -> GateContext:
    return GateContext("f", "web", "canary", "r1", "c1", list(targets), 0.0, 0.0, {}, env=env)


def test_promql_values_are_escaped_for_their_string_and_regex() -> None:
    hostile = 'x"}) or vector(1) or up{a="'
    target = GateTarget("eu.1", {"team": hostile, "path": "a\\b\nc"}, "shop")
    gate = FleetPlugins.load(entry_points=False).gate(
        GateSpec(
            type="prometheus",
            query='up{c="{{cluster}}",r=~"{{cluster}}",t="{{labels.team}}",p="{{labels.path}}"}',
            thresholdRange={"max": 1},
        ),
        PROVIDERS,
    )
    assert isinstance(gate, PrometheusGate)
    query = gate.query.render(target_values(_ctx(target), target), gate._escape)
    assert query == (r'up{c="eu.1",r=~"eu\\.1",t="x\"}) or vector(1) or up{a=\"",p="a\\b\x0ac"}')
    assert promql_string("tab\there") == "tab\\x09here"


def test_the_wave_query_names_every_cluster_as_a_regex(plugins: FleetPlugins) -> None:
    gate = _gate(
        plugins,
        type="prometheus",
        query='sum(up{cluster=~"{{clusters}}",ns="{{namespace}}",w="{{wave}}",b="{{bundle}}"})',
        thresholdRange={"min": 1},
        perCluster=False,
    )
    assert isinstance(gate, PrometheusGate)
    ctx = _ctx(GateTarget("canary", namespace="shop"), GateTarget("eu.1", namespace="shop"))
    query = gate.query.render(target_values(ctx, None), gate._escape)
    assert query == r'sum(up{cluster=~"canary|eu\\.1",ns="shop",w="canary",b="web"})'


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"a": "1"}, "value": [1.5, "0.12"]},
            {"metric": {"a": "2"}, "value": [1.5, "0.99"]},
        ]}}, 0.12),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1.5, "7"]}}, 7.0),
        ({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1.5, "+Inf"]}]}}, float("inf")),
    ],
)  # fmt: skip
def test_the_first_sample_or_the_scalar_is_the_value(answer: Any, value: float) -> None:
    assert sample_value(answer) == value


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, "no data"),
        ({"status": "error", "errorType": "bad_data", "error": "parse error"},
         "prometheus: bad_data: parse error"),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}},
         "gives a matrix"),
        ({"status": "success", "data": {"resultType": "vector", "result": [{"value": []}]}},
         "malformed sample"),
        ([1, 2], "not an object"),
    ],
)  # fmt: skip
def test_answers_without_a_value_say_why(answer: Any, reason: str) -> None:
    with pytest.raises(NoValue) as caught:
        sample_value(answer)
    assert reason in str(caught.value)


def test_http_defaults_and_parameters(plugins: FleetPlugins) -> None:
    gate = _gate(plugins, type="http", url="https://{{cluster}}.example.com/healthz")
    assert isinstance(gate, HttpGate)
    assert (gate.method, gate.expect, gate.timeout, gate.body) == ("GET", (), 10, None)
    assert (gate.policy.count, gate.policy.interval, gate.policy.failure_limit) == (1, 30, 0)
    gate = _gate(
        plugins,
        type="http",
        name="smoke",
        url="http://svc/{{bundle}}",
        method="post",
        body={"deep": True},
        headers={"X-Smoke": "fleet"},
        credential="smoke",
        expectStatus=[200, 204],
        timeout="3s",
        count=2,
        interval="5s",
        failureLimit=1,
    )
    assert isinstance(gate, HttpGate)
    assert (gate.method, gate.body, gate.expect, gate.timeout) == (
        "POST", b'{"deep": true}', (200, 204), 3
    )  # fmt: skip
    assert (gate.headers, gate.credential, gate.expected) == (
        {"X-Smoke": "fleet"}, "smoke", "expect 200, 204"
    )  # fmt: skip
    assert (gate.policy.count, gate.policy.interval, gate.policy.failure_limit) == (2, 5, 1)
    single = _gate(plugins, type="http", url="http://svc/", expectStatus=503)
    assert isinstance(single, HttpGate) and single.expect == (503,)


@pytest.mark.parametrize(
    ("entry", "key", "text"),
    [
        ({}, "url", "needs 'url'"),
        ({"url": "ftp://host/x"}, "url", "http:// or https://"),
        ({"url": "/healthz"}, "url", "http:// or https://"),
        ({"url": "http://h/{{query}}"}, "url", "unknown substitution {{query}}"),
        ({"url": "http://h/{{clusters}}"}, "url", "unknown substitution"),
        ({"url": "http://h/", "method": "PUT"}, "method", "GET or POST"),
        ({"url": "http://h/", "body": {"a": 1}}, "body", "needs method: POST"),
        ({"url": "http://h/", "headers": {"Authorization": "Bearer x"}}, "headers", "credential"),
        ({"url": "http://h/", "headers": {"bad name": "x"}}, "headers", "not a header name"),
        ({"url": "http://h/", "headers": {"X-A": "a\r\nX-B: b"}}, "headers", "one-line"),
        ({"url": "http://h/", "headers": {"X-A": 1}}, "headers", "one-line string"),
        ({"url": "http://h/", "expectStatus": 99}, "expectStatus", "an HTTP status"),
        ({"url": "http://h/", "expectStatus": []}, "expectStatus", "empty"),
        ({"url": "http://h/", "timeout": 0}, "timeout", "duration"),
        ({"url": "http://h/", "inconclusiveLimit": 1}, "inconclusiveLimit", "unknown parameter"),
        ({"url": "http://h/", "count": 0}, "count", "between 1"),
    ],
)
def test_http_parameter_errors_name_the_key(
    plugins: FleetPlugins, entry: dict[str, Any], key: str, text: str
) -> None:
    err = _error(plugins, type="http", **entry)
    assert err.key == key
    assert text in str(err)


def test_url_values_are_quoted_whole(plugins: FleetPlugins) -> None:
    gate = _gate(plugins, type="http", url="https://{{cluster}}.apps/x?team={{labels.team}}")
    assert isinstance(gate, HttpGate)
    target = GateTarget("eu-1", {"team": "a/b?c=d&e@evil.example#"})
    url = gate.url.render(target_values(_ctx(target), target), _quote)
    assert url == "https://eu-1.apps/x?team=a%2Fb%3Fc%3Dd%26e%40evil.example%23"


def test_approval_parameters(plugins: FleetPlugins) -> None:
    gate = _gate(plugins, type="approval")
    assert isinstance(gate, ApprovalGate) and gate.timeout is None
    gate = _gate(plugins, type="approval", timeout="1h30m")
    assert isinstance(gate, ApprovalGate) and gate.timeout == 5400
    assert _error(plugins, type="approval", timeout="later").key == "timeout"
    assert _error(plugins, type="approval", timout="1h").key == "timout"


def test_approval_waits_then_passes_or_times_out() -> None:
    gate = ApprovalGate("approval", 3600)
    ctx = _ctx(GateTarget("canary"))
    ctx.since, ctx.now = 1000.0, 1600.0
    waiting = gate.check(ctx)
    assert waiting.verdict is GateVerdict.PENDING and waiting.next_check is None
    assert waiting.message == (
        "approval: waiting for `fleet rollout approve web --wave canary` (50m left)"
    )
    ctx.now = 4600.0
    late = gate.check(ctx)
    assert late.verdict is GateVerdict.FAILED
    assert late.message.startswith("approval: not approved within 1h")
    ctx.approved = True
    assert gate.check(ctx).verdict is GateVerdict.PASSED
    forever = ApprovalGate("approval", None)
    ctx.approved, ctx.now = False, 10.0**9
    assert forever.check(ctx).verdict is GateVerdict.PENDING


@pytest.mark.parametrize(
    ("secret", "header"),
    [
        ("abc123", "Bearer abc123"),
        ("ops:s3cret", "Basic b3BzOnMzY3JldA=="),
        ("token abc", "token abc"),
    ],
)
def test_a_credential_becomes_an_authorization_header(secret: str, header: str) -> None:
    assert authorization_header(secret) == header
