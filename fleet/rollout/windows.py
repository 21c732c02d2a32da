"""Maintenance windows and freezes: may a new revision start on this cluster now? (pure)

The definition's `rollout.windows` and `rollout.freezes` select clusters (a label
selector, a group, a list of names, or every cluster when none is given). For a cluster:

- a freeze that selects it and is not past its `until` holds it: "frozen: <reason>";
- else, when one or more windows select it, it may start a new revision only while one
  of them is open; a window opens each time its cron `schedule` (UTC) fires and stays open
  for `duration` (half-open: open at 02:00 for 1h means 02:00 <= now < 03:00). Outside
  them it waits "outside its maintenance window (next: 2026-12-03 02:00 UTC)", the
  earliest next opening of its windows.

Only *new revisions* are held (a unit not deployed, or whose desired id changed): a retry
after ErrApplied and drift corrections of the revision already running go on, since they
put back what was agreed to run. The planner asks `RolloutCalendar.hold` only for those.

One `RolloutCalendar` per plan: every window's state is computed once for `now` and each
cluster's answer is cached, so a tick costs one cron search per window, not per unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fleet.spec.cron import Cron, parse_cron
from fleet.spec.definition import ClusterScope, Freeze, MaintenanceWindow, Rollout, freeze_end
from fleet.spec.rollout_spec import parse_duration
from fleet.targeting.selectors import CompiledSelector, compile_selector
from fleet.targeting.units import DeploymentUnit

_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class WindowState:
    """A window at one instant: open or not, and when it opens next (None while open)."""

    open: bool
    next_open: datetime | None


def window_state(cron: Cron, duration_seconds: int, now: datetime) -> WindowState:
    """Is `now` inside a window that opens when `cron` fires and lasts `duration_seconds`?"""
    span = timedelta(seconds=duration_seconds)
    start = cron.next_fire(now - span)
    if start <= now - span:  # the window that opened exactly `span` ago has just closed
        start = cron.next_fire(start + _MINUTE)
    if start <= now:
        return WindowState(True, None)
    return WindowState(False, start)


class _Scope:
    """Which clusters a window or freeze selects."""

    __slots__ = ("clusters", "group", "selector")

    def __init__(self, scope: ClusterScope) -> None:
        self.clusters = frozenset(scope.clusters) if scope.clusters is not None else None
        self.group = scope.group
        self.selector: CompiledSelector | None = (
            compile_selector(scope.selector) if scope.selector is not None else None
        )

    def selects(self, unit: DeploymentUnit) -> bool:
        if self.clusters is not None:
            return unit.cluster in self.clusters
        if self.group is not None:
            return self.group in unit.groups
        if self.selector is not None:
            return self.selector.matches(unit.labels)
        return True


class RolloutCalendar:
    """The windows and freezes of one definition at one instant (`now`, epoch seconds)."""

    def __init__(self, rollout: Rollout | None, now: float) -> None:
        self.now = datetime.fromtimestamp(now, UTC)
        windows = rollout.windows if rollout is not None else []
        freezes = rollout.freezes if rollout is not None else []
        self._freezes = [(_Scope(f), f) for f in freezes if _active(f, now)]
        self._windows = [(_Scope(w), w) for w in windows]
        self._states: dict[int, WindowState] = {}
        self._held: dict[str, str | None] = {}

    @property
    def empty(self) -> bool:
        """No window and no active freeze: nothing is ever held (the planner's fast path)."""
        return not self._freezes and not self._windows

    def hold(self, unit: DeploymentUnit) -> str | None:
        """Why a new revision may not start on `unit`'s cluster now, or None."""
        if unit.cluster in self._held:
            return self._held[unit.cluster]
        reason = self._reason(unit)
        self._held[unit.cluster] = reason
        return reason

    def _reason(self, unit: DeploymentUnit) -> str | None:
        for scope, freeze in self._freezes:
            if scope.selects(unit):
                text = f"frozen: {freeze.reason}" if freeze.reason else "frozen"
                return text + (f" (until {freeze.until})" if freeze.until else "")
        upcoming: list[datetime] = []
        for i, (scope, window) in enumerate(self._windows):
            if not scope.selects(unit):
                continue
            state = self._state(i, window)
            if state.open:
                return None
            assert state.next_open is not None
            upcoming.append(state.next_open)
        if not upcoming:
            return None
        return f"outside its maintenance window (next: {min(upcoming):%Y-%m-%d %H:%M} UTC)"

    def _state(self, index: int, window: MaintenanceWindow) -> WindowState:
        state = self._states.get(index)
        if state is None:
            cron = parse_cron(window.schedule)
            state = window_state(cron, parse_duration(window.duration), self.now)
            self._states[index] = state
        return state


def _active(freeze: Freeze, now: float) -> bool:
    return freeze.until is None or now < freeze_end(freeze.until)
