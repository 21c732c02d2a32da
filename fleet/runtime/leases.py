"""A (bundle, cluster) lock kept in the cluster itself: a `coordination.k8s.io/v1` Lease.

`fleet sync` without Redis cannot share the workers' Redis lock, but two CI jobs (or a
laptop and a CI job) syncing the same fleet must still never interleave their applies,
prunes and inventory writes. The one thing both can reach is the cluster, so the lock is
a Lease there, in `fleet-system`, one per (fleet, bundle): `fleet-lock-<fleet>.<bundle>`
(shortened with a hash when long), the way client-go's leader election uses Leases:

- `spec.holderIdentity` says who holds it (`fleet sync on <host> pid <n>`, plus a token
  per run), `spec.renewTime` + `spec.leaseDurationSeconds` when it expires;
- acquire = create it, or take over one whose holder let it expire (a killed CI job);
  every write sends the resourceVersion it read, so of two runs racing for it exactly
  one wins (the other gets 409 and reports the unit "locked by <holder>");
- a heartbeat thread renews it every third of its duration while the sync runs, on its
  own connection (`ClusterConnection.sibling`: coordination requests are not counted as
  writes of the sync, and do not share the sync's counters);
- release deletes it with a resourceVersion precondition, so a run never deletes a Lease
  that another run has taken over since.

Expiry compares the Lease's renewTime with this machine's clock, as kubectl and client-go
tools do; clocks more than a few seconds apart shorten or lengthen the wait by as much.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from fleet.engine.identity import short_name
from fleet.engine.inventory import INVENTORY_NAMESPACE, ensure_system_namespace
from fleet.engine.kube import ClusterConnection, Conflict, KubeError, NotFound
from fleet.engine.labels import LABEL_MANAGED_BY, MANAGED_BY
from fleet.runtime.locks import LockBusy, default_holder, holder_of

log = logging.getLogger(__name__)

LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{INVENTORY_NAMESPACE}/leases"
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def lease_name(fleet: str, bundle: str) -> str:
    return f"fleet-lock-{short_name(f'{fleet}.{bundle}', 52)}"


def _now() -> datetime:
    return datetime.now(UTC)


def _parse(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class ClusterLease:
    """The Lease of one (fleet, bundle) on one cluster: `hold()` it, ask `still_owner()`."""

    def __init__(
        self,
        conn: ClusterConnection,
        fleet: str,
        bundle: str,
        *,
        duration: float = 30.0,
        holder: str | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.conn = conn.sibling()
        self.bundle = bundle
        self.cluster = conn.name
        self.name = lease_name(fleet, bundle)
        self.duration = max(1, round(duration))
        self.identity = f"{holder or default_holder()}#{uuid.uuid4().hex[:12]}"
        self.clock = clock
        self.resource_version = ""
        self.lost = False

    # ------------------------------------------------------------------ the verbs

    def acquire(self) -> bool:
        """Create the Lease, or take over an expired one; False when someone holds it."""
        current = self._get()
        if current is None:
            return self._create()
        spec = current.get("spec") or {}
        if not self._expired(spec):
            return False
        log.info(
            "%s: lease %s of %s expired; taking it over",
            self.cluster,
            self.name,
            holder_of(spec.get("holderIdentity")),
        )
        transitions = int(spec.get("leaseTransitions") or 0) + 1
        return self._put(current, transitions, acquired=True)

    def renew(self) -> bool:
        """Push renewTime to now; False (and `lost`) when another holder has it."""
        current = self._get()
        spec = (current or {}).get("spec") or {}
        if current is None or spec.get("holderIdentity") != self.identity:
            self.lost = True
            return False
        if self._put(current, int(spec.get("leaseTransitions") or 0), acquired=False):
            return True
        self.lost = True
        return False

    def release(self) -> None:
        """Delete the Lease if it is still ours (resourceVersion precondition)."""
        current = self._get()
        if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        version = str(current.get("metadata", {}).get("resourceVersion", ""))
        with suppress(Conflict, NotFound):
            self.conn.request(
                "DELETE",
                f"{LEASES}/{self.name}",
                body={"preconditions": {"resourceVersion": version}},
                what=f"release lease {self.name}",
            )

    def holder(self) -> str:
        """Who holds the Lease now ("nobody" when there is none)."""
        current = self._get()
        if current is None:
            return "nobody"
        return holder_of((current.get("spec") or {}).get("holderIdentity"))

    def still_owner(self) -> bool:
        """True while the Lease names us and has not expired: one GET."""
        if self.lost:
            return False
        try:
            current = self._get()
        except KubeError as err:
            log.warning(
                "%s: lease %s cannot be read (%s); treating it as lost",
                self.cluster,
                self.name,
                err,
            )
            return False
        spec = (current or {}).get("spec") or {}
        return spec.get("holderIdentity") == self.identity and not self._expired(spec)

    @contextmanager
    def hold(self) -> Iterator[ClusterLease]:
        """Acquire (or raise LockBusy), renew every third of the duration, release."""
        if not self.acquire():
            raise LockBusy(self.bundle, self.cluster, self.holder())
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop,), daemon=True)
        beat.start()
        try:
            yield self
        finally:
            stop.set()
            beat.join()
            try:
                self.release()
            except KubeError as err:
                log.warning(
                    "%s: lease %s not released (%s); it expires in %ds",
                    self.cluster,
                    self.name,
                    err,
                    self.duration,
                )

    # ------------------------------------------------------------------ helpers

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.duration / 3) and not self.lost:
            try:
                if not self.renew():
                    log.warning(
                        "%s: lease %s was taken by %s; stopping before prune and the "
                        "inventory write",
                        self.cluster,
                        self.name,
                        self.holder(),
                    )
            except KubeError as err:
                log.warning(
                    "%s: lease %s not renewed (%s); will try again", self.cluster, self.name, err
                )

    def _expired(self, spec: dict[str, Any]) -> bool:
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        if renewed is None:
            return True
        seconds = float(spec.get("leaseDurationSeconds") or self.duration)
        return self.clock() > renewed + timedelta(seconds=seconds)

    def _get(self) -> dict[str, Any] | None:
        try:
            return self.conn.request("GET", f"{LEASES}/{self.name}", what=f"read lease {self.name}")
        except NotFound:
            return None

    def _body(self, transitions: int, acquired: str) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": INVENTORY_NAMESPACE,
                "labels": {LABEL_MANAGED_BY: MANAGED_BY},
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": acquired,
                "renewTime": self.clock().strftime(_TIME),
                "leaseTransitions": transitions,
            },
        }

    def _create(self) -> bool:
        body = self._body(0, self.clock().strftime(_TIME))
        for attempt in (1, 2):
            try:
                created = self.conn.request(
                    "POST", LEASES, body=body, what=f"create lease {self.name}"
                )
            except Conflict:
                return False  # created by another run just now
            except NotFound:
                if attempt == 2:
                    raise
                ensure_system_namespace(self.conn)
                continue
            self.resource_version = str(created.get("metadata", {}).get("resourceVersion", ""))
            return True
        return False

    def _put(self, current: dict[str, Any], transitions: int, *, acquired: bool) -> bool:
        spec = current.get("spec") or {}
        since = self.clock().strftime(_TIME) if acquired else str(spec.get("acquireTime") or "")
        body = self._body(transitions, since)
        body["metadata"]["resourceVersion"] = current.get("metadata", {}).get("resourceVersion")
        try:
            updated = self.conn.request(
                "PUT", f"{LEASES}/{self.name}", body=body, what=f"update lease {self.name}"
            )
        except Conflict:
            return False  # someone else wrote it since we read it
        self.resource_version = str(updated.get("metadata", {}).get("resourceVersion", ""))
        return True
