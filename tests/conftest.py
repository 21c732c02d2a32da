"""Test tiers and the real binaries the tests use.

Tests are marked by folder: tests/unit -> `unit`, tests/integration -> `integration`,
tests/e2e -> `e2e`. The binaries built by tests/testbin/build.sh are put first on PATH, so
fleet finds the real helm and kustomize the same way a user's shell would.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTBIN = ROOT / "tests" / "testbin"
TESTBIN_BIN = TESTBIN / "bin"

# Which build.sh tool produces each binary, for the message when one is missing.
BUILD_TOOL = {
    "etcd": "etcd",
    "kube-apiserver": "kubernetes",
    "kube-controller-manager": "kubernetes",
    "kube-scheduler": "kubernetes",
    "kwok": "kwok",
    "helm": "helm",
    "kustomize": "kustomize",
}

os.environ["PATH"] = f"{TESTBIN_BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        tier = parts[0] if parts else ""
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))


def find_binary(name: str) -> str:
    """Path of a real binary, or fail the test naming the command that builds it."""
    found = shutil.which(name)
    if found:
        return found
    tool = BUILD_TOOL.get(name, name)
    pytest.fail(
        f"{name} not found on PATH or in {TESTBIN_BIN}; build it with: "
        f"tests/testbin/build.sh {tool}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def binary() -> Callable[[str], str]:
    """`binary("helm")` -> path to the real helm; fails with the build command if missing."""
    return find_binary
