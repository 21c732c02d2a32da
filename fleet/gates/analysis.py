"""Measure, count, decide: the analysis loop of Flagger and Argo Rollouts, for any gate.

A measuring gate (`prometheus`, `http`, a third party's Datadog check) takes one
*round* of measurements every `interval`, one per cluster of the wave or one for the
whole wave. A round is `ok` when every measurement in it is good, `failed` when one is
bad, `inconclusive` when none is bad but one could not be taken (no data, NaN, an error).
After each round the gate decides, as Argo Rollouts' AnalysisRun does:

- more failed rounds than `failureLimit` (default 0): failed, at once;
- more inconclusive rounds than `inconclusiveLimit` (default 0): inconclusive, at once;
- `count` rounds taken: passed;
- otherwise pending, the next round due `interval` after the last.

`decide` is that rule, pure. `run_analysis` is the loop around it: it keeps the rounds in
the gate's `memory` (one letter per round, so a long analysis stays small), takes a round
only when one is due (a planner tick in between answers `pending` with `next_check`) and
answers the same verdict again once decided, without measuring. The first round is taken
at the first check, that is, as soon as the wave is Ready.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from fleet.gates.model import GateContext, GateResult, GateVerdict, Measurement
from fleet.gates.params import GateParams

Outcome = Literal["ok", "failed", "inconclusive"]
_LETTER: dict[Outcome, str] = {"ok": "o", "failed": "f", "inconclusive": "i"}
_OUTCOME: dict[str, Outcome] = {letter: outcome for outcome, letter in _LETTER.items()}
SHOWN_CLUSTERS = 3  # a message names at most this many clusters ("and 7 more")


@dataclass(frozen=True, slots=True)
class AnalysisPolicy:
    """How many rounds, how far apart, and how many bad ones are tolerated."""

    count: int
    interval: int  # seconds between rounds
    failure_limit: int = 0
    inconclusive_limit: int = 0

    @classmethod
    def from_params(
        cls, params: GateParams, *, default_count: int, default_interval: str = "30s"
    ) -> AnalysisPolicy:
        """`count`, `interval`, `failureLimit`, `inconclusiveLimit` (those `params` allow)."""
        return cls(
            count=params.integer("count", default_count, minimum=1, maximum=1000),
            interval=params.duration("interval", default_interval),
            failure_limit=params.integer("failureLimit", 0, maximum=1000),
            inconclusive_limit=params.integer("inconclusiveLimit", 0, maximum=1000),
        )


def round_outcome(measurements: Iterable[Measurement]) -> Outcome:
    """A round is failed if one measurement is bad, else inconclusive if one is unknown
    (or there is none), else ok."""
    found = [m.ok for m in measurements]
    if False in found:
        return "failed"
    if None in found or not found:
        return "inconclusive"
    return "ok"


def decide(outcomes: Sequence[Outcome], policy: AnalysisPolicy) -> GateVerdict:
    """The verdict after these rounds (see the module docstring)."""
    if outcomes.count("failed") > policy.failure_limit:
        return GateVerdict.FAILED
    if outcomes.count("inconclusive") > policy.inconclusive_limit:
        return GateVerdict.INCONCLUSIVE
    if len(outcomes) >= policy.count:
        return GateVerdict.PASSED
    return GateVerdict.PENDING


def summary(verdict: GateVerdict, outcomes: Sequence[Outcome], policy: AnalysisPolicy) -> str:
    """`1 of 3 rounds failed (failureLimit 0)`, `round 2 of 3, 0 failed`, ..."""
    failed, unknown = outcomes.count("failed"), outcomes.count("inconclusive")
    if verdict is GateVerdict.FAILED:
        return f"{failed} of {policy.count} rounds failed (failureLimit {policy.failure_limit})"
    if verdict is GateVerdict.INCONCLUSIVE:
        return (
            f"{unknown} of {policy.count} rounds inconclusive "
            f"(inconclusiveLimit {policy.inconclusive_limit})"
        )
    extra = (f", {failed} failed" if failed else "") + (
        f", {unknown} inconclusive" if unknown else ""
    )
    if verdict is GateVerdict.PASSED:
        return f"{outcomes.count('ok')} of {policy.count} rounds ok{extra}"
    return f"round {len(outcomes)} of {policy.count}{extra}"


def describe_measurements(measurements: Sequence[Measurement], verdict: GateVerdict) -> str:
    """The values that explain `verdict`: the bad ones of a failed round, the unknown ones
    of an inconclusive one, else all; `0.12 on canary, 0.2 on eu-1 and 3 more`."""
    wanted: bool | Literal["all"] | None = "all"
    if verdict is GateVerdict.FAILED:
        wanted = False
    elif verdict is GateVerdict.INCONCLUSIVE:
        wanted = None
    shown = [m for m in measurements if wanted == "all" or m.ok is wanted] or list(measurements)
    parts = [_describe(m) for m in shown[:SHOWN_CLUSTERS]]
    text = ", ".join(parts) if parts else "no measurement"
    if len(shown) > SHOWN_CLUSTERS:
        text += f" and {len(shown) - SHOWN_CLUSTERS} more"
    return text


def format_value(value: float | str | None) -> str:
    """A measured value for a message: numbers to 4 significant digits, NaN as NaN."""
    if value is None:
        return "no value"
    if isinstance(value, float):
        return "NaN" if value != value else f"{value:.4g}"
    return str(value)


def _describe(measurement: Measurement) -> str:
    text = measurement.note if measurement.value is None and measurement.note else None
    text = text or format_value(measurement.value)
    return f"{text} on {measurement.cluster}" if measurement.cluster else text


Describe = Callable[[GateVerdict, Sequence[Measurement], str], str]


def run_analysis(
    ctx: GateContext,
    policy: AnalysisPolicy,
    measure: Callable[[], list[Measurement]],
    describe: Describe,
) -> GateResult:
    """One check of a measuring gate: take a round if one is due, then decide.

    `measure` takes one round (it must not raise for a failing check). `describe(verdict,
    measurements, summary)` writes the one-line message from the latest round.
    """
    memory = ctx.memory
    outcomes: list[Outcome] = [_OUTCOME[c] for c in str(memory.get("rounds", "")) if c in _OUTCOME]
    last = [Measurement.from_json(m) for m in memory.get("last", []) if isinstance(m, dict)]
    verdict = decide(outcomes, policy)
    last_at = memory.get("lastAt")
    due = (
        not verdict.decided
        and (not isinstance(last_at, int | float) or ctx.now >= last_at + policy.interval)
    )  # fmt: skip
    if due:
        last = measure()
        outcomes.append(round_outcome(last))
        last_at = ctx.now
        memory["rounds"] = "".join(_LETTER[o] for o in outcomes)
        memory["lastAt"] = last_at
        memory["last"] = [m.to_json() for m in last]
        verdict = decide(outcomes, policy)
    message = describe(verdict, last, summary(verdict, outcomes, policy))
    if verdict is GateVerdict.PENDING:
        assert isinstance(last_at, int | float)  # a round was taken before or just now
        return GateResult.pending(message, float(last_at) + policy.interval, *last)
    return GateResult(verdict, message, None, tuple(last))
