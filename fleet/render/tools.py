"""Finding the external tools renderers run (helm, kustomize, kubectl).

The order, the same for every tool:

1. the tool's variable (`FLEET_HELM`, `FLEET_KUSTOMIZE`): a path, or a name looked up on
   `PATH`; when it is set and names nothing executable, that is an error, never a silent
   fallback to another binary;
2. `PATH`;
3. the directory of the running Python interpreter (`sys.executable`'s, not resolved):
   `make testbin` links the helm and kustomize it builds into `.venv/bin`, so
   `.venv/bin/fleet` finds them without the virtualenv being activated.

Renderer plugins call `find_tool` (re-exported by `fleet.plugin`) and show the answer's
`source` in `fleet plugins`, and run the tool with `run_tool`: no shell, its own process
group, killed whole after `FLEET_RENDER_TIMEOUT` seconds (a hung chart download must not
block the scheduler's load of a commit).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet import config
from fleet.errors import FleetError, TransientError

FROM_VARIABLE = "from {variable}"
FROM_PATH = "on PATH"
FROM_INTERPRETER = "next to the Python interpreter"


@dataclass(frozen=True)
class Tool:
    """An executable found by `find_tool`, and where it was found (for `fleet plugins`)."""

    path: str
    source: str

    @property
    def name(self) -> str:
        """The executable's file name, e.g. to tell kubectl from kustomize."""
        return Path(self.path).name


class ToolNotConfigured(LookupError):
    """The tool's variable is set but names nothing executable."""

    def __init__(self, variable: str, value: str) -> None:
        super().__init__(f"{variable}={value} is not an executable")
        self.variable, self.value = variable, value


def configured_tool(settings: config.Settings, variable: str) -> str | None:
    """The value of a tool's variable: its typed `Settings` field, else the environment."""
    typed = {"FLEET_HELM": settings.helm, "FLEET_KUSTOMIZE": settings.kustomize}
    return typed[variable] if variable in typed else settings.env.get(variable) or None


def find_tool(
    names: str | tuple[str, ...],
    *,
    variable: str,
    settings: config.Settings | None = None,
    interpreter: str | None = None,
) -> Tool | None:
    """The first of `names` found in the order of the module doc, or None.

    With several `names` (kustomize, then kubectl) each is looked for on PATH and next to
    the interpreter before the next name is tried: a preferred tool anywhere beats a
    fallback on PATH. Raises `ToolNotConfigured` when `variable` is set but wrong.
    `settings` default to the process's (`fleet.config.current()`).
    """
    settings = settings or config.current()
    env = settings.env
    configured = configured_tool(settings, variable)
    if configured:
        found = shutil.which(configured, path=env.get("PATH"))
        if found is None:
            raise ToolNotConfigured(variable, configured)
        return Tool(found, FROM_VARIABLE.format(variable=variable))
    beside = Path(interpreter or sys.executable).parent
    for name in (names,) if isinstance(names, str) else names:
        on_path = shutil.which(name, path=env.get("PATH"))
        if on_path is not None:
            return Tool(on_path, FROM_PATH)
        local = shutil.which(name, path=str(beside))
        if local is not None:
            return Tool(local, FROM_INTERPRETER)
    return None


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
