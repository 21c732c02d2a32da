"""Every `--help` reads as written, and `--help` imports nothing heavy.

The command tree is walked from the click command typer builds, so a new command or
subcommand is covered without being listed here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer
from typer.core import TyperGroup

from fleet.cli import _register_commands, app, main

PLACEHOLDER = re.compile(r"<[^<>\s]+>")


def commands() -> Iterator[tuple[list[str], typer.core.TyperCommand | TyperGroup]]:
    """(argv path, command) for the root and every command and subcommand below it."""
    _register_commands()
    root = typer.main.get_command(app)

    def walk(
        path: list[str], command: typer.core.TyperCommand | TyperGroup
    ) -> Iterator[tuple[list[str], typer.core.TyperCommand | TyperGroup]]:
        yield path, command
        if isinstance(command, TyperGroup):
            for name, sub in sorted(command.commands.items()):
                yield from walk([*path, name], sub)

    yield from walk([], root)


def rendered_help(path: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*path, "--help"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def squeezed(text: str) -> str:
    """Text without whitespace: wrapping and indentation may differ, nothing else may."""
    return "".join(text.replace("\b", "").split())


COMMANDS = list(commands())


def test_the_tree_has_every_command() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "version", "validate", "render", "sync", "plan", "serve", "worker"} <= names


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "fleet" for p, _ in COMMANDS]
)
def test_help_shows_every_docstring_and_option_text_as_written(
    path: list[str],
    command: typer.core.TyperCommand | TyperGroup,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = rendered_help(path, capsys)
    texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
    for text in texts:
        for placeholder in PLACEHOLDER.findall(text):
            assert placeholder in out, f"fleet {' '.join(path)} --help lost {placeholder}"
        assert squeezed(text) in squeezed(out), f"fleet {' '.join(path)} --help rewrote:\n{text}"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (["worker"], "(queues fleet.apply.<region>)."),
        (["worker"], "kubeconfig.path must lie in FLEET_KUBECONFIG_DIR"),
        (["sync"], "kubeconfig.path must lie in FLEET_KUBECONFIG_DIR"),
        (["render"], "-l, --label KEY=VALUE Bundle mode: a cluster label KEY=VALUE"),
        (["schema"], "`fleet schema > fleet.schema.json`"),
        (["plan"], "--exit-code Exit 1 when something changes, 2 on error, 0 if not."),
        (["plan"], "Needs no kubeconfig or cluster credential"),
    ],
)
def test_specific_help_texts(
    path: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expected in " ".join(rendered_help(path, capsys).split())


def test_a_verbatim_block_keeps_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert "\n    # yaml-language-server: $schema=fleet.schema.json\n" in rendered_help(
        ["schema"], capsys
    )


HEAVY = ("kubernetes", "git", "celery", "redis", "pydantic", "rich", "pluggy", "yaml")


def test_help_and_version_import_nothing_heavy() -> None:
    """The structural half of the start-up budget (tests/bench/bench_cli.py has the time):
    in one fresh interpreter, every command's --help and `fleet version` import no module
    of the pipeline's heavy dependencies."""
    runs = [[*path, "--help"] for path, _ in COMMANDS] + [["version"]]
    code = (
        "import contextlib, io, sys\n"
        "from fleet.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    codes = [main(argv) for argv in {runs!r}]\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print(set(codes), heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "{0} []", done.stderr
