"""Which paths the code under test opens or lists, recorded with one audit hook.

`sys.addaudithook` hooks can never be removed, so the hook is installed once per process
here and records only inside `recorded_reads()`; tests that prove "nothing outside the
repository is read" share it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_WATCHED: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    watching = _WATCHED is not None and event in ("open", "os.scandir", "os.listdir")
    if watching and args and isinstance(args[0], str | bytes | os.PathLike):
        assert _WATCHED is not None
        _WATCHED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@contextmanager
def recorded_reads() -> Iterator[list[str]]:
    """Yield a list that collects every path opened or listed until the block ends."""
    global _WATCHED
    watched: list[str] = []
    _WATCHED = watched
    try:
        yield watched
    finally:
        _WATCHED = None
