"""`fleet_rollout_wave`: each bundle's wave in one phase, from the status rows."""

from __future__ import annotations

from fleet.runtime.serve_view import wave_phases
from fleet.states import BundleState
from fleet.status.model import FleetStatus, UnitStatus


def test_a_wave_is_failed_passed_pending_or_progressing() -> None:
    status = FleetStatus("f", "c")
    rows = [
        ("web", "dev", BundleState.READY),
        ("web", "dev", BundleState.MODIFIED),
        ("web", "prod", BundleState.NOT_READY),
        ("web", "prod", BundleState.PENDING),
        ("db", "dev", BundleState.ERR_APPLIED),
        ("db", "dev", BundleState.READY),
        ("db", "prod", BundleState.PENDING),
    ]
    for i, (bundle, wave, state) in enumerate(rows):
        status.units.append(UnitStatus(f"c{i}", bundle, state, "id", "", wave=wave))
    assert wave_phases(status) == {
        ("web", "dev"): "passed",
        ("web", "prod"): "progressing",
        ("db", "dev"): "failed",
        ("db", "prod"): "pending",
    }


def test_the_trackers_verdicts_decide_the_phase_of_the_waves_it_reached() -> None:
    from fleet.rollout import record as rec
    from fleet.rollout.record import WaveRecord
    from tests.unit.test_rollout_tracker import the_rollout, tracker

    t = tracker(the_rollout())
    found = t.records["web"]
    status = FleetStatus("f", "c")
    for cluster, wave, state in [("canary", "canary", BundleState.READY),
                                 ("eu-1", "eu", BundleState.PENDING),
                                 ("us-1", "us", BundleState.PENDING)]:  # fmt: skip
        status.units.append(UnitStatus(cluster, "web", state, "id", "", wave=wave))
    found.waves["canary"] = WaveRecord("canary", ready_at=5.0)
    assert wave_phases(status, t) == {
        ("web", "canary"): "verifying",  # every unit Ready, its gates still running
        ("web", "eu"): "pending",
        ("web", "us"): "pending",
    }
    found.waves["canary"] = WaveRecord("canary", ready_at=5.0, verdict="failed",
                                       rolled_back=["canary"])  # fmt: skip
    found.outcome = rec.ROLLED_BACK
    status.units[1].state = BundleState.OUT_OF_SYNC  # would be "progressing" by the rows
    phases = wave_phases(status, t)
    assert phases[("web", "canary")] == "rolledBack"
    assert phases[("web", "eu")] == "pending"  # held: it will not start
    found.revision = "another"  # a record of another revision says nothing
    assert wave_phases(status, t)[("web", "canary")] == "passed"
