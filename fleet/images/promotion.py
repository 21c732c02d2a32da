"""Promoting a new tag wave by wave: which markers of a `promotion: waves` policy to
rewrite now (pure: no Git, no store).

Git is the state, so this is level-triggered and keeps nothing between runs: every pass
looks at the markers as they are on the branch and at the rollout of each bundle as the
rollout store has it, and takes the next step, if one is due. For one policy with newest
tag T and one bundle holding its markers (a marker belongs to the bundle whose directory
holds its file), the markers form *groups*: one per wave named by a `"$wave"`, in the
bundle's wave order, then the *rest* group (markers without `$wave`, last). The step is
the first group whose markers are not all at T:

- it is the first group with markers: rewrite it now (a newer tag T2 starts here again);
- else the group before it (all at T already) is wave P: rewrite it only once P passed
  its gates in the rollout of the bundle's revision at this very commit (`WaveGate`,
  asked through `GateLookup`); while P is verified, wait; when P failed, halted, was
  rolled back or the revision was rejected, hold (and report it: nothing moves on by
  itself, a new tag or an operator does).

Why the revision must match: the record of a rollout is per revision (what the commit
gives the bundle's units). Right after the canary markers were committed the store still
holds the previous revision's record, whose canary wave "passed" with the old tag;
reading it would promote prod before canary ran T at all.

A marker naming a wave its bundle does not have, or a file in no bundle's directory,
is a problem (file:line) and is left alone: guessing its place could skip a wave.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from fleet.images.model import BEHIND, BROKEN, CURRENT, MarkerSite

PASSED, WAITING, HELD = "passed", "waiting", "held"  # what a wave's rollout says
STEP, DONE = "step", "done"  # and what a (policy, bundle) does now
REST = "(no $wave)"  # the group of markers without `$wave`, promoted last (no wave name)


@dataclass(frozen=True)
class WaveGate:
    """Wave P of a bundle at the checked-out commit's revision: `passed`, `waiting`
    (not rolled out or verified yet) or `held` (failed, halted, rolled back, rejected,
    paused); `reason` says which, for people."""

    state: str
    reason: str = ""


GateLookup = Callable[[str, str], WaveGate]  # (bundle, wave) -> its gate


@dataclass(frozen=True)
class BundleLayout:
    """A bundle of the checked-out commit: its directory (repository-relative, "" the
    root) and its waves in rollout order (`fleet.rollout.waves`)."""

    name: str
    directory: str
    waves: tuple[str, ...]


@dataclass(frozen=True)
class Progress:
    """Where one policy's tag is in one bundle: `state` is `step` (rewritten now),
    `waiting`, `held` or `done`; `group` the group rewritten now or next (a wave name or
    `(no $wave)`), `after` the wave it waits for (None: nothing)."""

    policy: str
    tag: str
    bundle: str
    state: str
    group: str | None = None
    after: str | None = None
    reason: str = ""
    sites: tuple[MarkerSite, ...] = ()  # rewritten now (`step` only)

    def line(self) -> str:
        """One line for `fleet images update` and the logs."""
        where = f"{self.policy} {self.tag} in bundle {self.bundle}"
        target = _group_name(self.group)
        if self.state == STEP:
            after = f" (wave {self.after} passed)" if self.after else ""
            return f"{where}: -> {target}{after}"
        if self.state == DONE:
            return f"{where}: every wave has it"
        return f"{where}: {self.state} before {target}: {self.reason}"

    def summary(self) -> str:
        """The commit message's line for a step: "web 1.3.0 -> wave prod-eu (bundle x)"."""
        return f"{self.policy} {self.tag} -> {_group_name(self.group)} (bundle {self.bundle})"


@dataclass
class PromotionPlan:
    """One pass's answer: the progress of every (promoted policy, bundle), the problems
    (file:line), and `select`, the marker filter `fleet.images.markers.rewrite_tree`
    takes: every marker of a policy not promoted by waves, and the steps' markers."""

    promoted: frozenset[str] = frozenset()
    progress: list[Progress] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._chosen = {(s.path, s.line) for p in self.progress for s in p.sites}

    def select(self, path: str, line: int, policy: str) -> bool:
        return policy not in self.promoted or (path, line) in self._chosen

    @property
    def steps(self) -> list[Progress]:
        return [p for p in self.progress if p.state == STEP]

    @property
    def held(self) -> list[Progress]:
        return [p for p in self.progress if p.state == HELD]


def plan_promotion(
    tags: Mapping[str, str],
    sites: Sequence[MarkerSite],
    bundles: Sequence[BundleLayout],
    gate: GateLookup,
) -> PromotionPlan:
    """The steps due now for the policies of `tags` (policy -> its newest tag), from
    their markers (`sites`, as `survey_tree` found them at the commit), the commit's
    bundles, and the rollout of each (see the module docstring)."""
    problems: list[str] = []
    by_bundle: dict[tuple[str, str], list[MarkerSite]] = {}
    layouts = {b.name: b for b in bundles}
    for site in sites:
        if site.policy not in tags:
            continue
        owner = bundle_of(site.path, bundles)
        if owner is None:
            problems.append(
                f"{site.path}:{site.line}: a marker of image policy '{site.policy}' "
                "(promotion: waves) outside every bundle's directory has no waves; left alone"
            )
        elif site.wave is not None and site.wave not in owner.waves:
            known = ", ".join(owner.waves) or "none"
            problems.append(
                f"{site.path}:{site.line}: the marker names wave '{site.wave}', which bundle "
                f"{owner.name} does not have (its waves: {known}); left alone"
            )
        else:
            by_bundle.setdefault((site.policy, owner.name), []).append(site)
    progress = [
        _progress(policy, tags[policy], layouts[bundle], found, gate)
        for (policy, bundle), found in sorted(by_bundle.items())
    ]
    return PromotionPlan(frozenset(tags), progress, problems)


def bundle_of(path: str, bundles: Sequence[BundleLayout]) -> BundleLayout | None:
    """The bundle whose directory holds `path` (the deepest, for nested bundles)."""
    parts = PurePosixPath(path).parts
    best: BundleLayout | None = None
    depth = -1
    for layout in bundles:
        own = PurePosixPath(layout.directory).parts if layout.directory not in ("", ".") else ()
        if parts[: len(own)] == own and len(own) < len(parts) and len(own) > depth:
            best, depth = layout, len(own)
    return best


def _progress(
    policy: str, tag: str, layout: BundleLayout, sites: Sequence[MarkerSite], gate: GateLookup
) -> Progress:
    groups = _groups(layout, sites)
    for index, (name, members) in enumerate(groups):
        if all(s.state == CURRENT for s in members):
            continue
        after = groups[index - 1][0] if index else None
        behind = tuple(s for s in members if s.state == BEHIND)
        if not behind:
            broken = ", ".join(f"{s.path}:{s.line}" for s in members if s.state == BROKEN)
            return Progress(policy, tag, layout.name, HELD, name, after,
                            f"markers that cannot be rewritten: {broken}")  # fmt: skip
        if after is None:
            return Progress(policy, tag, layout.name, STEP, name, None, sites=behind)
        said = gate(layout.name, after)
        if said.state == PASSED:
            return Progress(policy, tag, layout.name, STEP, name, after, said.reason, behind)
        return Progress(policy, tag, layout.name, said.state, name, after, said.reason)
    return Progress(policy, tag, layout.name, DONE)


def _groups(
    layout: BundleLayout, sites: Sequence[MarkerSite]
) -> list[tuple[str, list[MarkerSite]]]:
    """(wave or `(no $wave)`, its markers) in the bundle's wave order, the rest group last."""
    grouped: dict[str | None, list[MarkerSite]] = {}
    for site in sites:
        grouped.setdefault(site.wave, []).append(site)
    order = [w for w in layout.waves if w in grouped]
    out: list[tuple[str, list[MarkerSite]]] = [(w, grouped[w]) for w in order]
    if None in grouped:
        out.append((REST, grouped[None]))
    return out


def _group_name(group: str | None) -> str:
    if group == REST:
        return "the markers without $wave"
    return f"wave {group}"
