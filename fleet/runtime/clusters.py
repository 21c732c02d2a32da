"""Reaching the clusters of a run: credentials, retries with backoff, what each one runs.

`ClusterLink` wraps one `ClusterConnection`: it resolves the credential from the
environment (never from Git), retries a call that found the cluster unreachable a few
times with exponential backoff, and after that marks the cluster down for the rest of the
run, so its units are reported and the other clusters go on.

`ClusterSet` is the clusters of one embedded pass (`fleet sync`, `fleet diff`) or of one
`fleet status`: a link each, connected together (an error only when none has a
credential), called concurrently (`each`), and read once (`read_deployed`, with the
engine's ownership filter: a bundle this fleet deployed, or one it wants).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import yaml

from fleet.backoff import Backoff
from fleet.engine import DeployedBundle, read_deployed
from fleet.engine.kube import ClusterConnection, ClusterUnreachable
from fleet.errors import FleetError
from fleet.runtime.credentials import resolve_kubeconfig
from fleet.spec.definition import ClusterSpec
from fleet.targeting.units import UnitKey

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class ClusterLink:
    """One cluster of a run: its connection, or why it cannot be reached."""

    spec: ClusterSpec
    conn: ClusterConnection | None = None
    down: str | None = None  # why it is unreachable (`ClusterUnreachable.reason`), once given up
    retries: int = 3
    backoff: float = 1.0  # the first retry's delay, doubled each time up to retry_after
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] | None = None
    # Concurrent calls on one cluster each get a connection of their own (a connection
    # is not thread-safe): `conn` first, then siblings sharing its HTTP pool, reused.
    _idle: list[ClusterConnection] = field(default_factory=list, repr=False)
    _siblings: list[ClusterConnection] = field(default_factory=list, repr=False)
    _lending: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _conn_lent: bool = field(default=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def writes(self) -> int:
        """Writes of every connection this link lent (the run's write count)."""
        if self.conn is None:
            return 0
        return self.conn.writes + sum(c.writes for c in self._siblings)

    @property
    def requests(self) -> int:
        """API requests of every connection this link lent (lock heartbeats and health
        watches run on connections of their own and are not counted)."""
        if self.conn is None:
            return 0
        return self.conn.requests + sum(c.requests for c in self._siblings)

    def _borrow(self) -> ClusterConnection:
        assert self.conn is not None, "connect() first"
        with self._lending:
            if self._idle:
                return self._idle.pop()
            if not self._conn_lent:  # `conn` is in circulation from its first loan on
                self._conn_lent = True
                return self.conn
            sibling = self.conn.sibling()
            self._siblings.append(sibling)
            return sibling

    def _give_back(self, conn: ClusterConnection) -> None:
        with self._lending:
            self._idle.append(conn)

    @contextmanager
    def lend(self) -> Iterator[ClusterConnection]:
        """A connection of this cluster no other thread uses meanwhile (no retries)."""
        conn = self._borrow()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def connect(self, env: Mapping[str, str]) -> None:
        """Resolve the credential and load the kubeconfig; a missing file is a user error."""
        location = resolve_kubeconfig(self.spec, env)
        if not location.path.is_file():
            raise location.error(
                f"cluster '{self.name}': kubeconfig {location.shown} not found "
                "(credentials are resolved from the environment, see fleet.runtime.credentials)"
            )
        try:
            self.conn = ClusterConnection.from_kubeconfig(
                location.path, location.context, name=self.name
            )
        except (FleetError, yaml.YAMLError, ValueError):
            # the loader's own message may quote the file or its expanded path: name it only
            context = f" (context {location.context!r})" if location.context else ""
            raise location.error(
                f"cluster '{self.name}': cannot load kubeconfig {location.shown}{context}: "
                "not a kubeconfig file, or the context is not in it"
            ) from None

    def call(self, what: str, fn: Callable[[ClusterConnection], T]) -> T:
        """`fn(conn)`, retried with backoff while the cluster is unreachable.

        Raises ClusterUnreachable (and marks the link down) when every attempt failed.
        """
        if self.down is not None:
            raise ClusterUnreachable(self.down)
        conn = self._borrow()
        try:
            for attempt in range(self.retries + 1):
                try:
                    return fn(conn)
                except ClusterUnreachable as err:
                    if attempt == self.retries or self.down is not None:
                        self.down = self.down or err.reason
                        raise ClusterUnreachable(self.down) from None
                    delay = Backoff(self.backoff, cap=err.retry_after).delay(attempt)
                    self._say(f"{self.name}: {what}: unreachable, retry {attempt + 1}/"
                              f"{self.retries} in {delay:.1f}s")  # fmt: skip
                    self.sleep(delay)
            raise AssertionError("unreachable")
        finally:
            self._give_back(conn)

    def _say(self, line: str) -> None:
        log.warning("%s", line)
        if self.log is not None:
            self.log(line)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class ClusterSet:
    """A link per cluster for one pass; `each` calls the reachable ones concurrently."""

    def __init__(
        self,
        specs: Iterable[ClusterSpec],
        *,
        retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.say = log or (lambda line: None)
        self.concurrency = max(1, concurrency)
        self.links = {
            spec.name: ClusterLink(spec, retries=retries, backoff=backoff, log=log)
            for spec in specs
        }

    def __getitem__(self, name: str) -> ClusterLink:
        return self.links[name]

    def __enter__(self) -> ClusterSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def down(self) -> dict[str, str]:
        """cluster -> why it is unreachable, for the clusters marked down."""
        return {n: link.down for n, link in self.links.items() if link.down is not None}

    @property
    def writes(self) -> int:
        return sum(link.writes for link in self.links.values())

    @property
    def requests(self) -> int:
        return sum(link.requests for link in self.links.values())

    def connect(self, env: Mapping[str, str]) -> None:
        """Connect every link; a cluster without a credential is down, all of them an error."""
        failures = []
        for link in self.links.values():
            try:
                link.connect(env)
            except FleetError as err:
                link.down = str(err)
                failures.append(err)
        if failures and len(failures) == len(self.links):
            raise FleetError(problems=[p for err in failures for p in err.problems])

    def each(self, fn: Callable[[ClusterLink], T]) -> dict[str, T | None]:
        """`fn(link)` for every reachable cluster, concurrently; None where unreachable."""

        def guarded(link: ClusterLink) -> T | None:
            try:
                return fn(link)
            except ClusterUnreachable:
                return None

        live = [link for link in self.links.values() if link.down is None]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            values = list(pool.map(guarded, live))
        return {link.name: value for link, value in zip(live, values, strict=True)}

    def read_deployed(
        self, fleet: str, wanted: Collection[UnitKey]
    ) -> dict[UnitKey, DeployedBundle]:
        """What every reachable cluster runs of `fleet`'s bundles or of the `wanted` units;
        then one line per cluster found down."""
        by_cluster: dict[str, set[str]] = {}
        for bundle, cluster in wanted:
            by_cluster.setdefault(cluster, set()).add(bundle)

        def read(link: ClusterLink) -> dict[str, DeployedBundle]:
            mine = by_cluster.get(link.name, set())
            return link.call(
                "read inventories", lambda conn: read_deployed(conn, fleet=fleet, wanted=mine)
            )

        found: dict[UnitKey, DeployedBundle] = {}
        for cluster, deployed in self.each(read).items():
            for bundle, rec in (deployed or {}).items():
                found[(bundle, cluster)] = rec
        for name, why in self.down.items():
            self.say(f"{name}: unreachable: {why}")
        return found

    def close(self) -> None:
        for link in self.links.values():
            link.close()
