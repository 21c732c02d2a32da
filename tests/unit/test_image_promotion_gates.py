"""What a bundle's rollout record says about the next wave of a promoted tag
(fleet.runtime.image_promotion.gate_lookup): only the record of the revision the commit
gives the bundle counts."""

from __future__ import annotations

from pathlib import Path

from fleet.images.promotion import HELD, PASSED, WAITING
from fleet.rollout import record as rec
from fleet.rollout.record import BundleRollout, Controls, WaveRecord, bundle_revisions
from fleet.runtime.image_promotion import Context, gate_lookup
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.definition import FleetDefinition
from fleet.spec.loader import FleetRepo
from fleet.targeting.units import DeploymentUnit

UNITS = [
    DeploymentUnit("web", cluster, BundleOptions(), f"id-{cluster}", None)
    for cluster in ("canary-1", "eu-1")
]
REVISION = bundle_revisions(UNITS)["web"]
REPO = FleetRepo(
    Path("."),
    FleetDefinition.model_validate(
        {"apiVersion": "fleet-gitops.io/v1alpha1", "kind": "Fleet", "name": "t"}
    ),
    [],
    Path("fleet.yaml"),
)


def context(found: BundleRollout | None, control: Controls | None = None) -> Context:
    records = {"web": found} if found is not None else {}
    controls = {"web": control} if control is not None else {}
    return Context(REPO, UNITS, records, controls)


def rollout(revision: str, verdict: str, outcome: str = rec.PROGRESSING) -> BundleRollout:
    found = BundleRollout("web", revision, outcome=outcome)
    found.waves["canary"] = WaveRecord("canary", verdict=verdict, message="said so")
    return found


def test_passed_only_for_the_revision_of_the_commit() -> None:
    assert gate_lookup(context(rollout(REVISION, "passed")))("web", "canary").state == PASSED
    stale = gate_lookup(context(rollout("0123456789ab", "passed")))("web", "canary")
    assert stale.state == WAITING and f"revision {REVISION}" in stale.reason
    assert gate_lookup(context(None))("web", "canary").state == WAITING
    pending = gate_lookup(context(rollout(REVISION, "pending")))("web", "canary")
    assert (pending.state, pending.reason) == (WAITING, "wave canary is pending: said so")
    unreached = gate_lookup(context(rollout(REVISION, "passed")))("web", "prod-eu")
    assert unreached.state == WAITING and "not reached" in unreached.reason


def test_failed_halted_rolled_back_and_stopped_by_hand_hold() -> None:
    failed = gate_lookup(context(rollout(REVISION, "failed", rec.FAILED)))("web", "canary")
    assert failed.state == HELD and "rollout failed" in failed.reason
    inconclusive = gate_lookup(context(rollout(REVISION, "inconclusive")))("web", "canary")
    assert inconclusive.state == HELD and "inconclusive" in inconclusive.reason
    rejected = rollout(REVISION, "failed", rec.ROLLED_BACK)
    rejected.reject(REVISION, "wave canary: error rate")
    said = gate_lookup(context(rejected))("web", "canary")
    assert said.state == HELD and "rolled back (wave canary: error rate)" in said.reason
    aborted = Controls(aborted=[REVISION])
    said = gate_lookup(context(rollout(REVISION, "passed"), aborted))("web", "canary")
    assert said.state == HELD and "aborted" in said.reason
    stale = Context(REPO, UNITS, {"web": rollout(REVISION, "passed")}, {}, "not in force")
    assert gate_lookup(stale)("web", "canary") == gate_lookup(stale)("web", "x")
    assert gate_lookup(stale)("web", "canary").state == WAITING
