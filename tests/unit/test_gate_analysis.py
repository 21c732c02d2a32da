"""The analysis state machine measuring gates share: rounds, limits, verdicts, memory."""

from __future__ import annotations

import json

import pytest

from fleet.plugin import (
    AnalysisPolicy,
    GateContext,
    GateResult,
    GateTarget,
    GateVerdict,
    Measurement,
    Outcome,
    decide,
    describe_measurements,
    round_outcome,
    run_analysis,
)

PASSED, PENDING, FAILED, INCONCLUSIVE = (
    GateVerdict.PASSED,
    GateVerdict.PENDING,
    GateVerdict.FAILED,
    GateVerdict.INCONCLUSIVE,
)


def _policy(count: int = 3, failures: int = 0, unknown: int = 0) -> AnalysisPolicy:
    return AnalysisPolicy(count, 10, failures, unknown)


@pytest.mark.parametrize(
    ("outcomes", "policy", "verdict"),
    [
        ([], _policy(), PENDING),
        (["ok"], _policy(), PENDING),
        (["ok", "ok"], _policy(), PENDING),
        (["ok", "ok", "ok"], _policy(), PASSED),
        (["failed"], _policy(), FAILED),  # more than failureLimit 0: at once
        (["ok", "ok", "failed"], _policy(), FAILED),
        (["failed"], _policy(failures=1), PENDING),
        (["failed", "ok", "ok"], _policy(failures=1), PASSED),
        (["failed", "ok", "failed"], _policy(failures=1), FAILED),
        (["inconclusive"], _policy(), INCONCLUSIVE),
        (["inconclusive", "ok", "ok"], _policy(unknown=1), PASSED),
        (["inconclusive", "inconclusive"], _policy(unknown=1), INCONCLUSIVE),
        (["inconclusive", "failed"], _policy(failures=1, unknown=1), PENDING),
        (["failed", "inconclusive"], _policy(unknown=5), FAILED),  # failed outranks
        (["ok"], _policy(count=1), PASSED),
    ],
)
def test_decide(outcomes: list[Outcome], policy: AnalysisPolicy, verdict: GateVerdict) -> None:
    assert decide(outcomes, policy) is verdict


def _m(cluster: str, ok: bool | None, value: float | None = 0.1) -> Measurement:
    return Measurement(cluster, value, ok, 0.0)


def test_a_round_is_as_good_as_its_worst_cluster() -> None:
    assert round_outcome([_m("a", True), _m("b", True)]) == "ok"
    assert round_outcome([_m("a", True), _m("b", None)]) == "inconclusive"
    assert round_outcome([_m("a", None), _m("b", False)]) == "failed"
    assert round_outcome([]) == "inconclusive"


def test_messages_show_the_values_that_explain_the_verdict() -> None:
    round_ = [_m("canary", False, 0.12), _m("eu-1", True, 0.01), _m("eu-2", None, None)]
    assert describe_measurements(round_, FAILED) == "0.12 on canary"
    assert describe_measurements(round_, INCONCLUSIVE) == "no value on eu-2"
    assert describe_measurements(round_, PASSED) == "0.12 on canary, 0.01 on eu-1, no value on eu-2"
    many = [_m(f"c{i}", False, 0.5) for i in range(5)]
    assert describe_measurements(many, FAILED) == "0.5 on c0, 0.5 on c1, 0.5 on c2 and 2 more"
    noted = [Measurement("eu-3", None, None, 0.0, "no data")]
    assert describe_measurements(noted, INCONCLUSIVE) == "no data on eu-3"


class FakeRounds:
    """Measurement rounds from a list of values per round (None: no data); counts calls."""

    def __init__(self, rounds: list[list[float | None]], ctx: GateContext) -> None:
        self.rounds = rounds
        self.ctx = ctx
        self.taken = 0

    def __call__(self) -> list[Measurement]:
        values = self.rounds[self.taken]
        self.taken += 1
        return [
            Measurement(t.cluster, v, None if v is None else v <= 0.05, self.ctx.now)
            for t, v in zip(self.ctx.targets, values, strict=True)
        ]


def _ctx(now: float = 1000.0) -> GateContext:
    targets = [GateTarget("canary"), GateTarget("eu-1")]
    return GateContext("f", "web", "canary", "r1", "c1", targets, 990.0, now, {})


def _describe(verdict: GateVerdict, measured: object, summary: str) -> str:
    return f"{verdict.value}: {summary}"


def _check(ctx: GateContext, policy: AnalysisPolicy, measure: FakeRounds) -> GateResult:
    result = run_analysis(ctx, policy, measure, _describe)
    json.dumps(ctx.memory)  # the memory stays JSON-able (kept in Redis / rollout records)
    return result


def test_rounds_are_taken_one_per_interval_and_then_passed() -> None:
    ctx = _ctx()
    measure = FakeRounds([[0.01, 0.02], [0.01, 0.0], [0.03, 0.04]], ctx)
    policy = _policy()
    first = _check(ctx, policy, measure)
    assert (first.verdict, first.next_check, measure.taken) == (PENDING, 1010.0, 1)
    assert first.message == "pending: round 1 of 3"
    assert [m.value for m in first.measurements] == [0.01, 0.02]
    ctx.now = 1005.0  # a tick before the next round is due: nothing measured
    early = _check(ctx, policy, measure)
    assert (early.verdict, early.next_check, measure.taken) == (PENDING, 1010.0, 1)
    ctx.now = 1010.0
    assert _check(ctx, policy, measure).next_check == 1020.0
    ctx.now = 1021.0
    done = _check(ctx, policy, measure)
    assert (done.verdict, done.message, measure.taken) == (PASSED, "passed: 3 of 3 rounds ok", 3)
    ctx.now = 5000.0  # decided: the same answer again, without measuring
    assert _check(ctx, policy, measure).verdict is PASSED
    assert measure.taken == 3


def test_one_bad_cluster_fails_the_round_and_the_gate() -> None:
    ctx = _ctx()
    measure = FakeRounds([[0.01, 0.02], [0.2, 0.01]], ctx)
    _check(ctx, _policy(), measure)
    ctx.now += 10
    result = _check(ctx, _policy(), measure)
    assert result.verdict is FAILED
    assert result.message == "failed: 1 of 3 rounds failed (failureLimit 0)"
    assert result.next_check is None
    assert [(m.cluster, m.ok) for m in result.measurements] == [("canary", False), ("eu-1", True)]


def test_failures_within_the_limit_still_pass() -> None:
    ctx = _ctx()
    measure = FakeRounds([[0.2, 0.01], [0.01, 0.01], [0.01, 0.01]], ctx)
    verdicts = []
    for _ in range(3):
        verdicts.append(_check(ctx, _policy(failures=1), measure))
        ctx.now += 10
    assert [r.verdict for r in verdicts] == [PENDING, PENDING, PASSED]
    assert verdicts[0].message == "pending: round 1 of 3, 1 failed"
    assert verdicts[2].message == "passed: 2 of 3 rounds ok, 1 failed"


def test_no_data_is_inconclusive_past_the_limit() -> None:
    ctx = _ctx()
    measure = FakeRounds([[0.01, None], [None, 0.01]], ctx)
    assert _check(ctx, _policy(unknown=1), measure).verdict is PENDING
    ctx.now += 10
    result = _check(ctx, _policy(unknown=1), measure)
    assert result.verdict is INCONCLUSIVE
    assert result.message == "inconclusive: 2 of 3 rounds inconclusive (inconclusiveLimit 1)"


def test_the_rounds_survive_in_memory_across_gate_objects() -> None:
    """A scheduler restart builds a new gate; the memory (from Redis) carries the rounds."""
    ctx = _ctx()
    _check(ctx, _policy(count=2), FakeRounds([[0.01, 0.01]], ctx))
    restored = _ctx(now=1010.0)
    restored.memory = json.loads(json.dumps(ctx.memory))
    measure = FakeRounds([[0.01, 0.01]], restored)
    assert _check(restored, _policy(count=2), measure).verdict is PASSED
    assert measure.taken == 1
