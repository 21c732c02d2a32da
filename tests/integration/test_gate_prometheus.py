"""The `prometheus` gate against a real Prometheus scraping the test bed's exporter.

Each test uses cluster names of its own (the exporter and Prometheus are shared by the
session), sets their error rates, waits until Prometheus has scraped them twice, and then
drives the gate as the rollout tracker would: `check`, sleep until `next_check`, again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fleet.plugin import FleetPlugins, Gate, GateSpec, GateTarget, GateVerdict, MetricProvider
from tests.support.exporter import Exporter
from tests.support.gates import AuthProxy, drive, wave_context
from tests.support.prometheus import PrometheusServer

ERROR_RATE = (
    'sum(rate(http_requests_total{cluster="{{cluster}}",code=~"5.."}[10s]))'
    ' / sum(rate(http_requests_total{cluster="{{cluster}}"}[10s]))'
)
FAST = {"interval": "1s", "count": 3}


@pytest.fixture(scope="module")
def plugins() -> FleetPlugins:
    return FleetPlugins.load(entry_points=False)


def _serve(exporter: Exporter, prometheus: PrometheusServer, **error_rates: float) -> None:
    for cluster, share in error_rates.items():
        exporter.set(cluster, error_rate=share)
    for cluster in error_rates:
        prometheus.wait_scraped(cluster, times=2)


def _gate(plugins: FleetPlugins, address: str, credential: str | None = None, **entry: Any) -> Gate:
    provider = MetricProvider(name="prom", address=address, credential=credential)
    gate = plugins.gate(GateSpec(type="prometheus", **entry), {"prom": provider})
    assert gate is not None
    return gate


def test_a_good_error_rate_passes_after_count_rounds(
    plugins: FleetPlugins, exporter: Exporter, prometheus: PrometheusServer
) -> None:
    _serve(exporter, prometheus, **{"good-canary": 0.01, "good-eu": 0.0})
    gate = _gate(
        plugins, prometheus.url, name="error-rate", query=ERROR_RATE,
        thresholdRange={"max": 0.05}, **FAST,
    )  # fmt: skip
    verdict, answers = drive(gate, wave_context(GateTarget("good-canary"), GateTarget("good-eu")))
    assert verdict.verdict is GateVerdict.PASSED, verdict.message
    assert verdict.message == (
        "error-rate: 0.01 on good-canary, 0 on good-eu (max 0.05), 3 of 3 rounds ok"
    )
    rounds = {a.measurements[0].at for a in answers}
    assert len(rounds) == 3  # three rounds measured, each at its own time
    assert [m.cluster for m in verdict.measurements] == ["good-canary", "good-eu"]


def test_a_bad_error_rate_fails_with_the_value(
    plugins: FleetPlugins, exporter: Exporter, prometheus: PrometheusServer
) -> None:
    _serve(exporter, prometheus, **{"bad-eu-1": 0.0, "bad-eu-2": 0.2})
    gate = _gate(
        plugins, prometheus.url, name="error-rate", query=ERROR_RATE,
        thresholdRange={"max": 0.05}, **FAST,
    )  # fmt: skip
    verdict, _ = drive(gate, wave_context(GateTarget("bad-eu-1"), GateTarget("bad-eu-2")))
    assert verdict.verdict is GateVerdict.FAILED
    assert verdict.message == (
        "error-rate: 0.2 on bad-eu-2 (max 0.05), 1 of 3 rounds failed (failureLimit 0)"
    )
    by_cluster = {m.cluster: m.ok for m in verdict.measurements}
    assert by_cluster == {"bad-eu-1": True, "bad-eu-2": False}


def test_a_cluster_without_data_is_inconclusive(
    plugins: FleetPlugins, exporter: Exporter, prometheus: PrometheusServer
) -> None:
    _serve(exporter, prometheus, **{"known-canary": 0.0})
    gate = _gate(plugins, prometheus.url, query=ERROR_RATE, thresholdRange={"max": 0.05}, **FAST)
    ctx = wave_context(GateTarget("known-canary"), GateTarget("ghost"))
    verdict, _ = drive(gate, ctx)
    assert verdict.verdict is GateVerdict.INCONCLUSIVE
    assert verdict.message == (
        "prometheus query: no data on ghost (max 0.05), "
        "1 of 3 rounds inconclusive (inconclusiveLimit 0)"
    )


def test_success_condition_decides(
    plugins: FleetPlugins, exporter: Exporter, prometheus: PrometheusServer
) -> None:
    _serve(exporter, prometheus, **{"cond-ok": 0.02, "cond-bad": 0.5})
    entry = {"query": ERROR_RATE, "successCondition": "result[0] < 0.05 || isNaN(result)"}
    good = _gate(plugins, prometheus.url, **entry, **FAST)
    assert drive(good, wave_context(GateTarget("cond-ok")))[0].verdict is GateVerdict.PASSED
    bad = _gate(plugins, prometheus.url, **entry, **FAST)
    verdict, _ = drive(bad, wave_context(GateTarget("cond-bad")))
    assert verdict.verdict is GateVerdict.FAILED
    assert verdict.message.startswith(
        "prometheus query: 0.5 on cond-bad (result[0] < 0.05 || isNaN(result)), 1 of 3"
    )


def test_threshold_range_min_and_max(
    plugins: FleetPlugins, exporter: Exporter, prometheus: PrometheusServer
) -> None:
    """The request rate (100/s by default) against a range: inside passes, below fails.
    (`irate`: the last two samples, so the rate is right as soon as there are two.)"""
    _serve(exporter, prometheus, **{"busy": 0.0})
    query = 'sum(irate(http_requests_total{cluster="{{cluster}}"}[10s]))'
    inside = _gate(
        plugins, prometheus.url, query=query, thresholdRange={"min": 50, "max": 150}, **FAST
    )
    assert drive(inside, wave_context(GateTarget("busy")))[0].verdict is GateVerdict.PASSED
    above = _gate(plugins, prometheus.url, query=query, thresholdRange={"min": 500}, **FAST)
    verdict, _ = drive(above, wave_context(GateTarget("busy")))
    assert verdict.verdict is GateVerdict.FAILED
    assert "on busy (min 500)" in verdict.message


def test_one_query_for_the_whole_wave(
    plugins: FleetPlugins, exporter: Exporter, prometheus: PrometheusServer
) -> None:
    _serve(exporter, prometheus, **{"wave.a": 0.0, "wave.b": 0.02})
    query = (
        'sum(rate(http_requests_total{cluster=~"{{clusters}}",code=~"5.."}[10s]))'
        ' / sum(rate(http_requests_total{cluster=~"{{clusters}}"}[10s]))'
    )
    gate = _gate(
        plugins, prometheus.url, query=query, thresholdRange={"max": 0.015}, perCluster=False,
        **FAST,
    )  # fmt: skip
    verdict, _ = drive(gate, wave_context(GateTarget("wave.a"), GateTarget("wave.b")))
    assert verdict.verdict is GateVerdict.PASSED, verdict.message
    assert verdict.message.startswith("prometheus query: 0.01 (max 0.015)")


def test_a_label_value_cannot_change_the_query(
    plugins: FleetPlugins, exporter: Exporter, prometheus: PrometheusServer
) -> None:
    """Unescaped, this label would make the query `... or vector(1)`: a passing 1."""
    _serve(exporter, prometheus, **{"plain": 0.0})
    query = 'sum(rate(http_requests_total{cluster="{{labels.alias}}"}[10s]))'
    gate = _gate(plugins, prometheus.url, query=query, successCondition="result == 1", count=1)
    target = GateTarget("plain", {"alias": 'plain"}[10s])) * 0 + vector(1) or up{a="'})
    verdict, _ = drive(gate, wave_context(target))
    assert verdict.verdict is GateVerdict.INCONCLUSIVE
    assert "no data on plain" in verdict.message


def test_prometheus_errors_are_inconclusive_with_a_reason(
    plugins: FleetPlugins, prometheus: PrometheusServer
) -> None:
    bad_query = 'sum(rate(http_requests_total{cluster="{{cluster}}"}))'  # rate() needs a range
    gate = _gate(plugins, prometheus.url, query=bad_query, thresholdRange={"max": 1}, count=1)
    verdict, _ = drive(gate, wave_context(GateTarget("any")))
    assert verdict.verdict is GateVerdict.INCONCLUSIVE
    assert "prometheus: bad_data:" in verdict.message
    assert "\n" not in verdict.message
    closed = _gate(
        plugins, "http://127.0.0.1:9", query=ERROR_RATE, thresholdRange={"max": 1}, count=1
    )
    verdict, _ = drive(closed, wave_context(GateTarget("any")))
    assert verdict.verdict is GateVerdict.INCONCLUSIVE
    assert "cannot reach prometheus prom: ConnectError" in verdict.message


@pytest.fixture
def basic_proxy(prometheus: PrometheusServer) -> Iterator[AuthProxy]:
    proxy = AuthProxy(prometheus.url, "Basic b3BzOnMzY3JldC1wdw==")  # ops:s3cret-pw
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def bearer_proxy(prometheus: PrometheusServer) -> Iterator[AuthProxy]:
    proxy = AuthProxy(prometheus.url, "Bearer tok-s3cret")
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize(
    ("proxy_fixture", "secret"), [("basic_proxy", "ops:s3cret-pw"), ("bearer_proxy", "tok-s3cret")]
)
def test_the_provider_credential_is_sent_and_never_shown(
    plugins: FleetPlugins,
    exporter: Exporter,
    prometheus: PrometheusServer,
    request: pytest.FixtureRequest,
    proxy_fixture: str,
    secret: str,
) -> None:
    proxy: AuthProxy = request.getfixturevalue(proxy_fixture)
    _serve(exporter, prometheus, **{"authed": 0.0})
    entry = {"query": ERROR_RATE, "thresholdRange": {"max": 0.05}, "count": 2, "interval": "1s"}
    gate = _gate(plugins, proxy.url, credential="metrics-ops", **entry)
    env = {"FLEET_METRICS_METRICS_OPS": secret}
    verdict, answers = drive(gate, wave_context(GateTarget("authed"), env=env))
    assert verdict.verdict is GateVerdict.PASSED, verdict.message
    assert {r.headers["authorization"] for r in proxy.requests} == {proxy.expected}
    wrong_env = {"FLEET_METRICS_METRICS_OPS": secret + "-wrong"}
    wrong, more = drive(gate, wave_context(GateTarget("authed"), env=wrong_env))
    assert wrong.verdict is GateVerdict.INCONCLUSIVE
    assert "HTTP 401" in wrong.message
    unset, _ = drive(gate, wave_context(GateTarget("authed")))
    assert unset.verdict is GateVerdict.INCONCLUSIVE
    assert unset.message == (
        "prometheus query: FLEET_METRICS_METRICS_OPS is not set "
        "(the credential of metric provider prom)"
    )
    for answer in [*answers, *more, unset]:
        assert secret not in answer.message
        assert all(secret not in m.note for m in answer.measurements)
