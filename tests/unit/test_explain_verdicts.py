"""`fleet explain`'s read-only verifier (`fleet.runtime.explain.RecordedVerdicts`): the
planner's waiting reasons from the rollout tracker's recorded verdicts, asking no gate."""

from __future__ import annotations

from fleet.rollout import record as rec
from fleet.rollout.planner import plan
from fleet.rollout.record import BundleRollout, Controls, WaveRecord, revision_of
from fleet.runtime.explain import RecordedVerdicts
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.definition import Rollout
from fleet.states import ActualUnit, BundleState
from fleet.targeting.units import DeploymentUnit

WAVES = Rollout.model_validate(
    {"waves": [{"name": "canary", "clusters": ["dev"]}, {"name": "rest", "clusters": ["prod"]}]}
)
UNITS = [DeploymentUnit("web", c, BundleOptions(), "v2", None) for c in ("dev", "prod")]
DONE = {("web", "dev"): ActualUnit("v2", BundleState.READY, "c2")}  # canary is Ready
REVISION = revision_of(["v2"])


def why(records: dict[str, BundleRollout], controls: dict[str, Controls] | None = None) -> str:
    verdicts = RecordedVerdicts(records, controls or {}, UNITS)
    found = plan(UNITS, DONE, WAVES, now=1000.0, verifier=verdicts)
    reasons = {w.unit.cluster: w.reason for w in found.waiting}
    return reasons.get("prod", "dispatched" if found.dispatch else "nothing")


def verifying(verdict: str, message: str, revision: str = REVISION) -> BundleRollout:
    wave = WaveRecord("canary", ready_at=900.0, verdict=verdict, message=message)
    return BundleRollout("web", revision, waves={"canary": wave})


def test_a_wave_still_verifying_holds_the_next_one_with_the_gates_message() -> None:
    assert why({"web": verifying("pending", "bake 60s left")}) == (
        "wave rest waits for the gates of wave canary: bake 60s left"
    )
    assert why({"web": verifying("failed", "errors 7% > 5%")}) == (
        "wave rest waits for wave canary, which failed: errors 7% > 5%"
    )


def test_no_record_or_an_old_revision_lets_the_wave_go() -> None:
    assert why({}) == "dispatched"
    assert why({"web": verifying("pending", "bake", revision="old")}) == "dispatched"
    not_ready_yet = BundleRollout("web", REVISION, waves={"canary": WaveRecord("canary")})
    assert why({"web": not_ready_yet}) == "dispatched"


def test_a_pause_or_a_failed_rollout_holds_the_bundle() -> None:
    paused = {"web": Controls(paused=True, reason="incident 42")}
    assert why({}, paused) == "paused by `fleet rollout pause`: incident 42"
    failed = BundleRollout("web", REVISION, outcome=rec.FAILED, failed_wave="canary",
                           message="gate errors failed")  # fmt: skip
    assert why({"web": failed}) == (
        "rollout failed at wave canary: gate errors failed; `fleet rollout resume` verifies again"
    )
    # the tracker's other holds, the same words (one rule, fleet.rollout.tracker.hold_reason)
    rejected = BundleRollout("web", REVISION, rejected={REVISION: "wave canary: bad"})
    assert why({"web": rejected}) == (
        f"revision {REVISION} was rolled back (wave canary: bad); waiting for a new commit"
    )
    aborted = {"web": Controls(aborted=[REVISION])}
    assert "aborted by `fleet rollout abort`" in why({}, aborted)
