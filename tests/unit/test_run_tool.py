"""run_tool: how fleet runs helm, kustomize and git (no shell, own process group, timeout)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fleet.config import Settings
from fleet.errors import FleetError, TransientError, UserError
from fleet.render.tools import ToolTimeout, run_tool


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(") ", 1)[1][0] != "Z"


def test_a_tool_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    """Like helm running a plugin or kustomize running git: the grandchild dies too."""
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pidfile}; wait"
    settings = Settings.from_env({"PATH": os.environ["PATH"], "FLEET_RENDER_TIMEOUT": "1"})
    with pytest.raises(ToolTimeout) as err:
        run_tool(["sh", "-c", script], what="helm template of bundle 'web'", settings=settings)
    assert isinstance(err.value, TransientError)
    assert str(err.value) == (
        "helm template of bundle 'web' timed out after 1 s (FLEET_RENDER_TIMEOUT) and was stopped"
    )
    child = int(pidfile.read_text())
    for _ in range(100):  # SIGKILL is asynchronous; the orphan is reaped by init
        if not alive(child):
            break
        time.sleep(0.05)
    assert not alive(child)


def test_output_stdin_and_environment() -> None:
    settings = Settings.from_env({"PATH": os.environ["PATH"], "GREETING": "hi"})
    done = run_tool(
        ["sh", "-c", 'cat; echo " $GREETING"; echo oops >&2; exit 3'],
        what="x",
        stdin=b"in",
        settings=settings,
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, b"in hi\n", b"oops\n")
    with pytest.raises(FleetError, match=r"^x: cannot run /nonexistent/tool: No such file"):
        run_tool(["/nonexistent/tool"], what="x", settings=settings)


def test_the_timeout_setting() -> None:
    assert Settings.from_env({}).render_timeout == 120.0
    assert Settings.from_env({"FLEET_RENDER_TIMEOUT": "7.5"}).render_timeout == 7.5
    for bad in ("0", "-1", "inf", "soon"):
        with pytest.raises(UserError, match="FLEET_RENDER_TIMEOUT must be a"):
            Settings.from_env({"FLEET_RENDER_TIMEOUT": bad})
