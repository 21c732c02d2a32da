"""Errors meant for users: one clear line each, with file and line where there is one.

The CLI prints a `FleetError` as `path:line: message` and exits 1; anything else that
escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One user-fixable problem at a place in a file (file and line optional)."""

    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}: {self.message}"
        if self.file:
            return f"{self.file}: {self.message}"
        return self.message


class FleetError(Exception):
    """One or more problems the user can fix. `str()` is one line per problem."""

    def __init__(
        self,
        message: str | None = None,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        problems: Iterable[Problem] = (),
    ) -> None:
        found = list(problems)
        if message is not None:
            found.insert(0, Problem(message, str(file) if file is not None else None, line))
        if not found:
            raise ValueError("FleetError needs a message or problems")
        self.problems: list[Problem] = found
        super().__init__("\n".join(str(p) for p in found))
