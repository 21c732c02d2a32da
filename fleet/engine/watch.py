"""Health waits by watch: one LIST+WATCH per resource type per cluster, shared by every wait.

Why: a wait that polls (`fleet.engine.wait`: LIST per kind and namespace, backoff 0.5 s
to 5 s) learns that a Deployment became Ready up to a poll interval late, and 40 bundles
waiting on one cluster send 40 LISTs a round. A watch reports the change the moment the
API server has it. So a cluster connection and its siblings share one `Watches`: the
first wait that needs a kind starts that kind's watch (cluster-wide, only objects that
carry fleet's bundle label), and every wait on the cluster reads the watch's cache and
sleeps on one condition until an event arrives: the waits of concurrent bundles are one
stream per kind, not one poll loop each.

What keeps it correct:

- a cached object is used only when it is not older than the one the wait holds (the
  apply response): same object, so `resourceVersion` (etcd's modification revision) is
  compared as a number; should a server give non-numeric ones, `metadata.generation`
  decides, and without either the wait polls. A watch lagging behind the apply can
  therefore never report the previous generation's Ready as this one's;
- a watch that cannot start (Forbidden: credentials scoped to namespaces; a kind that
  cannot be listed cluster-wide; the server down) is `unavailable` and its waits poll as
  before, with the errors polling reports;
- a watch that breaks after it started (the stream ends at the server's timeout, an
  ERROR event such as 410 Gone, the connection drops) is resumed from the last
  resourceVersion, or relisted when that is too old; while it is down, `usable` is false
  and the waits poll, so an unreachable cluster is reported as it was;
- the threads are daemons and stop when the owning connection closes (`close`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator

from fleet.backoff import Backoff
from fleet.engine.kube import ClusterConnection, KubeError, ObjectRef, ResourceType
from fleet.engine.labels import LABEL_BUNDLE
from fleet.errors import PermanentError
from fleet.manifest import Manifest

log = logging.getLogger(__name__)

WATCH_SECONDS = 300  # the server ends a watch after this long; it is resumed at once
SYNC_WAIT = 10.0  # how long a wait waits for a new watch's first LIST before polling
RETRY = Backoff(0.5, cap=10.0, jitter=True)
MAX_LINE = 16 * 1024 * 1024  # one watch event; a larger one breaks the watch (relist)


class _Gone(Exception):
    """The server no longer has the resourceVersion the watch resumes from: relist."""


class KindWatch:
    """The fleet-labelled objects of one resource type on one cluster, kept current."""

    def __init__(self, owner: Watches, res: ResourceType) -> None:
        self.owner = owner
        self.res = res
        self.objects: dict[ObjectRef, Manifest] = {}
        self.synced = threading.Event()  # the first LIST is in (or the watch gave up)
        self.unavailable: str | None = None  # why this kind is polled instead
        self.broken = False  # down since it started; resuming
        self._end_stream: Callable[[], None] | None = None  # ends the read in progress
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{owner.conn.name}-{res.plural}", daemon=True
        )
        self._thread.start()

    @property
    def usable(self) -> bool:
        return self.synced.is_set() and self.unavailable is None and not self.broken

    def get(self, ref: ObjectRef) -> Manifest | None:
        with self.owner.cond:
            return self.objects.get(ref)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        conn = self.owner.conn
        attempt = 0
        version: str | None = None
        while not self.owner.closed.is_set():
            try:
                if version is None:
                    version = self._list(conn)
                    self.synced.set()
                self._set_broken(False)
                attempt = 0
                version = self._watch(conn, version)
            except _Gone:
                version = None
            except PermanentError as err:  # Forbidden, not listable: poll, for good
                self.unavailable = str(err)
                log.info("%s: health of %s is polled: %s", conn.name, self.res.plural, err)
                break
            except KubeError as err:  # unreachable, or a server error: try again
                if not self.synced.is_set():
                    self.unavailable = str(err)
                    break
                self._set_broken(True)
                log.debug("%s: watch of %s broke (%s), resuming", conn.name, self.res.plural, err)
                self.owner.closed.wait(RETRY.delay(attempt))
                attempt += 1
        self.synced.set()
        self.owner.notify()

    def _set_broken(self, broken: bool) -> None:
        if self.broken != broken:
            self.broken = broken
            self.owner.notify()

    def _list(self, conn: ClusterConnection) -> str:
        body = conn.request(
            "GET",
            self.res.collection_path(None),
            query=[("labelSelector", LABEL_BUNDLE)],
            what=f"list {self.res.plural} (health watch)",
        )
        found: dict[ObjectRef, Manifest] = {}
        for item in body.get("items") or []:
            item["apiVersion"], item["kind"] = self.res.group_version, self.res.kind
            found[ObjectRef.of(item)] = item
        with self.owner.cond:
            self.objects = found
        self.owner.notify()
        return str((body.get("metadata") or {}).get("resourceVersion") or "0")

    def _watch(self, conn: ClusterConnection, version: str) -> str:
        """Follow the stream from `version` until it ends; the last version seen."""
        query = [
            ("watch", "true"),
            ("labelSelector", LABEL_BUNDLE),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_SECONDS)),
        ]
        lines = conn.stream(
            self.res.collection_path(None),
            query=query,
            read_timeout=WATCH_SECONDS + 30,
            what=f"watch {self.res.plural}",
            opened=self._opened,
        )
        for event in _events(lines):
            if self.owner.closed.is_set():
                break
            version = self._apply(event, version)
        return version

    def _opened(self, end: Callable[[], None]) -> None:
        self._end_stream = end
        if self.owner.closed.is_set():
            end()

    def stop(self) -> None:
        """End the stream being read (the thread sees `closed` and leaves)."""
        end = self._end_stream
        if end is not None:
            with contextlib.suppress(OSError):
                end()

    def _apply(self, event: Manifest, version: str) -> str:
        kind, obj = event.get("type"), event.get("object")
        if not isinstance(obj, dict):
            return version
        if kind == "ERROR":  # a Status: 410 Gone (too old) or another reason
            raise _Gone()
        seen = str((obj.get("metadata") or {}).get("resourceVersion") or version)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            obj["apiVersion"], obj["kind"] = self.res.group_version, self.res.kind
            ref = ObjectRef.of(obj)
            with self.owner.cond:
                if kind == "DELETED":
                    self.objects.pop(ref, None)
                else:
                    self.objects[ref] = obj
            self.owner.notify()
        return seen  # BOOKMARK: only the version moves


def _events(lines: Iterator[bytes]) -> Iterator[Manifest]:
    """The JSON events of a watch stream (one per line; chunks may split a line)."""
    pending = b""
    for chunk in lines:
        pending += chunk
        if len(pending) > MAX_LINE:
            raise _Gone()
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                decoded = json.loads(line)
                if isinstance(decoded, dict):
                    yield decoded
    if pending.strip():
        decoded = json.loads(pending)
        if isinstance(decoded, dict):
            yield decoded


class Watches:
    """One cluster's health watches, by resource type, and the condition waits sleep on."""

    def __init__(self, conn: ClusterConnection) -> None:
        self.conn = conn  # a sibling of its own: the watch threads share nothing else
        self.cond = threading.Condition()
        self.version = 0  # moves on every event; a wait sleeps until it moves
        self.closed = threading.Event()
        self._kinds: dict[ResourceType, KindWatch] = {}

    def kind(self, res: ResourceType, *, sync_wait: float = SYNC_WAIT) -> KindWatch | None:
        """The watch of `res`, started if new; None when it is not usable now (poll)."""
        with self.cond:
            if self.closed.is_set():
                return None
            watch = self._kinds.get(res)
            if watch is None:
                watch = self._kinds[res] = KindWatch(self, res)
        watch.synced.wait(sync_wait)
        return watch if watch.usable else None

    def notify(self) -> None:
        with self.cond:
            self.version += 1
            self.cond.notify_all()

    def wait(self, since: int, timeout: float) -> int:
        """Sleep until an event arrived after `since` (or `timeout`); the version now."""
        with self.cond:
            self.cond.wait_for(lambda: self.version != since or self.closed.is_set(), timeout)
            return self.version

    def close(self) -> None:
        self.closed.set()
        with self.cond:
            kinds = list(self._kinds.values())
        for kind in kinds:
            kind.stop()
        self.notify()


def not_older(candidate: Manifest, held: Manifest | None) -> bool | None:
    """Is the watch's copy of an object at least as new as the one a wait holds?

    None when it cannot be told (no numeric resourceVersion and no generation on both).
    """
    if held is None:
        return True
    new_meta, old_meta = candidate.get("metadata") or {}, held.get("metadata") or {}
    new_rv, old_rv = (
        str(new_meta.get("resourceVersion", "")),
        str(old_meta.get("resourceVersion", "")),
    )
    if new_rv.isdigit() and old_rv.isdigit():
        return int(new_rv) >= int(old_rv)
    new_gen, old_gen = new_meta.get("generation"), old_meta.get("generation")
    if isinstance(new_gen, int) and isinstance(old_gen, int):
        return new_gen >= old_gen
    return None
