"""Progressive delivery in `fleet sync`: waves verified in-process, rollbacks, the wait.

`fleet sync` plans and dispatches as before (`fleet.runtime.embedded`); with this driver
the planner's verifier is a `RolloutTracker` (`fleet.rollout.tracker`), begun from the
store's records and what the clusters' history says was rolled back (one LIST per
cluster: `fleet.rollout.rebuild`, so deleted records never let a rolled-back revision
out again), and each time nothing is in flight the run:

1. rolls back the waves that failed with `autoRollback` (`fleet.engine.rollback` on
   each of the wave's clusters that runs the failed revision: the previous good
   revision's exact manifests from the cluster's history, under the unit's lock);
2. marks the bundles whose every wave passed `succeeded`, and writes the records it
   changed to the store (`fleet.runtime.rollout_store`: Redis when configured, else the
   clusters' `fleet-system/<fleet>.rollout` ConfigMaps);
3. if a time-based check is pending (a bake time, a gate's next measurement), looks at
   the health of the waves being verified (`fleet.engine.inspect`: read-only) and sleeps
   until the next check is due (at most `HEALTH_EVERY` seconds, so a unit that breaks
   during a bake is seen), then plans again. A gate that waits for a person (an
   approval) does not keep the run waiting: it ends, and the next `fleet sync` after
   `fleet rollout approve` goes on from the record.

Verdicts become events (`wave.passed`, `wave.failed`, `rollout.rolledBack`, ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from fleet import engine
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, KubeError
from fleet.errors import FleetError
from fleet.events import changes
from fleet.rollout import record as rec
from fleet.rollout.planner import Plan
from fleet.rollout.rebuild import RolledBack, merge
from fleet.rollout.tracker import RollbackDue, RolloutTracker, settings_source
from fleet.rollout.waves import plan_waves
from fleet.runtime.locks import LockBusy
from fleet.runtime.rollout_store import (
    ClusterRolloutStore,
    RedisRolloutStore,
    RolloutStore,
    read_rolled_back,
)
from fleet.states import ActualUnit, BundleState
from fleet.status.model import FleetStatus

if TYPE_CHECKING:
    from fleet.runtime.embedded import SyncRun

OwnerCheck = Callable[[], bool]

HEALTH_EVERY = 5.0  # seconds between health looks during a bake


class EmbeddedRollout:
    """The tracker of one `fleet sync` run, and what the run does for it."""

    def __init__(
        self, run: SyncRun, store: RolloutStore, env: Mapping[str, str], *, wait: bool = True
    ) -> None:
        self.run = run
        self.store = store
        desired = run.desired
        layout = plan_waves(desired.units, desired.repo.definition.rollout)
        self.tracker = RolloutTracker(
            desired.fleet_name,
            desired.commit,
            desired.units,
            settings_source(layout, desired.gates),
            records=store.records(),
            controls=store.controls(),
            env=env,
            layout=layout,
            health_failures=wait,
            history=self._read_history(),
        )
        self.started = time.time()
        self.tracker.begin(self.started)
        self.sleep: Callable[[float], None] = time.sleep

    @classmethod
    def open(
        cls, run: SyncRun, env: Mapping[str, str], redis_url: str | None, *, wait: bool = True
    ) -> EmbeddedRollout:
        store: RolloutStore
        if redis_url:
            from fleet.runtime.state_cache import connect_redis

            store = RedisRolloutStore(connect_redis(redis_url), run.desired.fleet_name)
        else:
            conns = [link.conn for link in run.links.values()
                     if link.down is None and link.conn is not None]  # fmt: skip
            store = ClusterRolloutStore(conns, run.desired.fleet_name)
        return cls(run, store, env, wait=wait)

    # ------------------------------------------------------------------ each idle moment

    def idle(self, current: Plan) -> bool:
        """Nothing is in flight: roll back, settle, save. True: plan again (a rollback
        changed what clusters run, or a pending check was waited for)."""
        rolled = self._rollbacks()
        self.tracker.settle_with(self.run.actual, time.time())
        self.flush()
        if rolled:
            return True
        due = self.tracker.next_check(time.time())
        if due is None:
            return False
        self._look_at_health()
        self.sleep(max(0.05, min(due - time.time(), HEALTH_EVERY)))
        return True

    def flush(self) -> None:
        """Write the changed records and hand the verdicts to the run's events."""
        tracker = self.tracker
        if tracker.dirty:
            self.store.save([tracker.records[b] for b in sorted(tracker.dirty)
                             if b in tracker.records])  # fmt: skip
            tracker.dirty.clear()
        events = self.run.events
        for found in tracker.drain_events():
            line = f"rollout {found.bundle}: {found.kind}"
            self.run.say(f"{line}{' wave ' + found.wave if found.wave else ''}: {found.message}")
            if events is not None:
                events.emit([changes.rollout_event(
                    tracker.fleet, tracker.commit, found.kind, found.bundle, found.wave,
                    found.message, found.revision, found.clusters)])  # fmt: skip

    def only_waiting(self, status: FleetStatus) -> bool:
        """Nothing failed: every unit not at its revision waits (an approval, a pause, a
        window, a later wave) and no rollout of this run failed or was rolled back."""
        if any(
            r.outcome in (rec.FAILED, rec.HALTED, rec.ROLLED_BACK)
            and r.finished_at
            and r.finished_at >= self.started
            for r in self.tracker.records.values()
        ):
            return False  # fmt: skip
        bad = (BundleState.ERR_APPLIED, BundleState.NOT_READY)
        return not any(u.state in bad for u in status.units)

    # ------------------------------------------------------------------ internals

    def _read_history(self) -> RolledBack:
        """What the reachable clusters' history says was rolled back (one LIST each), so a
        lost store (the `<fleet>.rollout` ConfigMaps deleted, Redis wiped) never lets a
        rolled-back revision out again."""
        fleet = self.run.desired.fleet_name
        answers = self.run.clusters.each(
            lambda link: link.call("read history", lambda conn: read_rolled_back(conn, fleet))
        )
        return merge(*(found for _, found in sorted(answers.items()) if found))

    def _rollbacks(self) -> bool:
        tracker, done_any = self.tracker, False
        while tracker.rollbacks:
            due = tracker.rollbacks.pop(0)
            done, failed = [], {}
            for cluster in due.clusters:
                outcome = self._rollback(due, cluster)
                if outcome is None:
                    done.append(cluster)
                else:
                    failed[cluster] = outcome
            tracker.rolled_back(due, done, failed)
            done_any = done_any or bool(done)
        return done_any

    def _rollback(self, due: RollbackDue, cluster: str) -> str | None:
        """Put the previous revision back on one cluster; None when done, else why not."""
        run = self.run
        link = run.links[cluster]
        unit = run.desired.by_key.get((due.bundle, cluster))
        record = run.actual.get((due.bundle, cluster))
        if unit is None or record is None or record.deployment_id != unit.deployment_id:
            return None  # never got the failed revision: nothing to put back
        if link.down is not None:
            return f"unreachable: {link.down}"
        run.say(f"{cluster}/{due.bundle}: rolling back ({due.reason})")

        def work(conn: ClusterConnection, still_owner: OwnerCheck | None) -> engine.UnitResult:
            return engine.rollback(
                conn,
                due.bundle,
                run.desired.fleet_name,
                reason=f"wave {due.wave}: {due.reason}",
                details={"revision": due.revision, "wave": due.wave},
                claims=lambda: run.desired.claims(cluster),
                still_owner=still_owner,
            )

        try:
            result = link.call(f"rollback {due.bundle}", run.locked(due.bundle, False, work))
        except LockBusy as busy:
            return f"locked by {busy.holder}"
        except (ClusterUnreachable, KubeError, FleetError) as err:
            return str(err)
        run.actual[(due.bundle, cluster)] = ActualUnit(
            result.deployment_id, result.state, result.commit, result.message,
            unit.options.keep_resources, result.inventory_objects)  # fmt: skip
        result.message = f"rolled back ({due.reason}): {result.message}"
        run.results[(due.bundle, cluster)] = result  # the report shows what runs now
        run.say(f"{cluster}/{due.bundle}: rolled back to {result.deployment_id[:12]}: "
                f"{result.state.value}")  # fmt: skip
        if result.state is BundleState.ERR_APPLIED:
            return result.message
        return None

    def _look_at_health(self) -> None:
        """Read-only health of the units of every wave being verified (a unit that
        breaks during a bake fails the wave at the next plan)."""
        run = self.run
        for bundle, wave in self.tracker.verifying():
            found = self.tracker.records[bundle].waves[wave]
            for cluster in found.clusters:
                unit = run.desired.by_key.get((bundle, cluster))
                link = run.links[cluster]
                if unit is None or link.down is not None:
                    continue
                options, _ = run.deploy_options(unit)
                look = partial(engine.inspect, bundle=bundle, deployment_id=unit.deployment_id,
                               manifests=run.desired.manifests(unit), options=options,
                               fleet=run.desired.fleet_name)  # fmt: skip
                try:
                    seen = link.call(f"health {bundle}", look)
                except (ClusterUnreachable, KubeError):
                    continue
                old = run.actual.get(unit.key)
                if old is not None and old.deployment_id == unit.deployment_id:
                    state = seen.state if seen.state is not BundleState.MODIFIED else old.state
                    run.actual[unit.key] = ActualUnit(
                        old.deployment_id, state, old.commit, seen.message,
                        old.keep_resources, old.objects)  # fmt: skip
