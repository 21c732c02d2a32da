"""The rollout tracker with the planner: bake, gates, health failures, holds, rollbacks.

Gates here are small objects with a `check` method answering from a script (the gate API
is a Python protocol; the built-in gates against a real Prometheus are tested in
tests/integration). Time is passed in, never slept.
"""

from __future__ import annotations

from typing import Any

from fleet.gates.config import GateSet
from fleet.gates.model import GateContext, GateResult
from fleet.rollout import record as rec
from fleet.rollout.planner import Plan, plan
from fleet.rollout.record import BundleRollout, Controls
from fleet.rollout.tracker import RolloutTracker, settings_source
from fleet.rollout.waves import plan_waves
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.definition import Rollout
from fleet.spec.rollout_spec import GateSpec
from fleet.states import ActualUnit, BundleState
from fleet.targeting.units import DeploymentUnit, UnitKey

READY, NOT_READY = BundleState.READY, BundleState.NOT_READY
CLUSTERS = ["canary", "eu-1", "eu-2"]


class Scripted:
    """Answers `check` from `answers` (one per call; the last one repeats)."""

    def __init__(self, *answers: GateResult) -> None:
        self.answers = list(answers)
        self.calls: list[GateContext] = []

    def check(self, ctx: GateContext) -> GateResult:
        self.calls.append(ctx)
        ctx.memory["calls"] = ctx.memory.get("calls", 0) + 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def units(did: str = "v2", **options: Any) -> list[DeploymentUnit]:
    opts = BundleOptions.model_validate(options)
    return [DeploymentUnit("web", c, opts, did, None, {"name": c}) for c in CLUSTERS]


def the_rollout(**doc: Any) -> Rollout:
    waves = [
        {"name": "canary", "clusters": ["canary"]},
        {"name": "eu", "clusters": ["eu-1", "eu-2"]},
    ]
    return Rollout.model_validate({"waves": waves, **doc})


def gate_set(
    rollout: Rollout, gate: Scripted | None, options: BundleOptions | None = None
) -> GateSet:
    def build(spec: GateSpec, providers: Any) -> Scripted | None:
        return gate if spec.type == "scripted" else None

    return GateSet.build(
        rollout, {"web": options or BundleOptions()}, [], build, lambda: {"scripted"}
    )


def settings_of(rollout: Rollout, gates: GateSet, these: list[DeploymentUnit]) -> Any:
    return settings_source(plan_waves(these, rollout), gates)


def tracker(rollout: Rollout, gate: Scripted | None = None, **kw: Any) -> RolloutTracker:
    these = kw.pop("units", units())
    settings = settings_of(rollout, gate_set(rollout, gate), these)
    found = RolloutTracker("f", "c1", these, settings, **kw)
    found.begin(0.0)
    return found


def actual(states: dict[str, tuple[str, BundleState]]) -> dict[UnitKey, ActualUnit]:
    return {("web", c): ActualUnit(did, state) for c, (did, state) in states.items()}


def waiting(p: Plan) -> dict[str, str]:
    return {w.unit.cluster: w.reason for w in p.waiting}


def dispatched(p: Plan) -> list[str]:
    return [d.unit.cluster for d in p.dispatch]


def test_a_wave_bakes_then_the_next_starts() -> None:
    r = the_rollout(waves=[{"name": "canary", "clusters": ["canary"], "bake": "5m"},
                           {"name": "eu", "clusters": ["eu-1", "eu-2"]}])  # fmt: skip
    t = tracker(r)
    now = actual({"canary": ("v2", READY)})
    p = plan(units(), now, r, now=100, verifier=t)
    assert waiting(p) == {
        c: "wave eu waits for the gates of wave canary: bake 5m00s left of 5m00s"
        for c in ("eu-1", "eu-2")
    }
    assert t.next_check(100) == 400
    assert "bake 1m00s left" in waiting(plan(units(), now, r, now=340, verifier=t))["eu-1"]
    assert dispatched(plan(units(), now, r, now=400, verifier=t)) == ["eu-1", "eu-2"]
    assert t.records["web"].waves["canary"].verdict == "passed"


def test_a_gate_is_asked_again_at_its_next_check_and_keeps_its_memory() -> None:
    gate = Scripted(GateResult.pending("1 of 3", 130), GateResult.pending("2 of 3", 160),
                    GateResult.passed("0.01 < 0.05"))  # fmt: skip
    r = the_rollout(gates=[{"type": "scripted"}])
    t = tracker(r, gate)
    now = actual({"canary": ("v2", READY)})
    assert waiting(plan(units(), now, r, now=100, verifier=t))["eu-1"] == (
        "wave eu waits for the gates of wave canary: scripted: 1 of 3"
    )
    plan(units(), now, r, now=120, verifier=t)  # before next_check: not asked
    assert len(gate.calls) == 1 and t.next_check(120) == 130
    plan(units(), now, r, now=130, verifier=t)
    p = plan(units(), now, r, now=160, verifier=t)
    assert dispatched(p) == ["eu-1", "eu-2"]
    assert gate.calls[-1].memory == {"calls": 3}  # the gate's memory, kept between checks
    assert gate.calls[0].since == 100 and [t.cluster for t in gate.calls[0].targets] == ["canary"]


def test_a_failed_gate_halts_and_queues_a_rollback_with_auto_rollback() -> None:
    gate = Scripted(GateResult.failed("error rate 0.20 > 0.05 on canary"))
    r = the_rollout(gates=[{"type": "scripted", "name": "errors"}], autoRollback=True)
    t = tracker(r, gate)
    now = actual({"canary": ("v2", READY)})
    p = plan(units(), now, r, now=100, verifier=t)
    assert [f.wave for f in p.failed] == ["canary"]
    assert waiting(p)["eu-1"] == (
        "wave eu waits for wave canary, which failed: gate errors: error rate 0.20 > 0.05 on canary"
    )
    assert [(d.wave, d.clusters) for d in t.rollbacks] == [("canary", ("canary",))]
    assert t.records["web"].outcome == rec.FAILED
    due = t.rollbacks.pop()
    t.rolled_back(due, ["canary"], {})
    assert t.records["web"].outcome == rec.ROLLED_BACK
    # the canary now runs the old id again; the failed revision is held everywhere
    back = actual({"canary": ("v1", READY)})
    p = plan(units(), back, r, now=200, verifier=t)
    assert not p.dispatch
    assert all("was rolled back" in why for why in waiting(p).values()), waiting(p)
    kinds = [e.kind for e in t.drain_events()]
    assert kinds == ["wave.failed", "rollout.rolledBack"]


def test_a_rejected_revision_stays_held_until_a_new_one() -> None:
    r = the_rollout(autoRollback=True)
    old = BundleRollout("web", rec.revision_of(["v2"]), "c1")
    old.reject(old.revision, "wave canary: bad")
    t = tracker(r, records={"web": old})
    assert "was rolled back (wave canary: bad)" in (t.held("web") or "")
    fresh = tracker(r, units=units("v3"), records={"web": old})
    assert fresh.held("web") is None
    assert fresh.records["web"].rejected == old.rejected  # remembered across revisions


def test_never_ready_on_the_canary_fails_by_health_alone() -> None:
    r = the_rollout(autoRollback=True)
    t = tracker(r)
    now = actual({"canary": ("v2", NOT_READY)})
    p = plan(units(), now, r, now=100, verifier=t)
    assert [f.message for f in p.failed] == ["canary is NotReady"]
    assert [d.clusters for d in t.rollbacks] == [("canary",)]


def test_an_unverified_wave_waits_as_before_instead_of_failing() -> None:
    r = the_rollout()
    t = tracker(r)
    p = plan(units(), actual({"canary": ("v2", NOT_READY)}), r, now=100, verifier=t)
    assert not p.failed and not t.rollbacks
    assert waiting(p)["eu-1"] == "wave eu waits for wave canary (canary: NotReady)"


def test_health_lost_during_the_bake_fails_the_wave() -> None:
    r = the_rollout(bake="10m")
    t = tracker(r)
    plan(units(), actual({"canary": ("v2", READY)}), r, now=100, verifier=t)
    p = plan(units(), actual({"canary": ("v2", NOT_READY)}), r, now=200, verifier=t)
    assert [f.message for f in p.failed] == ["canary is NotReady during verification"]
    assert t.records["web"].outcome == rec.FAILED and not t.rollbacks  # no autoRollback
    assert "`fleet rollout resume` verifies again" in (t.held("web") or "")


def test_inconclusive_halts_without_rollback_and_resume_verifies_again() -> None:
    gate = Scripted(GateResult.inconclusive("no data for canary"), GateResult.passed("ok"))
    r = the_rollout(gates=[{"type": "scripted"}], autoRollback=True)
    t = tracker(r, gate)
    now = actual({"canary": ("v2", READY)})
    p = plan(units(), now, r, now=100, verifier=t)
    assert p.failed and not t.rollbacks and t.records["web"].outcome == rec.HALTED
    resumed = tracker(r, gate, records=t.records, controls={"web": Controls(resumed_at=150)})
    assert resumed.held("web") is None
    assert dispatched(plan(units(), now, r, now=160, verifier=resumed)) == ["eu-1", "eu-2"]


def test_approval_comes_from_the_controls_of_the_revision() -> None:
    seen: list[bool] = []

    class Approval:
        def check(self, ctx: GateContext) -> GateResult:
            seen.append(ctx.approved)
            return GateResult.passed("approved") if ctx.approved else GateResult.pending("wait")

    canary = {"name": "canary", "clusters": ["canary"], "gates": [{"type": "scripted"}]}
    r = the_rollout(waves=[canary, {"name": "eu", "clusters": ["eu-1", "eu-2"]}])
    sets = GateSet.build(r, {"web": BundleOptions()}, [], lambda s, p: Approval(), set)
    now = actual({"canary": ("v2", READY)})
    t = RolloutTracker("f", "c1", units(), settings_of(r, sets, units()))
    t.begin(0)
    assert not plan(units(), now, r, now=10, verifier=t).dispatch
    assert t.next_check(10) is None  # waits for a person: nothing to wait for in-process
    revision = t.revisions["web"]
    ok = RolloutTracker("f", "c1", units(), settings_of(r, sets, units()), records=t.records,
                        controls={"web": Controls(approved={revision: ["canary"]})})  # fmt: skip
    ok.begin(20)
    assert dispatched(plan(units(), now, r, now=20, verifier=ok)) == ["eu-1", "eu-2"]
    assert seen == [False, True]


def test_paused_and_aborted_hold_the_bundle() -> None:
    r = the_rollout()
    t = tracker(r, controls={"web": Controls(paused=True, reason="incident 42")})
    p = plan(units(), {}, r, now=0, verifier=t)
    assert set(waiting(p).values()) == {"paused by `fleet rollout pause`: incident 42"}
    revision = rec.revision_of(["v2"])
    t = tracker(r, controls={"web": Controls(aborted=[revision])})
    assert "aborted" in (t.held("web") or "")


def test_success_when_every_wave_passed() -> None:
    r = the_rollout(bake="1m")
    t = tracker(r)
    done = actual({c: ("v2", READY) for c in CLUSTERS})
    plan(units(), done, r, now=10, verifier=t)
    plan(units(), done, r, now=70, verifier=t)
    plan(units(), done, r, now=130, verifier=t)
    t.settle(lambda b: True, 130)
    assert t.records["web"].outcome == rec.SUCCEEDED
    assert [e.kind for e in t.drain_events()] == ["wave.passed", "wave.passed", "rollout.succeeded"]


def test_a_rollout_without_anything_to_verify_is_no_news() -> None:
    r = the_rollout()
    t = tracker(r)
    plan(units(), actual({c: ("v2", READY) for c in CLUSTERS}), r, now=10, verifier=t)
    t.settle(lambda b: True, 10)
    assert t.records["web"].outcome == rec.SUCCEEDED and t.drain_events() == []


def test_records_round_trip_through_json() -> None:
    gate = Scripted(GateResult.pending("1 of 3", 130))
    r = the_rollout(gates=[{"type": "scripted"}])
    t = tracker(r, gate)
    plan(units(), actual({"canary": ("v2", READY)}), r, now=100, verifier=t)
    found = t.records["web"]
    again = BundleRollout.from_json(found.to_json())
    assert again == found


def test_unknown_gate_types_and_bad_parameters_are_problems_at_their_key() -> None:
    from fleet.gates.model import GateConfigError

    def build(spec: GateSpec, providers: Any) -> Scripted | None:
        if spec.type != "scripted":
            return None
        if "query" not in spec.params:
            raise GateConfigError("query is required", "query")
        return Scripted(GateResult.passed("ok"))

    r = the_rollout(gates=[{"type": "scripted"}, {"type": "datadog"}])
    found = GateSet.build(r, {}, [], build, lambda: {"scripted"})
    assert [(p.loc, p.message) for p in found.problems] == [
        (("rollout", "gates", 0, "query"), "gate scripted: query is required"),
        (("rollout", "gates", 1, "type"), "unknown gate type 'datadog' (known: scripted)"),
    ]


def test_bundle_strategy_gates_and_auto_rollback_win_over_the_definition() -> None:
    r = the_rollout(bake="1m", autoRollback=False)
    options = BundleOptions.model_validate(
        {"rolloutStrategy": {"gates": [{"type": "scripted"}], "bake": "2m", "autoRollback": True}}
    )
    opts = {"rolloutStrategy": {"gates": [{"type": "scripted"}], "bake": "2m",
                                "autoRollback": True}}  # fmt: skip
    these = units(**opts)
    found = settings_of(r, gate_set(r, Scripted(GateResult.passed("ok")), options), these)(
        "web", "canary"
    )
    assert [g.name for g in found.gates] == ["scripted"]
    assert found.bake == 120 and found.auto_rollback


def test_an_unnamed_partition_s_gate_holds_the_next_partition() -> None:
    gate = Scripted(GateResult.pending("measuring", 50))
    strategy = {"partitions": [{"clusterName": "canary", "gates": [{"type": "scripted"}]},
                               {"clusterSelector": {}}]}  # fmt: skip
    these = units(rolloutStrategy=strategy)
    r = Rollout()
    gates = GateSet.build(r, {"web": these[0].options}, [], lambda s, p: gate, lambda: set())
    t = RolloutTracker("f", "c1", these, settings_of(r, gates, these))
    t.begin(0)
    p = plan(these, actual({"canary": ("v2", READY)}), r, now=10, verifier=t)
    assert set(waiting(p)) == {"eu-1", "eu-2"}, waiting(p)
    assert all("measuring" in why for why in waiting(p).values())
    assert len(gate.calls) == 1 and gate.calls[0].wave == "partition-0"


def test_a_wave_delay_is_a_time_to_wake_up_for() -> None:
    eu = {"name": "eu", "clusters": ["eu-1", "eu-2"], "delay": "1m"}
    r = the_rollout(waves=[{"name": "canary", "clusters": ["canary"]}, eu])
    these = units()
    t = RolloutTracker("f", "c1", these, settings_of(r, gate_set(r, None), these),
                       layout=plan_waves(these, r))  # fmt: skip
    t.begin(0)
    now = actual({"canary": ("v2", READY)})
    p = plan(these, now, r, now=10, verifier=t, completed_at=t.completed_at())
    assert not p.dispatch and "1m" in waiting(p)["eu-1"], waiting(p)
    assert t.next_check(10) == 70
    p = plan(these, now, r, now=70, verifier=t, completed_at=t.completed_at())
    assert dispatched(p) == ["eu-1", "eu-2"]


def test_settle_with_what_the_clusters_run() -> None:
    r = the_rollout()
    t = tracker(r)
    done = actual({c: ("v2", READY) for c in CLUSTERS})
    plan(units(), done, r, now=10, verifier=t)
    t.settle_with(actual({"canary": ("v2", READY), "eu-1": ("v2", READY)}), 10)
    assert t.records["web"].outcome == rec.PROGRESSING  # eu-2 not there yet
    t.settle_with(done, 11)
    assert t.records["web"].outcome == rec.SUCCEEDED
