"""One backoff policy: exponential from `base`, capped at `cap`, with one jitter rule.

Every wait-and-try-again in fleet uses it: a cluster call retried within a sync
(`fleet.runtime.clusters`), a task retried by Celery (`workers.tasks`), the Git poller
after a failed fetch or load (`fleet.source.poll`), the health wait's polling
(`fleet.engine.wait`) and `fleet worker` restarting a dead Celery child (`workers.app`).
Each keeps its own numbers, documented where it is used; the formula and the jitter are
the same everywhere.

Why here, at the bottom of the package tree beside `errors`, and not in `fleet.runtime`:
`fleet.source` and `fleet.engine` sit below `fleet.runtime` in the import layers (see
`.importlinter`), so they could not import it from there.

The jitter rule ("equal jitter"): a jittered delay is between half and all of the capped
exponential, `d * (0.5 + 0.5 * random())`. Half is kept so a retry never comes at once;
the random half spreads clients that failed together (every task of a region when its
cluster went down).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# base * 2**64 is past every cap; bounding the exponent also keeps the float finite
# (2.0**1024 raises OverflowError: a poller failing every minute got there in 17 hours).
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """Delays `base * factor**attempt` capped at `cap`; jittered when `jitter` is set."""

    base: float
    cap: float
    factor: float = 2.0
    jitter: bool = False

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before try number `attempt + 1` (`attempt` 0: the first retry)."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        raw = float(min(self.cap, self.base * self.factor**exponent))
        return raw * (0.5 + 0.5 * rand()) if self.jitter else raw

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """delay(0), delay(1), ... without end, for a polling loop."""
        attempt = 0
        while True:
            yield self.delay(attempt, rand)
            attempt += 1
