"""`fleet images scan`: what every image policy of the definition picks now.

One scan, as `fleet serve` does it (`fleet.images.scan.scan_policies`): each repository's
tags listed once through the definition's `registries` and the worker-side credentials of
this process's environment. Nothing is written: markers and commits are the write-back's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fleet.cli import FleetGroup, app, check_output
from fleet.cli.definition_cmds import RepoDir, _relative
from fleet.errors import FleetError

images_app = typer.Typer(
    cls=FleetGroup,  # its unset --help imports no pydantic either
    name="images",
    help="Image policies: which tag each one picks.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(images_app, name="images")


@images_app.command("scan")
def scan_command(
    repo_dir: RepoDir = Path("."),
    output: Annotated[
        str,
        typer.Option("--output", "-o", metavar="FORMAT", help="table (default) or json."),
    ] = "table",
) -> None:
    """Scan every image policy of the definition once and print its choice.

    One row per policy: its repository, the tag it picks, the digest (with `digest:
    true`) and, when it picked nothing, why. Exit 1 when any policy failed (a registry
    down or refusing, no tag matching); the other policies are still scanned.
    """
    from fleet.images.checks import check_image_policies
    from fleet.images.scan import scan_policies
    from fleet.plugin.manager import FleetPlugins
    from fleet.registry.access import Registries
    from fleet.spec.loader import load_repository
    from fleet.status.model import format_table

    check_output(output)
    try:
        repo = load_repository(repo_dir)
        plugins = FleetPlugins.load()
        check_image_policies(repo, plugins)
    except FleetError as err:
        raise _relative(err, repo_dir) from None
    registries = Registries(repo.definition.registries, plugins)
    try:
        result = scan_policies(repo.definition, registries)
    finally:
        registries.close()
    rows = []
    for spec in repo.definition.image_policies:
        choice = result.choices.get(spec.name)
        rows.append(
            {
                "policy": spec.name,
                "repository": spec.image,
                "tag": choice.tag if choice else None,
                "digest": choice.digest if choice else None,
                "error": result.errors.get(spec.name),
            }
        )
    if output == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        header = ["POLICY", "REPOSITORY", "TAG", "DIGEST", "ERROR"]
        table = [
            [str(r["policy"]), str(r["repository"]), r["tag"] or "-", r["digest"] or "-",
             r["error"] or ""]
            for r in rows
        ]  # fmt: skip
        typer.echo(format_table(header, table), nl=False)
    if not result.ok:
        raise typer.Exit(1)
