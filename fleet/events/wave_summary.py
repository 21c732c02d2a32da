"""A commit's rollout per wave: how many units of each wave are Ready, failed, waiting.

The notification that ends a commit's rollout (`rollout.succeeded` / `rollout.failed`,
`fleet.events.changes.rollout_finished`) says where the commit got to, wave by wave:
`canary: 1/1 Ready; eu: 2/2 Ready; us: 0/2 (waiting for the gates of wave eu)`. Waves are
counted across bundles by name (the definition's `rollout.waves` are shared by every
bundle), in rollout order. Pure: the runtimes hand in (wave, index, state) per unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fleet.states import BundleState

READY_STATES = (BundleState.READY.value, BundleState.MODIFIED.value)  # Modified: drift kept
FAILED_STATES = (BundleState.ERR_APPLIED.value,)
NOT_STARTED = (BundleState.PENDING.value, BundleState.OUT_OF_SYNC.value)  # commit not there yet


@dataclass(frozen=True, slots=True)
class WaveTally:
    """One wave's units at the end of a rollout (see the module docstring)."""

    name: str
    total: int
    ready: int
    failed: int
    waiting: int  # not yet started: held by the rollout order or a gate
    note: str = ""  # why the wave waits, or ""

    def describe(self) -> str:
        text = f"{self.name}: {self.ready}/{self.total}" + ("" if self.note else " Ready")
        if self.failed:
            text += f", {self.failed} failed"
        return f"{text} ({self.note})" if self.note else text


def summarise_waves(units: Iterable[tuple[str, int, str]]) -> list[WaveTally]:
    """The tallies of `units` ((wave name, wave index in its bundle, state) each), in
    rollout order: by the lowest index a wave has in any bundle, then first seen."""
    order: dict[str, tuple[int, int]] = {}
    counts: dict[str, list[int]] = {}
    for wave, index, state in units:
        seen = order.get(wave)
        order[wave] = (min(seen[0], index), seen[1]) if seen else (index, len(order))
        total, ready, failed, waiting = counts.setdefault(wave, [0, 0, 0, 0])
        counts[wave] = [
            total + 1,
            ready + (state in READY_STATES),
            failed + (state in FAILED_STATES),
            waiting + (state in NOT_STARTED),
        ]
    tallies: list[WaveTally] = []
    for name in sorted(order, key=order.__getitem__):
        total, ready, failed, waiting = counts[name]
        tally = WaveTally(name, total, ready, failed, waiting)
        tallies.append(_with_note(tally, tallies[-1] if tallies else None))
    return tallies


def describe_waves(tallies: Sequence[WaveTally]) -> str:
    """`canary: 1/1 Ready; eu: 2/2 Ready; us: 0/2 (waiting for the gates of wave eu)`."""
    return "; ".join(tally.describe() for tally in tallies)


def _with_note(tally: WaveTally, before: WaveTally | None) -> WaveTally:
    if not tally.waiting or before is None:
        return tally
    if before.failed:
        note = f"held: wave {before.name} failed"
    elif before.ready == before.total:
        note = f"waiting for the gates of wave {before.name}"
    else:
        note = f"waiting for wave {before.name}"
    return WaveTally(tally.name, tally.total, tally.ready, tally.failed, tally.waiting, note)
