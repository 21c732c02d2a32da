"""How many of `fleet sync`'s jobs run at once, per cluster and over the fleet (issue 13).

A pass (`fleet.runtime.embedded.SyncRun`) has one job per unit to sync and per bundle to
remove. A cluster's units one at a time was slow for a cluster of many small independent
bundles (README, benchmarks: 40 bundles, 2.5x), so this pool runs them side by side,
within two bounds:

- at most `per_cluster` jobs on one cluster at once (`cluster_concurrency`:
  FLEET_CLUSTER_CONCURRENCY / `fleet sync --cluster-concurrency`, default 8: each job
  may hold an API request or a health wait open on that cluster);
- on at most `clusters` clusters at once (`concurrency`, the pass's cluster bound). A
  cluster with a job running takes more up to `per_cluster`; another cluster starts only
  while fewer than `clusters` clusters have work in flight. The thread pool has one thread
  per slot (`clusters * per_cluster`), so an admitted job never queues behind another.

The pool does not order anything, it only bounds. What may start is the planner's answer
(`fleet.rollout.planner.plan`: waves, `dependsOn` per cluster, maxUnavailable, gates),
and `wait_one` returns as soon as the first job finishes, so the caller plans again then
and a dependent starts as soon as what it depends on is Ready, without waiting for the
rest of the batch. What makes concurrent jobs on one cluster safe is elsewhere:

- a connection is not thread-safe: every job borrows one of its own from the cluster's
  `fleet.runtime.clusters.ClusterLink` (`call`, `lend`: siblings share the HTTP pool and
  the write count);
- removals and syncs of one cluster share the slots and may overlap: ownership claims
  (`fleet.engine` prune and remove) make their order irrelevant;
- two bundles creating one namespace at once is not an error (`fleet.engine.apply.
  ensure_namespaces`: a Conflict on create is the other bundle's namespace);
- a unit is locked while it is written (`fleet.runtime.unit_guard`), so another run or a
  worker never interleaves with a job on that unit.

A job reports its cluster's problems in its result; an exception out of one is a bug, and
`wait_one` raises it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType

Job = Callable[[], None]


class ClusterPool:
    """The jobs running now: at most `per_cluster` on one cluster, on at most `clusters`
    clusters at once. Use as a context manager (leaving it waits for every job)."""

    def __init__(self, clusters: int, per_cluster: int) -> None:
        self.clusters, self.per_cluster = clusters, per_cluster
        self.running: dict[Future[None], str] = {}
        self.count: Counter[str] = Counter()
        self._threads = ThreadPoolExecutor(max_workers=self.slots)

    def __enter__(self) -> ClusterPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._threads.shutdown(wait=True)

    @property
    def slots(self) -> int:
        return self.clusters * self.per_cluster

    def admit(self, cluster: str) -> bool:
        """Whether a job on `cluster` may start now."""
        if self.count[cluster] >= self.per_cluster:
            return False
        active = sum(1 for n in self.count.values() if n)
        return self.count[cluster] > 0 or active < self.clusters

    def start(self, cluster: str, job: Job) -> bool:
        """Start `job` on `cluster` if `admit` allows it; False (nothing started) if not."""
        if not self.admit(cluster):
            return False
        future = self._threads.submit(job)
        self.running[future] = cluster
        self.count[cluster] += 1
        return True

    def wait_one(self, linger: float = 0.0) -> None:
        """Wait for the first running job to finish, then up to `linger` seconds more for
        others (all of them may end sooner), re-raising what a job raised.

        `linger` batches the caller's re-plans: `fleet sync` plans again after each wait,
        and a plan of 50,000 units takes a fifth of a second, so one plan per finished
        unit would spend more time planning than syncing. The caller lingers a few times
        its last plan's duration: nothing for a small fleet, a batch for a large one."""
        done, _ = wait(self.running, return_when=FIRST_COMPLETED)
        if linger > 0 and len(done) < len(self.running):
            done, _ = wait(self.running, timeout=linger, return_when=ALL_COMPLETED)
        for future in done:
            self.count[self.running.pop(future)] -= 1
            future.result()


def run_all(work: Sequence[tuple[str, Job]], *, clusters: int, per_cluster: int) -> None:
    """Run every (cluster, job) given, in order as slots free up, within the pool's bounds
    (a batch planned once: the dry run's)."""
    pending = list(work)
    with ClusterPool(clusters, per_cluster) as pool:
        while pending or pool.running:
            pending = [(c, job) for c, job in pending if not pool.start(c, job)]
            if pool.running:
                pool.wait_one()
