"""One image update: scan the policies, then write the changed markers back to Git.

The shared core of `fleet images update` (one shot, for cron and embedded users) and of the
image loop of `fleet serve` (`fleet.runtime.image_loop`). It does nothing a caller could
not do with `scan_policies` and `write_back`; it exists so both callers pick the branch,
the author and the choices the same way:

- the branch is `imageUpdates.branch`, else the branch the fleet follows (`default_branch`);
- a scan of some policies only (a registry push for `web`) writes back with the choices of
  the last full scan for the others (`known`), so their markers are not reported as naming
  an undefined policy and are left as they are;
- policies that failed keep their markers: a registry that is down changes nothing.

`dry_run` rewrites a copy of a local checkout instead and returns the changes it would
commit, without cloning or pushing. A `planner` (`fleet.images.writeback.Planner`) is how
the policies with `promotion: waves` get only their next wave's markers rewritten; the
caller builds it, since the rollout records it reads are the runtime's.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleet import config
from fleet.errors import UserError
from fleet.images.markers import rewrite_tree
from fleet.images.model import ImageChoice, MarkerChange
from fleet.images.promotion import PromotionPlan
from fleet.images.scan import ScanResult, scan_policies
from fleet.images.writeback import Planner, WriteBackResult, write_back
from fleet.registry.access import ProviderSource, Registries
from fleet.spec.definition import FleetDefinition


@dataclass(frozen=True)
class UpdateResult:
    """A scan and what it changed. `commit` None: nothing was pushed."""

    scan: ScanResult
    changes: tuple[MarkerChange, ...] = ()
    commit: str | None = None
    branch: str = ""
    warnings: tuple[str, ...] = ()
    choices: dict[str, ImageChoice] = field(default_factory=dict)  # scanned + known
    promotion: PromotionPlan | None = None  # what the planner decided, when there was one


def scan(
    definition: FleetDefinition,
    providers: ProviderSource,
    *,
    only: Collection[str] | None = None,
    settings: config.Settings | None = None,
) -> ScanResult:
    """`scan_policies` with this process's registries and credentials (closed after)."""
    registries = Registries(definition.registries, providers, settings=settings)
    try:
        return scan_policies(definition, registries, only=only)
    finally:
        registries.close()


def update_branch(definition: FleetDefinition, default_branch: str | None) -> str:
    """The branch the markers are updated on; a user error when none can be named."""
    updates = definition.image_updates
    branch = (updates.branch if updates else None) or default_branch
    if not branch or branch == "HEAD":
        raise UserError(
            "imageUpdates.branch is not set and the fleet follows no named branch: "
            "set imageUpdates.branch (the branch image updates are committed to)"
        )
    return branch.removeprefix("refs/heads/")


def write_choices(
    definition: FleetDefinition,
    result: ScanResult,
    url: str,
    branch: str,
    *,
    known: Mapping[str, ImageChoice] | None = None,
    settings: config.Settings | None = None,
    planner: Planner | None = None,
) -> UpdateResult:
    """Commit the markers the choices change on `branch` of `url` (nothing: no commit)."""
    updates = definition.image_updates
    if updates is None:
        raise UserError("the definition has no imageUpdates: nothing says how to commit")
    choices = {**(known or {}), **result.choices}
    done: WriteBackResult = write_back(
        url,
        choices,
        branch=branch,
        author_name=updates.author.name,
        author_email=updates.author.email,
        push_branch=updates.push_branch,
        paths=updates.paths,
        message_template=updates.message_template,
        settings=settings,
        planner=planner,
    )
    return UpdateResult(result, done.changes, done.commit, done.branch, done.warnings, choices,
                        done.promotion)  # fmt: skip


def dry_run(
    definition: FleetDefinition,
    result: ScanResult,
    checkout: Path,
    *,
    known: Mapping[str, ImageChoice] | None = None,
    planner: Planner | None = None,
    commit: str = "",
) -> UpdateResult:
    """The marker changes the choices would make in `checkout` (a copy is rewritten;
    `planner` is asked about the copy, as of `commit`)."""
    updates = definition.image_updates
    paths = updates.paths if updates else ["."]
    choices = {**(known or {}), **result.choices}
    tmp = Path(tempfile.mkdtemp(prefix="fleet-images-dry-"))
    try:
        copy = tmp / "repo"
        shutil.copytree(checkout, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        plan = planner(copy, commit) if planner is not None else None
        select = plan.select if plan is not None else None
        changes, warnings = rewrite_tree(copy, paths, choices, select)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    notes = tuple(plan.problems) if plan is not None else ()
    kept = _without_failed((*notes, *warnings), result)
    return UpdateResult(result, tuple(changes), None, "", kept, choices, plan)


def _without_failed(warnings: tuple[str, ...], result: ScanResult) -> tuple[str, ...]:
    """The marker warnings, less "names the image policy 'X', which is not defined" for a
    policy that is defined but failed this scan (its error is reported already)."""
    failed = tuple(f"image policy '{name}'" for name in result.errors)
    return tuple(w for w in warnings if not any(name in w for name in failed))
