"""The cluster connections a worker process keeps between tasks.

Why: a worker used to open a new connection for every task (TLS handshake, discovery) and
close it at the end, so the health watches of `fleet.engine.watch` (one per kind per
cluster) would have been started and thrown away with every unit: a LIST of every
fleet-labelled object of the kind, cluster-wide, per task. Kept per cluster, the watches
are started once per worker process and every task's wait on that cluster reads them,
and the connection's pool, discovery cache and TLS sessions are reused.

What keeps a kept connection from going stale:

- the key is the cluster's spec as the commit gives it plus the kubeconfig file's
  identity (path, inode, size, mtime): a rotated credential or a commit that changes the
  cluster's `kubeconfig` gets a new connection, the old one is closed once idle;
- a link that found its cluster unreachable (`ClusterLink.down`) is never lent again:
  the next task connects afresh, as before;
- an entry nobody used for `idle_seconds` is closed (its watches stop), so a cluster
  that left the fleet costs nothing after a while;
- closing waits for the last task using it (`users`), so no task loses its connection.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from fleet.runtime.clusters import ClusterLink
from fleet.runtime.credentials import resolve_kubeconfig
from fleet.spec.definition import ClusterSpec

IDLE_SECONDS = 300.0


@dataclass
class _Entry:
    link: ClusterLink
    users: int = 0
    last_used: float = 0.0
    retired: bool = False


class LinkCache:
    """Connected `ClusterLink`s by cluster, lent to tasks (see the module docstring)."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.env = env
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    @contextmanager
    def lend(self, spec: ClusterSpec) -> Iterator[ClusterLink]:
        """A connected link to `spec`'s cluster for one task (retries=0: the task's own
        retry with backoff decides when to try again)."""
        key = _key(spec, self.env)
        entry = self._take(key, spec)
        try:
            yield entry.link
        finally:
            self._give_back(key, entry)

    def close(self) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            entry.link.close()

    def __len__(self) -> int:
        return len(self._entries)

    def _take(self, key: str, spec: ClusterSpec) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.link.down is None:
                entry.users += 1
                entry.last_used = self.clock()
                return entry
        link = ClusterLink(spec, retries=0)
        link.connect(self.env)  # a user error (no kubeconfig) propagates, nothing kept
        fresh = _Entry(link, users=1, last_used=self.clock())
        with self._lock:
            old = self._entries.get(key)
            if old is not None:
                old.retired = True
            self._entries[key] = fresh
        if old is not None and old.users == 0:
            old.link.close()
        return fresh

    def _give_back(self, key: str, entry: _Entry) -> None:
        closing: list[ClusterLink] = []
        with self._lock:
            entry.users -= 1
            entry.last_used = self.clock()
            if entry.link.down is not None and self._entries.get(key) is entry:
                del self._entries[key]
                entry.retired = True
            if entry.retired and entry.users == 0:
                closing.append(entry.link)
            now = self.clock()
            for other_key, other in list(self._entries.items()):
                if other.users == 0 and now - other.last_used > self.idle_seconds:
                    del self._entries[other_key]
                    closing.append(other.link)
        for link in closing:
            link.close()


def _key(spec: ClusterSpec, env: Mapping[str, str]) -> str:
    """The spec as the commit gives it and the identity of its kubeconfig file."""
    location = resolve_kubeconfig(spec, env)
    try:
        st = location.path.stat()
        identity = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        identity = "missing"
    text = f"{spec.model_dump_json()}\n{location.path}\n{location.context}\n{identity}"
    return hashlib.sha256(text.encode()).hexdigest()
