"""The maintenance windows' cron parser: fields, names, steps, day rules, next fire."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleet.spec.cron import CronError, parse_cron


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_fields_lists_ranges_steps_and_names() -> None:
    cron = parse_cron("*/15 2,4-6 1-10/3 JAN,mar-apr mon-fri")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {2, 4, 5, 6}
    assert cron.days == {1, 4, 7, 10}
    assert cron.months == {1, 3, 4}
    assert cron.weekdays == {1, 2, 3, 4, 5}


def test_a_start_with_a_step_runs_to_the_end_and_seven_is_sunday() -> None:
    cron = parse_cron("50/5 0 * * 7")
    assert cron.minutes == {50, 55}
    assert cron.weekdays == {0}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "5 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 5-2 * * *", "hour: range '5-2' runs backwards"),
        ("* * * foo *", "month: 'foo' is not a number or a name"),
        ("*/0 * * * *", "step must be a positive number"),
        ("1,,2 * * * *", "empty item"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_bad_schedules_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(expression)


def test_next_fire_at_or_after_rounded_up_to_the_minute() -> None:
    cron = parse_cron("0 2 * * *")
    assert cron.next_fire(at("2026-12-03T02:00:00")) == at("2026-12-03T02:00:00")
    assert cron.next_fire(at("2026-12-03T02:00:01")) == at("2026-12-04T02:00:00")
    assert cron.next_fire(at("2026-12-31T03:00:00")) == at("2027-01-01T02:00:00")


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # Vixie cron: the 13th, or any Friday
    cron = parse_cron("0 0 13 * fri")
    assert cron.next_fire(at("2026-02-01T00:00:00")) == at("2026-02-06T00:00:00")  # a Friday
    assert cron.next_fire(at("2026-02-07T00:00:00")) == at("2026-02-13T00:00:00")
    # one of them `*`: only the other counts
    weekdays = parse_cron("0 0 * * mon")
    assert weekdays.next_fire(at("2026-02-03T00:00:00")) == at("2026-02-09T00:00:00")


def test_leap_day_is_found_years_ahead() -> None:
    assert parse_cron("0 0 29 2 *").next_fire(at("2026-03-01T00:00:00")) == at("2028-02-29T00:00")
