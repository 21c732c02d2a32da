"""`fleet events`: bad input is one line and exit 1; a file is read and filtered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.events.model import Event, EventType
from fleet.events.sinks import JsonLinesLog


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["events", "--since", "5x", "--file", "x"], "--since must be a duration like 30s"),
        (["events", "--file", str(tmp_path / "none")], "no such events file"),
        (["events", "-f", str(tmp_path)], "-f needs the Redis stream (--redis) or a --file"),
        (["events", "-o", "xml"], "unknown output format 'xml'"),
        (
            ["events", "--redis", "redis://:secret@127.0.0.1:1/0", "--fleet", "x"],
            "cannot read events from Redis at 127.0.0.1:1: ",
        ),
    ]
    for argv, expected in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and "secret" not in err, err


def test_a_file_is_read_filtered_and_garbage_lines_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    log = JsonLinesLog(path)
    for cluster in ("a", "b"):
        log.append(Event(EventType.UNIT_FAILED, "boom", fleet="f", bundle="web", cluster=cluster))
    log.append(Event(EventType.ROLLOUT_FAILED, "commit x failed", fleet="f", time=1.0))
    log.close()
    with path.open("a") as handle:
        handle.write("not json\n{}\n")
    assert main(["events", "--file", str(path), "-o", "json", "--cluster", "b"]) == 0
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (line["cluster"], line["type"]) == ("b", "unit.failed")
    assert main(["events", "--file", str(path), "--since", "1h"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 3 and "rollout.failed" not in "".join(rows)  # time 1.0 is old
