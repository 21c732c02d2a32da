"""Progressive delivery in `fleet serve`: the scheduler's tracker, kept in Redis.

Each tick of the leader (`fleet.runtime.scheduler`) builds a `RolloutTracker` from the
fleet's rollout records and controls in Redis (`RedisRolloutStore`) and what the workers
found rolled back in the clusters' history (`RedisRolloutStore.rolled_back`: after a Redis
wipe, the refresh of each cluster brings it back before anything is dispatched there, so
a rolled-back revision is never rolled out again: `fleet.rollout.rebuild`), plans with
it, then:

- sends a `fleet.rollback_unit` task for each cluster of a wave that failed with
  `autoRollback` and runs the failed revision (the worker puts the previous revision's
  exact manifests back from the cluster's history, under the unit's lock, and records
  what the cluster then runs); the revision is rejected at once, so no later wave and no
  retry gets it while the tasks run;
- sends a read-only health check (`fleet.check_drift` with `health`) every
  `VERIFY_HEALTH_EVERY` seconds to each cluster of a wave being verified, so a unit that
  breaks during a bake fails the wave;
- marks the bundles whose every wave passed `succeeded`, writes the records it changed,
  and returns the verdicts as events for the fleet's stream.

Nothing is remembered in the process: a restarted scheduler (or a new leader) goes on
from Redis, in the middle of a bake or a metric analysis; after a Redis wipe, a wave
being verified is verified again from the start, and what was rolled back stays held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis

from fleet.desired import DesiredState
from fleet.events import changes
from fleet.events.model import Event
from fleet.rollout.tracker import RollbackDue, RolloutTracker, settings_source
from fleet.rollout.waves import BundleWaves, plan_waves
from fleet.runtime.rollout_store import RedisRolloutStore
from fleet.states import ActualUnit
from fleet.targeting.units import UnitKey

VERIFY_HEALTH_EVERY = 10.0

SendRollback = Callable[[RollbackDue, str], bool]  # (due, cluster) -> sent
SendHealth = Callable[[str, str, str], None]  # (bundle, cluster, deployment id)


@dataclass
class ServeRollout:
    client: redis.Redis[str]
    env: Mapping[str, str]
    _layout: tuple[DesiredState, dict[str, BundleWaves]] | None = None

    def tracker(self, desired: DesiredState, commit: str, now: float) -> RolloutTracker:
        """This tick's tracker, from what Redis remembers (the waves of a commit are
        worked out once)."""
        store = RedisRolloutStore(self.client, desired.fleet_name)
        if self._layout is None or self._layout[0] is not desired:
            self._layout = (desired, plan_waves(desired.units, desired.repo.definition.rollout))
        layout = self._layout[1]
        found = RolloutTracker(
            desired.fleet_name,
            commit,
            desired.units,
            settings_source(layout, desired.gates),
            records=store.records(),
            controls=store.controls(),
            env=self.env,
            layout=layout,
            history=store.rolled_back(),
        )
        found.begin(now)
        return found

    def after_plan(
        self,
        tracker: RolloutTracker,
        desired: DesiredState,
        cached: Mapping[UnitKey, ActualUnit],
        send_rollback: SendRollback,
        send_health: SendHealth,
        checked: Mapping[str, float],
        now: float,
    ) -> list[Event]:
        """Rollbacks, health checks of verifying waves, success, saving (module doc)."""
        while tracker.rollbacks:
            due = tracker.rollbacks.pop(0)
            sent = [c for c in due.clusters if self._runs_failed(desired, cached, due, c)
                    and send_rollback(due, c)]  # fmt: skip
            tracker.rolled_back(due, sent, {})
        for bundle, wave in tracker.verifying():
            for cluster in tracker.records[bundle].waves[wave].clusters:
                unit = desired.by_key.get((bundle, cluster))
                if unit is not None and now - checked.get(f"{bundle}/{cluster}", 0.0) > (
                    VERIFY_HEALTH_EVERY
                ):
                    send_health(bundle, cluster, unit.deployment_id)

        tracker.settle_with(cached, now)
        self.save(tracker, desired.fleet_name)
        return [
            changes.rollout_event(
                tracker.fleet,
                tracker.commit,
                e.kind,
                e.bundle,
                e.wave,
                e.message,
                e.revision,
                e.clusters,
            )
            for e in tracker.drain_events()
        ]

    def save(self, tracker: RolloutTracker, fleet: str) -> None:
        if tracker.dirty:
            store = RedisRolloutStore(self.client, fleet)
            store.save(tracker.records[b] for b in sorted(tracker.dirty) if b in tracker.records)
            tracker.dirty.clear()

    @staticmethod
    def _runs_failed(
        desired: DesiredState, cached: Mapping[UnitKey, ActualUnit], due: RollbackDue, cluster: str
    ) -> bool:
        unit = desired.by_key.get((due.bundle, cluster))
        rec = cached.get((due.bundle, cluster))
        return unit is not None and rec is not None and rec.deployment_id == unit.deployment_id
