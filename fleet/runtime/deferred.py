"""Bundles `fleet serve` defers because a registry is down, and when it asks again.

A commit whose bundle needs a registry that does not answer now (pinned images on it, an
`oci://` chart or a `helm.repo` index there) is not a broken commit, nor one to load again
as a whole: `fleet.desired.DesiredState.deferred` names those bundles and the scheduler
puts the commit in force for the others. `DeferredBundles` is the scheduler's memory of
that: each deferred bundle is reported once per commit (a warning and one `unit.failed`
per unit, so notifications say it once, not every tick), and just those bundles are
resolved again after `BACKOFF` (the other bundles' chart and image pins handed back as
presets, so their deployment ids do not move while they roll out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet.backoff import Backoff
from fleet.desired import DesiredState
from fleet.events import changes
from fleet.events.model import Event
from fleet.plugin.manager import FleetPlugins

log = logging.getLogger(__name__)
BACKOFF = Backoff(5.0, cap=300.0)  # between loads of a commit's deferred bundles


@dataclass
class DeferredBundles:
    """The deferred bundles of the commit in force: reported once, retried with backoff."""

    clock: Callable[[], float]
    tries: int = 0  # loads of the deferred bundles of this commit so far
    retry_at: float = 0.0  # when they are resolved again (clock seconds)
    reported: set[str] = field(default_factory=set)  # bundles whose unit.failed went out

    def begin(self, desired: DesiredState) -> list[Event]:
        """A new commit is in force: forget the last one's, report this one's."""
        self.tries, self.reported = 0, set()
        return self.report(desired)

    def due(self, desired: DesiredState | None) -> bool:
        return desired is not None and bool(desired.deferred) and self.clock() >= self.retry_at

    def report(self, desired: DesiredState) -> list[Event]:
        """The events of the bundles deferred and not reported yet; sets the next retry."""
        if not desired.deferred:
            return []
        delay = BACKOFF.delay(self.tries)
        self.retry_at = self.clock() + delay
        found = []
        for bundle, err in sorted(desired.deferred.items()):
            if bundle in self.reported:
                continue
            self.reported.add(bundle)
            log.warning("bundle %s deferred at %s: %s; the other bundles roll out, it is "
                        "resolved again in %.0fs", bundle, desired.commit[:12], err.reason,
                        delay)  # fmt: skip
            found += [
                changes.failure_event(desired.fleet_name, bundle, unit.cluster, desired.commit,
                                      unit.deployment_id, f"{err.reason}; will retry")
                for unit in desired.units
                if unit.bundle == bundle
            ]  # fmt: skip
        return found

    def retry(self, desired: DesiredState, plugins: FleetPlugins) -> DesiredState:
        """The commit targeted again with every pin it has (only the deferred bundles are
        asked of their registries), rendered; FleetError as `render_all` raises it (then
        the next retry is after the next backoff)."""
        self.tries += 1
        self.retry_at = self.clock() + BACKOFF.delay(self.tries)
        again = DesiredState.target(
            desired.repo,
            desired.commit,
            plugins,
            cache=desired.cache,
            pins=desired.pins.all() if desired.pins is not None else (),
            images=desired.images.all() if desired.images is not None else {},
        )
        again.render_all()
        resolved = sorted(set(desired.deferred) - set(again.deferred))
        if resolved:
            log.info("bundles %s of %s resolved: rolling out", ", ".join(resolved),
                     desired.commit[:12])  # fmt: skip
        return again

    @staticmethod
    def reasons(desired: DesiredState) -> dict[str, str]:
        """The planner's `deferred`: why each deferred bundle waits (the same words every
        tick: a reason that changed would be news)."""
        return {bundle: f"{why}; will retry" for bundle, why in desired.deferred_reasons().items()}
