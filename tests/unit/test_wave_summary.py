"""A commit's rollout summarised per wave: the tallies, their text, the event and Slack."""

from __future__ import annotations

from fleet.events import changes
from fleet.events.alerts import group
from fleet.events.model import EventType
from fleet.events.wave_summary import WaveTally, describe_waves, summarise_waves
from plugins import notify_slack


def test_waves_are_tallied_in_rollout_order_with_why_a_wave_waits() -> None:
    rows = [
        ("us", 2, "Pending"),
        ("canary", 0, "Ready"),
        ("eu", 1, "Ready"),
        ("eu", 1, "Modified"),
        ("us", 2, "Pending"),
    ]
    tallies = summarise_waves(rows)
    assert [t.name for t in tallies] == ["canary", "eu", "us"]
    assert tallies[2] == WaveTally("us", 2, 0, 0, 2, "waiting for the gates of wave eu")
    assert describe_waves(tallies) == (
        "canary: 1/1 Ready; eu: 2/2 Ready; us: 0/2 (waiting for the gates of wave eu)"
    )


def test_a_wave_behind_a_failed_or_unfinished_wave_says_so() -> None:
    failed = summarise_waves([("eu", 0, "ErrApplied"), ("eu", 0, "Ready"), ("us", 1, "Pending")])
    assert describe_waves(failed) == "eu: 1/2 Ready, 1 failed; us: 0/1 (held: wave eu failed)"
    running = summarise_waves([("eu", 0, "NotReady"), ("us", 1, "OutOfSync")])
    assert describe_waves(running) == "eu: 0/1 Ready; us: 0/1 (waiting for wave eu)"


def test_waves_of_several_bundles_merge_by_name_at_their_lowest_index() -> None:
    rows = [("eu", 1, "Ready"), ("canary", 0, "Ready"), ("eu", 0, "Ready")]
    assert [t.name for t in summarise_waves(rows)] == ["eu", "canary"]


def test_the_rollout_event_carries_the_waves_in_details_and_message() -> None:
    tallies = summarise_waves([("canary", 0, "Ready"), ("eu", 1, "Pending")])
    event = changes.rollout_finished("acme", "c0ffee" * 6, {"Ready": 1, "Pending": 1}, True,
                                     tallies)  # fmt: skip
    assert event.type is EventType.ROLLOUT_SUCCEEDED
    assert (
        event.details["waves"]
        == "canary: 1/1 Ready; eu: 0/1 (waiting for the gates of wave canary)"
    )
    assert event.details["wave.canary"] == "1/1 Ready"
    assert event.message.endswith(f"({event.details['waves']})")
    one = changes.rollout_finished("acme", "c0ffee" * 6, {"Ready": 1}, True, tallies[:1])
    assert "(" not in one.message and one.details["waves"] == "canary: 1/1 Ready"


def test_slack_lists_a_rollouts_waves_one_per_line() -> None:
    tallies = summarise_waves([("canary", 0, "Ready"), ("eu", 1, "ErrApplied")])
    event = changes.rollout_finished("acme", "c0ffee" * 6, {"Ready": 1, "ErrApplied": 1}, False,
                                     tallies)  # fmt: skip
    blocks = notify_slack.message(group([event])[0])["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert "• canary: 1/1 Ready\n• eu: 0/1 Ready, 1 failed" in texts
