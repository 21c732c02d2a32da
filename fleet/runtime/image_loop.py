"""The image loop of `fleet serve`: scan the image policies, commit the new tags to Git.

A thread of its own beside the scheduler loop (a registry scan or a `git push` can take
seconds and must not hold a tick up). It runs only on the leader (`fleet.runtime.leader`):
two `fleet serve` pushing the same marker change would only race for the push, but two
scanning would double the registries' load. Every `imageUpdates.interval`, and at once
when a registry push webhook named some policies (`ImageTrigger`), it:

1. scans (all policies on the interval; just the named ones on a push, with the last full
   scan's choices for the others), once for the whole fleet (`fleet.images.update.scan`);
2. writes the changed markers back to the branch (`fleet.images.writeback`): a commit with
   the configured author, pushed; nothing changed, nothing pushed;
3. wakes the scheduler's Git poll, so the new commit is picked up like any other.

Policies with `promotion: waves` get only their next wave's markers rewritten
(`fleet.runtime.image_promotion`, reading the scheduler's commit in force and its Redis
rollout records); besides the interval, a pass without a scan runs right after the
scheduler reports a wave verdict (`Scheduler.verdict_listeners`), so the next wave's
commit follows its gates' pass within a tick. A step held by a failed, halted or rolled
back wave is the event `image.promotionHeld`, once per policy, tag and wave.

Events go through the scheduler's stream (written by its next leader tick):
`image.updated` (the commit and its changes) and `image.scanFailed` (once per policy and
reason, not every interval). `/metrics` counts `fleet_image_scans_total{result}`
(`ok`, `failed`, `error`: the loop itself failed, e.g. the push was refused).
Without `imagePolicies` and `imageUpdates` in the definition in force the loop idles.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fleet.errors import FleetError
from fleet.events import changes
from fleet.events.model import Event
from fleet.images import update
from fleet.images.model import ImageChoice
from fleet.images.promotion import REST, PromotionPlan
from fleet.images.scan import ScanResult
from fleet.images.writeback import change_line
from fleet.registry.access import Registries
from fleet.registry.reference import ImageReference
from fleet.runtime import image_promotion
from fleet.runtime.registry_hooks import ImageTrigger
from fleet.runtime.rollout_store import RedisRolloutStore
from fleet.runtime.scheduler import Scheduler
from fleet.spec.definition import FleetDefinition
from fleet.spec.rollout_spec import parse_duration

log = logging.getLogger(__name__)

IDLE_WAIT = 5.0  # seconds between looks at a definition without image automation


class ImageLoop:
    """Scan and write back for one scheduler's fleet (see the module docstring)."""

    def __init__(
        self,
        scheduler: Scheduler,
        trigger: ImageTrigger,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scheduler = scheduler
        self.trigger = trigger
        self.clock = clock
        self.known: dict[str, ImageChoice] = {}  # the last full scan's choices
        self.next_full = 0.0
        self.scans = scheduler.image_scans  # /metrics reads them there
        for result in ("ok", "failed", "error"):
            self.scans.setdefault(result, 0)
        self.last_commit: str | None = None
        self._reported: dict[str, str] = {}  # policy -> the failure last reported
        self._failures: dict[str, str] = {}  # the last pass's
        self._held: set[tuple[str, str, str, str]] = set()  # (policy, tag, bundle, wave)
        self._verdict = threading.Event()  # the scheduler reported a wave verdict
        scheduler.verdict_listeners.append(self._on_verdict)

    def _on_verdict(self) -> None:
        """A wave passed or failed (the scheduler's thread): promote without a scan."""
        self._verdict.set()
        self.trigger.wake.set()

    # what the registry receiver asks -------------------------------------------------

    def policies(self) -> dict[str, str]:
        """name -> image of the policies in force (none before a commit is loaded)."""
        desired = self.scheduler.desired
        if desired is None:
            return {}
        return {p.name: p.image for p in desired.repo.definition.image_policies}

    def normalize(self, reference: ImageReference) -> ImageReference:
        """A reference as its registry provider names it (Docker Hub's `library/`)."""
        desired = self.scheduler.desired
        specs = desired.repo.definition.registries if desired is not None else []
        return (
            Registries(specs, self.scheduler.plugins).provider(reference.host).normalize(reference)
        )

    # the loop ------------------------------------------------------------------------

    def run(self, stopping: threading.Event) -> None:
        """Until stopped: wait for the interval or a push, then `run_once`."""
        while not stopping.is_set():
            wait = self.run_once()
            self.trigger.wake.wait(wait)

    def run_once(self) -> float:
        """One pass when due; returns the seconds to wait before the next look."""
        desired = self.scheduler.desired
        definition = desired.repo.definition if desired is not None else None
        if definition is None or not definition.image_policies or not definition.image_updates:
            self.trigger.take()
            return IDLE_WAIT
        leader = self.scheduler.leader
        if leader is not None and not leader.leader:
            self.trigger.take()  # the leader's own receiver (or its interval) scans
            return IDLE_WAIT
        interval = parse_duration(definition.image_updates.interval)
        now = self.clock()
        pushed = self.trigger.take()
        verdict = self._verdict.is_set()
        self._verdict.clear()
        full = now >= self.next_full or not self.known
        if not full and not pushed and not (verdict and self._promotes(definition)):
            return max(0.1, self.next_full - now)
        only = None if full else pushed
        scan = full or bool(pushed)  # else a promotion pass: the known choices, no scan
        try:
            self._pass(only, scan=scan)
            if scan:
                self.scans["ok" if not self._failures else "failed"] += 1
        except FleetError as err:
            self.scans["error"] += 1
            log.warning("image update failed (%s); next try in %.0fs", err.reason, interval)
        except Exception as err:  # a bug in one pass must not stop the loop
            self.scans["error"] += 1
            log.exception("image update failed (%s); next try in %.0fs", err, interval)
        if full:
            self.next_full = now + interval
        return max(0.1, self.next_full - self.clock())

    def _promotes(self, definition: FleetDefinition) -> bool:
        return any(p.promotion == "waves" for p in definition.image_policies)

    def _pass(self, only: set[str] | None, *, scan: bool = True) -> None:
        """Scan (`only` those; without `scan`, nothing: the last full scan's choices are
        written again, for the promotion's next step) and write back."""
        scheduler = self.scheduler
        assert scheduler.desired is not None
        definition = scheduler.desired.repo.definition
        fleet = scheduler.desired.fleet_name
        if scan:
            result = update.scan(
                definition, scheduler.plugins, only=only, settings=scheduler.settings
            )
            self._failures = dict(result.errors)
        else:
            result, only = ScanResult(), set()
        events: list[Event] = []
        for policy, reason in result.errors.items():
            if self._reported.get(policy) != reason:
                log.warning("%s", reason)
                events.append(changes.image_scan_failed(fleet, policy, reason))
                self._reported[policy] = reason
        for policy in result.choices:
            self._reported.pop(policy, None)
        # a push scans some policies: the others keep the last full scan's choices; a full
        # scan uses its own only, so a policy failing now leaves its markers as they are
        known = self.known if only is not None else {}
        self.known = {**self.known, **result.choices}
        branch = update.update_branch(definition, scheduler.source.ref)
        chosen = {**known, **result.choices}
        planner = image_promotion.planner(definition, chosen, self._context)
        done = update.write_choices(
            definition, result, scheduler.source.url, branch, known=known,
            settings=scheduler.settings, planner=planner,
        )  # fmt: skip
        for warning in done.warnings:
            log.warning("image update: %s", warning)
        events += self._held_events(fleet, done.promotion)
        if done.commit is not None:
            lines = [change_line(c) for c in done.changes]
            log.info("image update: commit %s on %s: %s", done.commit[:12], done.branch,
                     "; ".join(lines[:5]))  # fmt: skip
            events.append(changes.image_updated(fleet, done.commit, done.branch, lines))
            self.last_commit = done.commit
            scheduler.poller.next_poll_at = 0.0  # the Git poll picks the commit up now
        if events:
            scheduler.note_events(events)
        scheduler.wake.set()

    def _context(self, checkout: Path, commit: str) -> image_promotion.Context:
        """The promotion's view of `commit`: the scheduler's commit in force (its units are
        the ones the records' revisions were computed from) and its Redis records. Another
        commit (pushed since, not loaded yet) gets its first groups only: `stale`."""
        desired, revision = self.scheduler.desired, self.scheduler.revision
        assert desired is not None and revision is not None
        store = RedisRolloutStore(self.scheduler.redis, desired.fleet_name)
        stale = None
        if commit != revision.sha:
            stale = (f"commit {commit[:12]} is not in force yet (fleet serve runs "
                     f"{revision.short_sha})")  # fmt: skip
        return image_promotion.Context(
            desired.repo, desired.units, store.records(), store.controls(), stale
        )

    def _held_events(self, fleet: str, plan: PromotionPlan | None) -> list[Event]:
        """`image.promotionHeld` for each hold not reported yet (once per policy, tag,
        bundle and wave while it lasts: until a new tag or an operator moves it on)."""
        if plan is None:
            return []
        out = []
        for step in plan.progress:
            (log.info if step in plan.steps else log.debug)("image promotion: %s", step.line())
        now_held = {(h.policy, h.tag, h.bundle, h.group or "") for h in plan.held}
        reported, self._held = self._held, now_held  # a hold that ends and comes back: again
        for held in plan.held:
            if (held.policy, held.tag, held.bundle, held.group or "") in reported:
                continue
            log.warning("image promotion: %s", held.line())
            wave = held.group if held.group != REST else "the markers without $wave"
            out.append(changes.image_promotion_held(
                fleet, held.policy, held.tag, held.bundle, wave or "", held.reason
            ))  # fmt: skip
        return out
