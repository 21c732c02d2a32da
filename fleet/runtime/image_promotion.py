"""The promotion by waves wired to the runtime: a `Planner` for the write-back that reads
the commit's bundles and waves and the rollout store (`fleet.images.promotion` decides).

Both callers build one: the image loop of `fleet serve` (the scheduler's commit in force,
its units and its Redis store) and `fleet images update` (the clone it commits to, loaded
and targeted here, and the store of `fleet rollout status`: Redis, or the clusters'
rollout ConfigMaps). What differs is only where the commit's units and the records come
from (`Context`); what a wave's verdict means for the next step is decided once, here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet.gates.model import GateVerdict
from fleet.images.markers import survey_tree
from fleet.images.model import ImageChoice
from fleet.images.promotion import (
    HELD,
    PASSED,
    WAITING,
    BundleLayout,
    GateLookup,
    PromotionPlan,
    WaveGate,
    plan_promotion,
)
from fleet.images.writeback import Planner
from fleet.rollout.record import BundleRollout, Controls, bundle_revisions
from fleet.rollout.tracker import hold_reason
from fleet.rollout.waves import plan_waves
from fleet.spec.definition import FleetDefinition
from fleet.spec.loader import FleetRepo
from fleet.targeting.units import DeploymentUnit


@dataclass(frozen=True)
class Context:
    """What the step reads about the commit a rewrite builds on: its repository and units
    (for the bundles' directories, waves and revisions), the store's records and
    controls, and `stale`: why the records cannot speak for this commit yet (serve: the
    commit is not the one in force), so every later wave waits."""

    repo: FleetRepo
    units: Sequence[DeploymentUnit]
    records: Mapping[str, BundleRollout]
    controls: Mapping[str, Controls]
    stale: str | None = None


ContextOf = Callable[[Path, str], Context]  # (checkout, its commit) -> the context


def promoted(definition: FleetDefinition, choices: Mapping[str, ImageChoice]) -> dict[str, str]:
    """policy -> its newest tag, for the policies with `promotion: waves` that chose one."""
    return {
        spec.name: choices[spec.name].tag
        for spec in definition.image_policies
        if spec.promotion == "waves" and spec.name in choices
    }


def planner(
    definition: FleetDefinition, choices: Mapping[str, ImageChoice], context: ContextOf
) -> Planner | None:
    """The write-back's planner for `choices`, None when no policy is promoted by waves
    (the write-back then rewrites every marker, as it always did)."""
    tags = promoted(definition, choices)
    if not tags:
        return None
    paths = definition.image_updates.paths if definition.image_updates else ["."]
    wanted = {name: choices[name] for name in tags}

    def plan(checkout: Path, commit: str) -> PromotionPlan:
        sites, _ = survey_tree(checkout, paths, wanted)  # the rewrite reports the warnings
        if not any(site.policy in tags for site in sites):
            return PromotionPlan(frozenset(tags))
        found = context(checkout, commit)
        return plan_promotion(tags, sites, layouts(found.repo, found.units), gate_lookup(found))

    return plan


def layouts(repo: FleetRepo, units: Sequence[DeploymentUnit]) -> list[BundleLayout]:
    """Every bundle of the commit with its directory and its waves (none: no units)."""
    waves = plan_waves(units, repo.definition.rollout)
    out = []
    for bundle in repo.bundles:
        found = waves.get(bundle.name)
        names = tuple(w.name for w in found.waves) if found is not None else ()
        directory = "" if bundle.rel_path in ("", ".") else bundle.rel_path
        out.append(BundleLayout(bundle.name, directory, names))
    return out


def gate_lookup(context: Context) -> GateLookup:
    """(bundle, wave) -> may the group after that wave be rewritten? Only on the record of
    the bundle's revision at this commit (see `fleet.images.promotion`)."""
    revisions = bundle_revisions(context.units)

    def gate(bundle: str, wave: str) -> WaveGate:
        if context.stale is not None:
            return WaveGate(WAITING, context.stale)
        revision = revisions.get(bundle, "")
        found = context.records.get(bundle)
        held = hold_reason(found, context.controls.get(bundle, Controls()), revision)
        if held is not None:
            return WaveGate(HELD, held)
        if found is None or found.revision != revision:
            return WaveGate(WAITING, f"revision {revision} of the bundle is not rolled out yet")
        record = found.waves.get(wave)
        if record is None:
            return WaveGate(WAITING, f"wave {wave} of revision {revision} is not reached yet")
        if record.verdict == GateVerdict.PASSED.value:
            return WaveGate(PASSED, f"wave {wave} passed")
        shown = f": {record.message}" if record.message else ""
        if record.verdict in (GateVerdict.FAILED.value, GateVerdict.INCONCLUSIVE.value):
            return WaveGate(HELD, f"wave {wave} {record.verdict}{shown}")
        return WaveGate(WAITING, f"wave {wave} is {record.verdict}{shown}")

    return gate


def promotion_lines(plan: PromotionPlan | None) -> list[str]:
    """One line per (policy, bundle) for people, and the problems."""
    if plan is None:
        return []
    return [p.line() for p in plan.progress]
