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
`source` in `fleet plugins`, and run the tool with `run_tool` (from `fleet.process`): no
shell, its own process group, killed whole after `FLEET_RENDER_TIMEOUT` seconds (a hung
chart download must not block the scheduler's load of a commit).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from fleet import config
from fleet.process import ToolResult, ToolTimeout, run_tool

__all__ = [
    "FROM_INTERPRETER",
    "FROM_PATH",
    "FROM_VARIABLE",
    "Tool",
    "ToolNotConfigured",
    "ToolResult",
    "ToolTimeout",
    "configured_tool",
    "find_tool",
    "run_tool",
]

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
