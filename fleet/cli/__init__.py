"""The `fleet` command line.

Commands live in small modules that register themselves on `app`; `main` turns a
`FleetError` (a user error, or a transient one such as an unreachable cluster: nothing here
retries) into one line per problem on stderr and exit code 1, never a traceback.

Start-up is kept short (`fleet --help` in about 0.2 s, as kubectl answers): the command
modules import only typer and `fleet.errors` at module level, and each command imports
the pipeline it runs (kubernetes client, GitPython, Celery, pydantic models) when it runs.
Help is plain text (`rich_markup_mode=None`): typer's rich and markdown renderers cost
0.15 s of imports and would swallow placeholders such as `fleet.apply.<region>`.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from fleet.errors import FleetError


def _false_when_unset(option: Any) -> Any:
    """Typer coerces a parameter's value through a pydantic TypeAdapter when a command runs,
    even an unset `--help` flag (its value is None, not False): that imports pydantic, 0.2 s,
    for `fleet version` and every `fleet CMD --help`. A bool flag's value skips coercion."""
    if option is not None and option.default is None:
        option.default = False
    return option


class FleetGroup(TyperGroup):
    """The root group: its unset `--help` does not import pydantic."""

    def get_help_option(self, ctx: Any) -> Any:
        return _false_when_unset(super().get_help_option(ctx))


class FleetCommand(TyperCommand):
    """A command without other parameters that should not import pydantic (`version`)."""

    def get_help_option(self, ctx: Any) -> Any:
        return _false_when_unset(super().get_help_option(ctx))


app = typer.Typer(
    cls=FleetGroup,
    name="fleet",
    help="Multi-cluster GitOps: one Git repository, many Kubernetes clusters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help reads as written; rich is not imported (see above)
)


@app.callback()
def _root() -> None:
    """Multi-cluster GitOps: one Git repository, many Kubernetes clusters."""


@app.command("version", cls=FleetCommand)
def version_command() -> None:
    """Print fleet's version."""
    from fleet import __version__

    typer.echo(__version__)


def check_output(output: str) -> None:
    """`-o table|json`, checked before any work starts."""
    if output not in ("table", "json"):
        raise FleetError(f"unknown output format {output!r} (use table or json)")


def print_problems(err: FleetError) -> None:
    """One stderr line per problem: `path:line: message`, or `error: message`."""
    for problem in err.problems:
        print(str(problem) if problem.file else f"error: {problem}", file=sys.stderr)


def _register_commands() -> None:
    # Imported for their side effect: each module adds its commands to `app`.
    from fleet.cli import (  # noqa: F401
        definition_cmds,
        events_cmds,
        explain_cmds,
        images_cmds,
        plan_cmds,
        render_cmds,
        rollout_cmds,
        serve_cmds,
        sync_cmds,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fleet` console script; returns the exit code."""
    _register_commands()
    try:
        app(args=argv, prog_name="fleet")
    except FleetError as err:
        print_problems(err)
        return 1
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        return 130
    return 0


def run() -> None:
    """Console-script wrapper: exit with `main`'s code."""
    raise SystemExit(main())
