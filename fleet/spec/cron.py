"""A tiny cron parser for maintenance windows: five fields, UTC, minute resolution.

`minute hour day-of-month month day-of-week`, each `*`, a number, a range `a-b`, a step
(`*/15`, `a-b/2`, `a/5` = from a to the field's end), or a comma list of those. Months
and days may be named (`jan`..`dec`, `sun`..`sat`, any case); day-of-week 0 and 7 are both
Sunday. As in Vixie cron (and Kubernetes CronJobs), when both day fields are restricted a
day matches either; when one is `*`, only the other counts.

No `@daily`-style macros, `L`, `W`, `#` or `?`: a window that needs them is rare and a
list of windows covers it. Parsing is done when the definition loads (a bad schedule is a
file:line problem); `next_fire` is what `fleet.rollout.windows` asks at plan time.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# (name, low, high, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_SEARCH_YEARS = 30  # covers Feb 29 on a given weekday (28-year cycle)


class CronError(ValueError):
    """A schedule that is not a valid five-field cron expression (the message says why)."""


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed schedule: the allowed values of each field."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday .. 6 = Saturday
    any_day: bool  # day of month was `*`
    any_weekday: bool  # day of week was `*`

    def day_matches(self, when: datetime) -> bool:
        in_month = when.day in self.days
        in_week = (when.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def matches(self, when: datetime) -> bool:
        """True when the schedule fires at `when`'s minute."""
        return (
            when.minute in self.minutes
            and when.hour in self.hours
            and when.month in self.months
            and self.day_matches(when)
        )

    def next_fire(self, start: datetime) -> datetime:
        """The first minute at or after `start` (rounded up to a minute) that fires.

        Skips whole months, days and hours that cannot match, so a search is a few dozen
        steps however far away the next fire is.
        """
        when = start.astimezone(UTC)
        if when.second or when.microsecond:
            when = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = when.year + _SEARCH_YEARS
        while when.year <= limit:
            if when.month not in self.months:
                year, month = (
                    (when.year + 1, 1) if when.month == 12 else (when.year, when.month + 1)
                )
                when = when.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self.day_matches(when):
                when = (when + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if when.hour not in self.hours:
                when = (when + timedelta(hours=1)).replace(minute=0)
                continue
            if when.minute not in self.minutes:
                when += timedelta(minutes=1)
                continue
            return when
        raise CronError(f"schedule '{self.expression}' never fires")  # ruled out by parse


def parse_cron(expression: str) -> Cron:
    """Parse a five-field schedule; raises CronError naming the field that is wrong."""
    parts = expression.split()
    if len(parts) != 5:
        raise CronError(
            f"a schedule has 5 fields (minute hour day-of-month month day-of-week), "
            f"not {len(parts)}: '{expression}'"
        )
    values = [_field(text, spec) for text, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in values[4])  # 7 is Sunday too
    cron = Cron(
        expression,
        frozenset(values[0]),
        frozenset(values[1]),
        frozenset(values[2]),
        frozenset(values[3]),
        weekdays,
        parts[2].startswith("*"),
        parts[4].startswith("*"),
    )
    if cron.any_weekday and not cron.any_day:
        longest = max(calendar.monthrange(2024, m)[1] for m in cron.months)  # 2024: Feb 29
        if min(cron.days) > longest:
            raise CronError(f"schedule '{expression}' never fires (no such day in its months)")
    return cron


def _field(text: str, spec: tuple[str, int, int, dict[str, int]]) -> set[int]:
    name, low, high, _ = spec
    out: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{name}: empty item in '{text}'")
        body, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name}: step must be a positive number, not '{step_text}'")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            first, last = _value(a, spec), _value(b, spec)
            if first > last:
                raise CronError(f"{name}: range '{body}' runs backwards")
        else:
            first = _value(body, spec)
            last = high if step_text else first
        out.update(range(first, last + 1, step))
    return out


def _value(text: str, spec: tuple[str, int, int, dict[str, int]]) -> int:
    name, low, high, names = spec
    key = text.lower()
    if key in names:
        return names[key]
    if not text.isdigit():
        hint = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"{name}: '{text}' is not a number{hint}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is outside {low}-{high}")
    return value
