"""Errors typed by what happens next, each one clear line (with file and line where there is one).

The kopf way: the type of an error says what its caller does next, so no caller ever parses
a message to decide.

- `UserError`: the user fixes a file or a setting. The CLI prints it as `path:line: message`
  and exits 1; a scheduler reports the commit and keeps the last good one in force.
- `TransientError(retry_after=...)`: the world was not ready (a cluster or a chart server
  down). Whoever decides to retry reads `retry_after` (seconds, a number) and says
  "will retry in Ns" itself; nothing remembers a transient error as a result (a render
  cache, a poller's "current commit").
- `PermanentError`: an apply the server refused for good (conflict, invalid, forbidden):
  the unit is ErrApplied and is not retried in a storm.

All three are `FleetError`s, the root, so `except FleetError` still catches every error
meant for a user. `FleetError("msg", file=..., line=...)` called directly (as plugins and
older code do) makes a `UserError`. Anything that is not a `FleetError` is a bug and keeps
its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    """The root: one or more problems. `str()` is one line per problem; `reason` the first."""

    def __new__(cls, *args: Any, **kwargs: Any) -> FleetError:
        # A bare FleetError is a user error: plugins and older code raise it for those.
        return super().__new__(UserError if cls is FleetError else cls, *args)

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

    @property
    def reason(self) -> str:
        """The first line of the first problem: what a status row or a log line shows."""
        text = str(self.problems[0])
        return text.splitlines()[0] if text else text


class UserError(FleetError):
    """The user fixes it (a file, a setting, a credential): file:line, exit 1, no retry."""


class TransientError(FleetError):
    """Retrying later may succeed; `retry_after` is the caller's hint, in seconds.

    The error does not say "will retry": the layer that decides to retry does, with its
    own delay (see `fleet.backoff`).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float = 10.0,
        file: str | Path | None = None,
        line: int | None = None,
        problems: Iterable[Problem] = (),
    ) -> None:
        super().__init__(message, file=file, line=line, problems=problems)
        self.retry_after = retry_after


class PermanentError(FleetError):
    """An apply the cluster refused for good: report it (ErrApplied), do not retry soon."""
