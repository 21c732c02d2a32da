"""Fixtures for the Git source tests: a private cache and a git server a test may stop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import GitServer


@pytest.fixture
def source_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh fleet cache root for one test (FLEET_CACHE_DIR), and its sources dir."""
    root = tmp_path / "fleet-cache"
    monkeypatch.setenv("FLEET_CACHE_DIR", str(root))
    for name in list(os.environ):
        if name.startswith(("FLEET_GIT_TOKEN", "FLEET_GIT_USERNAME", "FLEET_GIT_SSH")):
            monkeypatch.delenv(name)
    return root / "sources"


@pytest.fixture
def private_git_server(tmp_path: Path) -> Iterator[GitServer]:
    """A `git daemon` of this test's own, so stopping it does not disturb other tests."""
    server = GitServer(tmp_path / "private-git" / "repos")
    server.start()
    yield server
    server.stop()
