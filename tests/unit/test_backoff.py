"""The one backoff policy, and the documented numbers of each place that uses it."""

from __future__ import annotations

from fleet.backoff import Backoff
from fleet.engine.wait import HEALTH_POLL
from workers.app import RESTART_BACKOFF


def test_doubles_from_base_up_to_the_cap() -> None:
    policy = Backoff(1.0, cap=30.0)
    assert [policy.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(-1) == 1  # never below the base
    assert policy.delay(5000) == 30  # no OverflowError after a very long outage


def test_one_jitter_rule_keeps_half_and_randomises_half() -> None:
    policy = Backoff(2.0, cap=100.0, jitter=True)
    assert policy.delay(3, lambda: 0.0) == 8.0
    assert policy.delay(3, lambda: 1.0) == 16.0
    assert policy.delay(10, lambda: 0.5) == 75.0  # capped first, then jittered


def test_the_places_that_use_it_keep_their_numbers() -> None:
    polls = HEALTH_POLL.delays()
    assert [round(next(polls), 2) for _ in range(7)] == [0.5, 0.8, 1.28, 2.05, 3.28, 5.0, 5.0]
    assert [RESTART_BACKOFF.delay(n) for n in (0, 1, 2, 5, 9)] == [1, 2, 4, 30, 30]
    # README: FLEET_RETRY_BASE (2s) doubling, capped at min(300, visibility/3)
    task = Backoff(2.0, cap=min(300.0, 1800 / 3), jitter=True)
    assert [task.delay(n, lambda: 1.0) for n in (0, 1, 7, 8)] == [2, 4, 256, 300]
