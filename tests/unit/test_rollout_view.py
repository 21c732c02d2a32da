"""`fleet.status.rollouts`: one rollout record as `fleet rollout status` and `/status` show it."""

from __future__ import annotations

import json

from fleet.gates.model import Measurement
from fleet.rollout import record as rec
from fleet.rollout.record import BundleRollout, Controls, GateRecord, WaveRecord
from fleet.status.rollouts import rollout_json, status_lines, wave_phase


def failed_rollout() -> BundleRollout:
    found = BundleRollout("web", "abc123abc123", "c0ffee" * 7, started_at=1.0,
                          outcome=rec.ROLLED_BACK, message="gate error-rate: 0.2 on canary",
                          failed_wave="canary")  # fmt: skip
    gate = GateRecord("error-rate", "prometheus", "failed", "0.2 on canary (max 0.05)",
                      memory={"rounds": "ok,bad"},
                      measurements=[Measurement("canary", 0.01, True, 2.0),
                                    Measurement("canary", 0.2, False, 3.0)])  # fmt: skip
    found.waves["canary"] = WaveRecord("canary", ready_at=1.0, verdict="failed",
                                       message="gate error-rate: 0.2 on canary",
                                       clusters=["canary"], rolled_back=["canary"],
                                       gates={"error-rate": gate})  # fmt: skip
    found.waves["eu"] = WaveRecord("eu")
    found.reject("abc123abc123", "wave canary: gate error-rate: 0.2 on canary")
    return found


def test_the_json_has_each_waves_phase_verdict_and_gates_and_the_cli_lines() -> None:
    found = failed_rollout()
    body = rollout_json(found, Controls(paused=True, reason="incident 42"))
    assert body["outcome"] == "rolledBack" and body["failedWave"] == "canary"
    assert body["paused"] is True and body["pauseReason"] == "incident 42"
    canary, eu = body["waves"]
    assert (canary["phase"], canary["verdict"], canary["rolledBack"]) == (
        "rolledBack", "failed", ["canary"])  # fmt: skip
    assert eu["phase"] == "pending"  # the rollout ended before it
    [gate] = canary["gates"]
    assert gate["message"] == "0.2 on canary (max 0.05)"
    assert [m["value"] for m in gate["measurements"]] == [0.01, 0.2]
    assert "memory" not in gate and "rounds" not in json.dumps(body)  # the gate's own counts
    assert body["rejected"] == {"abc123abc123": "wave canary: gate error-rate: 0.2 on canary"}
    assert body["lines"] == status_lines([found], {"web": Controls(paused=True)})
    assert body["lines"][0].startswith("web: revision abc123abc123 at c0ffeec0ffee: rolledBack "
                                       "(paused): gate error-rate")  # fmt: skip
    assert "      last measurements: canary=0.01, canary=0.2 (bad)" in body["lines"]


def test_a_wave_phase_follows_its_verdict() -> None:
    assert wave_phase(WaveRecord("w")) is None
    assert wave_phase(WaveRecord("w", ready_at=1.0)) == "verifying"
    assert wave_phase(WaveRecord("w", verdict="passed")) == "passed"
    assert wave_phase(WaveRecord("w", verdict="failed")) == "failed"
    assert wave_phase(WaveRecord("w", verdict="inconclusive")) == "halted"
    going = rollout_json(BundleRollout("web", "r", waves={"w": WaveRecord("w")}), None)
    assert going["waves"][0]["phase"] == "progressing" and going["paused"] is False
