"""The render cache's on-disk layer: a later run (a new cache object) renders nothing."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import FleetError
from fleet.render.cache import RenderCache


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> list[dict[str, Any]]:
        self.calls += 1
        return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]


def test_a_second_cache_reads_the_first_ones_renders(tmp_path: Path) -> None:
    produce = Counter()
    first = RenderCache(directory=tmp_path)
    manifests, hit = first.get_or_render("unit:abc", produce)
    assert (hit, produce.calls) == (False, 1)
    files = list(tmp_path.rglob("*.json.gz"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600  # rendered Secrets stay private

    second = RenderCache(directory=tmp_path)
    again, hit = second.get_or_render("unit:abc", produce)
    assert (hit, produce.calls, second.disk_hits, second.misses) == (True, 1, 1, 0)
    assert again == manifests


def test_output_that_depends_on_more_than_the_key_is_not_persisted(tmp_path: Path) -> None:
    produce = Counter()
    RenderCache(directory=tmp_path).get_or_render("unit:remote", produce, persist=False)
    assert list(tmp_path.rglob("*.json.gz")) == []
    RenderCache(directory=tmp_path).get_or_render("unit:remote", produce, persist=False)
    assert produce.calls == 2


def test_a_torn_file_is_rendered_again(tmp_path: Path) -> None:
    produce = Counter()
    RenderCache(directory=tmp_path).get_or_render("unit:x", produce)
    (path,) = tmp_path.rglob("*.json.gz")
    path.write_bytes(b"not gzip")
    _, hit = RenderCache(directory=tmp_path).get_or_render("unit:x", produce)
    assert (hit, produce.calls) == (False, 2)


def test_errors_are_not_persisted(tmp_path: Path) -> None:
    def broken() -> list[dict[str, Any]]:
        raise FleetError("template error", file="chart/templates/a.yaml", line=3)

    with pytest.raises(FleetError):
        RenderCache(directory=tmp_path).get_or_render("unit:bad", broken)
    assert list(tmp_path.rglob("*.json.gz")) == []
