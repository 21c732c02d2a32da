"""Running an external program (helm, kustomize, git) the one way fleet does it.

A repository is untrusted input, and the programs fleet runs on it fetch charts, bases and
repositories from servers the repository names. So every run is bounded: no shell (the
arguments are passed as they are), its own session (process group), and a timeout
(`Settings.render_timeout`, `FLEET_RENDER_TIMEOUT`) after which the program and everything
it started (helm plugins and post-renderers, kustomize's git) are killed together. A hung
chart download then costs one timeout, not the scheduler's load of a commit.

This sits below `spec` and `render`: loading a bundle resolves kustomize remote references
with `git ls-remote` (see `fleet.spec.kustomize_remote`), rendering runs helm and kustomize.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet import config
from fleet.errors import FleetError, TransientError


class ToolTimeout(TransientError):
    """A tool ran longer than its timeout and was killed with its whole process group.

    Transient: a hung chart server may answer later, so the failure is never cached.
    """


@dataclass(frozen=True)
class ToolResult:
    """What a finished tool run left: exit code, stdout, stderr."""

    returncode: int
    stdout: bytes
    stderr: bytes


def run_tool(
    argv: Sequence[str],
    *,
    what: str,
    stdin: bytes | None = None,
    timeout: float | None = None,
    settings: config.Settings | None = None,
    file: str | Path | None = None,
) -> ToolResult:
    """Run an external tool (helm, kustomize, git) the one way fleet runs them.

    No shell: `argv` is passed as is. The tool gets its own session (process group), so
    on expiry of `timeout` (default `Settings.render_timeout`, `FLEET_RENDER_TIMEOUT`)
    the tool and everything it started (helm plugins, kustomize's git) are killed
    together, and `ToolTimeout` says `what` timed out. Its environment is the settings'.
    A tool that cannot start is a FleetError naming `what`. Errors name `file` (the
    bundle's fleet.yaml) when given.
    """
    settings = settings or config.current()
    limit = settings.render_timeout if timeout is None else timeout
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(settings.env),
            start_new_session=True,
        )
    except OSError as err:
        raise FleetError(
            f"{what}: cannot run {argv[0]}: {err.strerror or err}", file=file
        ) from None
    try:
        stdout, stderr = process.communicate(stdin, timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise ToolTimeout(
            f"{what} timed out after {limit:g} s (FLEET_RENDER_TIMEOUT) and was stopped",
            retry_after=limit,
            file=file,
        ) from None
    except BaseException:
        _kill_group(process)
        raise
    return ToolResult(process.returncode, stdout, stderr)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the tool's process group, then reap it (pipes a stray child keeps open are
    closed rather than waited for)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()
