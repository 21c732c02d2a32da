"""Maintenance windows and freezes at a fixed `now`: open, closed, next opening, until."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fleet.rollout.windows import RolloutCalendar, window_state
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.cron import parse_cron
from fleet.spec.definition import Rollout
from fleet.targeting.units import DeploymentUnit


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ts(text: str) -> float:
    return at(text).timestamp()


def unit(cluster: str, labels: dict[str, str] | None = None, groups: Sequence[str] = ()) -> Any:
    return DeploymentUnit(
        "web", cluster, BundleOptions(), "v2", None, labels or {}, None, frozenset(groups)
    )


def test_a_window_is_open_from_each_fire_for_its_duration() -> None:
    nightly = parse_cron("0 2 * * *")
    hour = 3600
    assert window_state(nightly, hour, at("2026-12-03T02:00:00")).open
    assert window_state(nightly, hour, at("2026-12-03T02:59:59")).open
    closed = window_state(nightly, hour, at("2026-12-03T03:00:00"))  # half-open
    assert not closed.open and closed.next_open == at("2026-12-04T02:00:00")
    before = window_state(nightly, hour, at("2026-12-03T01:59:00"))
    assert not before.open and before.next_open == at("2026-12-03T02:00:00")
    # a window longer than the gap between fires is always open
    assert window_state(parse_cron("0 * * * *"), 2 * hour, at("2026-12-03T07:30:00")).open


def test_window_spanning_midnight_and_weekdays() -> None:
    weekend_night = parse_cron("0 22 * * sat")
    assert window_state(weekend_night, 4 * 3600, at("2026-12-06T01:00:00")).open  # Sunday 1am
    closed = window_state(weekend_night, 4 * 3600, at("2026-12-07T01:00:00"))  # Monday
    assert not closed.open and closed.next_open == at("2026-12-12T22:00:00")


CALENDAR = Rollout.model_validate(
    {
        "windows": [
            {
                "selector": {"matchLabels": {"env": "prod"}},
                "schedule": "0 2 * * *",
                "duration": "1h",
            },
            {"clusters": ["prod-2"], "schedule": "0 14 * * *", "duration": "30m"},
        ],
        "freezes": [
            {"group": "payments", "reason": "Black Friday", "until": "2026-11-30T00:00:00Z"},
            {"clusters": ["legacy"], "reason": "migration"},
        ],
    }
)


def test_outside_every_window_names_the_next_opening() -> None:
    calendar = RolloutCalendar(CALENDAR, ts("2026-12-03T10:00:00"))
    assert calendar.hold(unit("prod-1", {"env": "prod"})) == (
        "outside its maintenance window (next: 2026-12-04 02:00 UTC)"
    )
    # two windows: the earliest next opening
    assert calendar.hold(unit("prod-2", {"env": "prod"})) == (
        "outside its maintenance window (next: 2026-12-03 14:00 UTC)"
    )
    assert calendar.hold(unit("dev-1", {"env": "dev"})) is None  # no window selects it


def test_inside_any_of_its_windows_is_not_held() -> None:
    calendar = RolloutCalendar(CALENDAR, ts("2026-12-03T14:10:00"))
    assert calendar.hold(unit("prod-2", {"env": "prod"})) is None
    assert calendar.hold(unit("prod-1", {"env": "prod"})) is not None


def test_a_freeze_holds_until_its_end_and_without_until_for_good() -> None:
    during = RolloutCalendar(CALENDAR, ts("2026-11-27T12:00:00"))
    payments = unit("pay-1", groups=["payments"])
    assert during.hold(payments) == "frozen: Black Friday (until 2026-11-30T00:00:00Z)"
    assert during.hold(unit("legacy")) == "frozen: migration"
    after = RolloutCalendar(CALENDAR, ts("2026-11-30T00:00:00"))
    assert after.hold(payments) is None
    assert after.hold(unit("legacy")) == "frozen: migration"


def test_a_freeze_wins_over_an_open_window_and_no_scope_selects_all() -> None:
    rollout = Rollout.model_validate(
        {
            "windows": [{"schedule": "* * * * *", "duration": "1m"}],
            "freezes": [{"reason": "incident 42"}],
        }
    )
    calendar = RolloutCalendar(rollout, ts("2026-12-03T10:00:00"))
    assert calendar.hold(unit("any")) == "frozen: incident 42"
    assert RolloutCalendar(None, 0).empty
