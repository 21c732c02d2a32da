"""The `fleet` command line.

Commands live in small modules that register themselves on `app`; `main` turns a
`FleetError` into one line per problem on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from fleet.errors import FleetError

app = typer.Typer(
    name="fleet",
    help="Multi-cluster GitOps: one Git repository, many Kubernetes clusters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _root() -> None:
    """Multi-cluster GitOps: one Git repository, many Kubernetes clusters."""


@app.command("version")
def version_command() -> None:
    """Print fleet's version."""
    from fleet import __version__

    typer.echo(__version__)


def _register_commands() -> None:
    # Imported for their side effect: each module adds its commands to `app`.
    from fleet.cli import definition_cmds, render_cmds, serve_cmds, sync_cmds  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fleet` console script; returns the exit code."""
    _register_commands()
    try:
        app(args=argv, prog_name="fleet")
    except FleetError as err:
        for problem in err.problems:
            print(str(problem) if problem.file else f"error: {problem}", file=sys.stderr)
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
