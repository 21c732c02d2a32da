"""The pure parts of the health watches (`fleet.engine.watch`): the event stream's framing
and which of two copies of an object is newer. The watches themselves run against a real
API server in tests/e2e/test_health_watch.py."""

from __future__ import annotations

import pytest

from fleet.engine import watch
from fleet.engine.watch import _events, _Gone, not_older


def meta(rv: str | None = None, generation: int | None = None) -> dict[str, object]:
    fields: dict[str, object] = {}
    if rv is not None:
        fields["resourceVersion"] = rv
    if generation is not None:
        fields["generation"] = generation
    return {"metadata": fields}


def test_events_are_split_on_newlines_whatever_the_chunks() -> None:
    stream = [
        b'{"type": "ADDED", "object": {"a"',
        b': 1}}\n{"type": "MODI',
        b'FIED"}\n\n',
        b'{"type": "DELETED"}',
    ]
    kinds = [event["type"] for event in _events(iter(stream))]
    assert kinds == ["ADDED", "MODIFIED", "DELETED"]


def test_an_oversized_event_breaks_the_watch_for_a_relist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "MAX_LINE", 64)
    with pytest.raises(_Gone):
        list(_events(iter([b"x" * 40, b"y" * 40])))


@pytest.mark.parametrize(
    ("candidate", "held", "expected"),
    [
        (meta("120"), meta("99"), True),  # numbers, not strings: "120" < "99" as text
        (meta("99"), meta("120"), False),
        (meta("7"), meta("7"), True),
        (meta("abc", 3), meta("xyz", 2), True),  # not numeric: the generation decides
        (meta("abc", 1), meta("xyz", 2), False),
        (meta("abc"), meta("xyz"), None),  # nothing to compare: the wait polls
    ],
)
def test_a_watched_copy_is_used_only_when_not_older(
    candidate: dict[str, object], held: dict[str, object], expected: bool | None
) -> None:
    assert not_older(candidate, held) is expected


def test_any_copy_is_newer_than_none() -> None:
    assert not_older(meta("1"), None) is True
