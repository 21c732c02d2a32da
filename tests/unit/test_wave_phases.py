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
