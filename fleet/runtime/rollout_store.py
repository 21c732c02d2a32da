"""Where rollout records and operators' controls live (`fleet.rollout.record`).

- `RedisRolloutStore`: two Redis hashes per fleet (`fleet:<fleet>:rollout:records` and
  `...:rollout:controls`, one JSON field per bundle). The distributed mode's store, and the
  embedded one's when Redis is configured (FLEET_REDIS_URL / `fleet sync --redis`). A
  third, `...:rollout:rolled-back` (field `<revision>/<bundle>`, the reason), is what the
  workers found rolled back in the clusters' history (`fleet.rollout.rebuild`): written by
  each rollback task and each cluster refresh, so after a Redis wipe the first refresh
  of the clusters brings it back before the scheduler dispatches anything there.
- `ClusterRolloutStore`: a ConfigMap `fleet-system/<fleet>.rollout` in every cluster of
  the fleet, one data key per bundle (`record.<bundle>`, `control.<bundle>`), written with
  a JSON merge patch (so a `fleet rollout approve` and a sync writing records never undo
  each other's keys) to every cluster that answers, and read back from all of them: the
  newest copy of each key wins (`updatedAt`). The embedded mode's store without Redis: the
  state lives with the clusters, as the inventories do, not on the machine that ran
  `fleet sync`.
- `MemoryRolloutStore`: in-process (dry runs, tests).

A record is written only when the tracker changed it (`RolloutTracker.dirty`), so a sync
with nothing to do writes nothing. What must survive a lost store (the revisions that
were rolled back) is also in the clusters' revision history (`fleet.engine.history`),
from which both runtimes rebuild it (`fleet.rollout.rebuild`; `read_rolled_back` here).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import redis

from fleet.engine.history import list_rolled_back
from fleet.engine.inventory import INVENTORY_NAMESPACE, ensure_system_namespace
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, KubeError, NotFound, ObjectRef
from fleet.engine.labels import LABEL_MANAGED_BY, MANAGED_BY
from fleet.rollout.rebuild import RolledBack, rolled_back_of
from fleet.rollout.record import BundleRollout, Controls

log = logging.getLogger(__name__)

RECORD, CONTROL = "record.", "control."


class RolloutStore(Protocol):
    def records(self) -> dict[str, BundleRollout]: ...

    def save(self, records: Iterable[BundleRollout]) -> None: ...

    def controls(self) -> dict[str, Controls]: ...

    def update_control(self, bundle: str, change: Callable[[Controls], None]) -> Controls: ...


class MemoryRolloutStore:
    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        self._controls: dict[str, dict[str, Any]] = {}

    def records(self) -> dict[str, BundleRollout]:
        return {k: BundleRollout.from_json(v) for k, v in self._records.items()}

    def save(self, records: Iterable[BundleRollout]) -> None:
        for found in records:
            self._records[found.bundle] = found.to_json()

    def controls(self) -> dict[str, Controls]:
        return {k: Controls.from_json(v) for k, v in self._controls.items()}

    def update_control(self, bundle: str, change: Callable[[Controls], None]) -> Controls:
        control = Controls.from_json(self._controls.get(bundle, {}))
        change(control)
        self._controls[bundle] = control.to_json()
        return control


class RedisRolloutStore:
    def __init__(self, client: redis.Redis[str], fleet: str) -> None:
        self.redis = client
        self.records_key = f"fleet:{fleet}:rollout:records"
        self.controls_key = f"fleet:{fleet}:rollout:controls"
        self.rolled_back_key = f"fleet:{fleet}:rollout:rolled-back"

    def rolled_back(self) -> RolledBack:
        """What the workers found rolled back in the clusters' history (`add_rolled_back`):
        bundle -> rollout revision -> why."""
        found: RolledBack = {}
        raw: dict[str, str] = self.redis.hgetall(self.rolled_back_key)
        for key, why in sorted(raw.items()):
            revision, _, bundle = key.partition("/")
            if revision and bundle:
                found.setdefault(bundle, {})[revision] = why
        return found

    def add_rolled_back(self, found: Mapping[str, Mapping[str, str]]) -> int:
        """Add what a cluster's history says was rolled back; how many were new. One
        field per (revision, bundle), so workers reporting at once never undo each other;
        nothing is written when Redis knows them all (a refresh that finds nothing new)."""
        wanted = {f"{rev}/{bundle}": why for bundle, revs in found.items()
                  for rev, why in revs.items()}  # fmt: skip
        if not wanted:
            return 0
        keys = sorted(wanted)
        known = self.redis.hmget(self.rolled_back_key, keys)
        new: dict[str | bytes, str | bytes | float | int] = {
            k: wanted[k] for k, value in zip(keys, known, strict=True) if value is None
        }
        if new:
            self.redis.hset(self.rolled_back_key, mapping=new)
        return len(new)

    def records(self) -> dict[str, BundleRollout]:
        raw: dict[str, str] = self.redis.hgetall(self.records_key)
        return {k: BundleRollout.from_json(_loads(v)) for k, v in raw.items()}

    def save(self, records: Iterable[BundleRollout]) -> None:
        mapping: dict[str | bytes, str | bytes | float | int] = {
            r.bundle: json.dumps(r.to_json()) for r in records
        }
        if mapping:
            self.redis.hset(self.records_key, mapping=mapping)

    def controls(self) -> dict[str, Controls]:
        raw: dict[str, str] = self.redis.hgetall(self.controls_key)
        return {k: Controls.from_json(_loads(v)) for k, v in raw.items()}

    def update_control(self, bundle: str, change: Callable[[Controls], None]) -> Controls:
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.controls_key)
                    current: str | None = pipe.hget(self.controls_key, bundle)  # type: ignore[assignment]
                    control = Controls.from_json(_loads(current))
                    change(control)
                    pipe.multi()
                    pipe.hset(self.controls_key, bundle, json.dumps(control.to_json()))
                    pipe.execute()
                    return control
                except redis.WatchError:
                    continue


class ClusterRolloutStore:
    """See the module docstring. `conns`: the reachable clusters of the fleet."""

    def __init__(self, conns: Sequence[ClusterConnection], fleet: str) -> None:
        self.conns = list(conns)
        self.name = f"{fleet}.rollout"
        self.ref = ObjectRef("v1", "ConfigMap", INVENTORY_NAMESPACE, self.name)
        self.failures: dict[str, str] = {}  # cluster -> why the last write missed it

    def _read(self) -> dict[str, dict[str, Any]]:
        """Every key, the newest copy across the clusters."""
        newest: dict[str, dict[str, Any]] = {}
        for conn in self.conns:
            try:
                live = conn.get(self.ref)
            except KubeError as err:
                log.warning("%s: rollout records not read: %s", conn.name, err)
                continue
            for key, text in ((live or {}).get("data") or {}).items():
                value = _loads(text)
                if float(value.get("updatedAt") or 0) >= float(
                    newest.get(key, {}).get("updatedAt") or -1
                ):
                    newest[key] = value
        return newest

    def _write(self, data: Mapping[str, dict[str, Any]]) -> None:
        patch = {"data": {k: json.dumps(v, sort_keys=True) for k, v in data.items()}}
        self.failures = {}
        for conn in self.conns:
            try:
                self._patch(conn, patch)
            except KubeError as err:
                self.failures[conn.name] = str(err)
                log.warning("%s: rollout records not written: %s", conn.name, err)

    def _patch(self, conn: ClusterConnection, patch: dict[str, Any]) -> None:
        res = conn.resource("v1", "ConfigMap")
        path = res.object_path(INVENTORY_NAMESPACE, self.name)
        try:
            conn.request("PATCH", path, body=patch, content_type="application/merge-patch+json")
        except NotFound:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self.name,
                    "namespace": INVENTORY_NAMESPACE,
                    "labels": {LABEL_MANAGED_BY: MANAGED_BY},
                },
                "data": patch["data"],
            }
            if conn.get(ObjectRef("v1", "Namespace", None, INVENTORY_NAMESPACE)) is None:
                ensure_system_namespace(conn)
            conn.request("POST", res.collection_path(INVENTORY_NAMESPACE), body=body)

    def records(self) -> dict[str, BundleRollout]:
        return {
            key[len(RECORD) :]: BundleRollout.from_json(value)
            for key, value in self._read().items()
            if key.startswith(RECORD)
        }

    def save(self, records: Iterable[BundleRollout]) -> None:
        now = time.time()
        data = {f"{RECORD}{r.bundle}": {**r.to_json(), "updatedAt": now} for r in records}
        if data:
            self._write(data)

    def controls(self) -> dict[str, Controls]:
        return {
            key[len(CONTROL) :]: Controls.from_json(value)
            for key, value in self._read().items()
            if key.startswith(CONTROL)
        }

    def update_control(self, bundle: str, change: Callable[[Controls], None]) -> Controls:
        control = self.controls().get(bundle, Controls())
        change(control)
        self._write({f"{CONTROL}{bundle}": {**control.to_json(), "updatedAt": time.time()}})
        return control


def read_rolled_back(conn: ClusterConnection, fleet: str) -> RolledBack:
    """What this cluster's history says was rolled back of `fleet`'s rollouts: one
    metadata-only LIST (`fleet.engine.list_rolled_back`). A refused LIST is logged and
    reads as nothing (the inventories are still worth having); `ClusterUnreachable`
    propagates."""
    try:
        return rolled_back_of(list_rolled_back(conn, fleet))
    except ClusterUnreachable:
        raise
    except KubeError as err:
        log.warning("%s: revision history not read, rolled-back revisions unknown: %s",
                    conn.name, err)  # fmt: skip
        return {}


def _loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
