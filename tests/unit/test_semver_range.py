"""Semver ranges over tag names, and the poller's backoff and webhook matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.source.git import GitSource, Revision
from fleet.source.poll import Poller
from fleet.source.semver import parse_range
from fleet.source.webhooks import PushEvent
from fleet.spec.definition import SourceSpec, poll_interval

TAGS = ["v0.9.0", "v1.2.0", "v1.4.1", "v1.4.7", "1.10.0", "v2.0.0", "v2.1.0-rc.1", "latest"]


@pytest.mark.parametrize(
    ("text", "best"),
    [
        (">=1.2.0 <2", "1.10.0"),
        (">=1.2.0, <2.0.0", "1.10.0"),
        (">= 1.2 < 2", "1.10.0"),
        ("~1.4", "v1.4.7"),
        ("~1.4.2", "v1.4.7"),
        ("~1", "1.10.0"),
        ("^1.2", "1.10.0"),
        ("^0.9", "v0.9.0"),
        ("1.4.x", "v1.4.7"),
        ("1.4", "v1.4.7"),
        ("1", "1.10.0"),
        ("*", "v2.0.0"),
        ("1.4.1", "v1.4.1"),
        ("=1.2.0", "v1.2.0"),
        (">1.4", "v2.0.0"),
        (">1.4 <2", "1.10.0"),
        ("<=1.4", "v1.4.7"),
        ("<1.4.7", "v1.4.1"),
        ("<1 || ~1.4", "v1.4.7"),
        (">=2.1.0-rc.0", "v2.1.0-rc.1"),
        (">=3", None),
    ],
)
def test_best_tag(text: str, best: str | None) -> None:
    parsed = parse_range(text)
    assert parsed is not None
    assert parsed.best(TAGS) == best


@pytest.mark.parametrize("text", ["main", "feature/x", "v1.2.3.4", "", "||", ">=", "1.x-rc"])
def test_not_a_range(text: str) -> None:
    assert parse_range(text) is None


def test_caret_on_zero_versions() -> None:
    tags = ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0"]
    assert parse_range("^0.0.3").best(tags) == "0.0.3"  # type: ignore[union-attr]
    assert parse_range("^0.2.3").best(tags) == "0.2.9"  # type: ignore[union-attr]


class ScriptedSource(GitSource):
    """A source whose update() follows a script: a sha, or an error message."""

    def __init__(self, script: list[str], tmp: Path) -> None:
        super().__init__("https://github.com/acme/fleet-config.git", "main", cache_dir=tmp)
        self.script = script

    def update(self) -> Revision:
        step = self.script.pop(0)
        if step.startswith("error"):
            raise FleetError(f"git fetch {self.display_url} failed: {step}\nsecond line")
        return Revision(self.url, self.ref, step * 40, Path("/"), None, "m", "a")  # type: ignore[arg-type]


def test_backoff_doubles_capped_at_interval_and_resets(tmp_path: Path) -> None:
    source = ScriptedSource(["a", "error 1", "error 2", "error 3", "error 4", "b", "b"], tmp_path)
    seen: list[str] = []
    now = [100.0]
    poller = Poller(source, 5, lambda r: seen.append(r.sha[0]), clock=lambda: now[0])
    assert poller.poll_once().next_poll_in == 5
    results = [poller.poll_once() for _ in range(4)]
    assert [r.next_poll_in for r in results] == [1, 2, 4, 5]
    assert all(r.current is not None and r.current.sha[0] == "a" for r in results)
    assert results[0].error is not None and results[0].error.endswith("error 1")
    assert poller.next_poll_at == 105 and not poller.due
    now[0] = 105
    assert poller.due
    back = poller.poll_once()
    assert back.ok and back.changed and back.next_poll_in == 5 and back.failures == 0
    assert not poller.poll_once().changed
    assert seen == ["a", "b"]
    durations, failures = poller.take_fetch_stats()  # fleet_git_fetch_* metrics
    assert (len(durations), failures) == (7, 4)
    assert poller.take_fetch_stats() == ([], 0)


def event(url: str, ref: str) -> PushEvent:
    return PushEvent("github", [url], ref, "f" * 40)


def test_wants_matches_repository_and_ref(tmp_path: Path) -> None:
    poller = Poller(
        GitSource("git@github.com:acme/fleet-config.git", "main", cache_dir=tmp_path), 60, print
    )
    assert poller.wants(event("https://github.com/acme/fleet-config.git", "refs/heads/main"))
    assert not poller.wants(event("https://github.com/acme/fleet-config.git", "refs/heads/dev"))
    assert not poller.wants(event("https://github.com/acme/other.git", "refs/heads/main"))
    ranged = Poller(
        GitSource("https://github.com/acme/fleet-config", "~1.4", cache_dir=tmp_path), 60, print
    )
    assert ranged.wants(event("https://github.com/acme/fleet-config.git", "refs/tags/v1.4.8"))
    assert not ranged.wants(event("https://github.com/acme/fleet-config.git", "refs/heads/main"))


def test_poll_interval_from_the_definition() -> None:
    assert poll_interval(None) == 60
    assert poll_interval(SourceSpec.model_validate({"pollInterval": "1h30m"})) == 5400
    assert poll_interval(SourceSpec.model_validate({"pollInterval": 15})) == 15
