"""`fleet validate`, `fleet targets`, `fleet schema`: the fleet definition and targeting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleet.cli import app, check_output
from fleet.errors import FleetError, Problem

if TYPE_CHECKING:
    from fleet.spec.loader import FleetRepo
    from fleet.targeting.units import DeploymentUnit

RepoDir = Annotated[
    Path,
    typer.Argument(
        metavar="REPO_DIR", help="Repository checkout holding the root fleet.yaml (kind: Fleet)."
    ),
]


def _display(path: str | None) -> str | None:
    """Paths inside the current directory are printed relative to it."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _relative(err: FleetError, repo_dir: Path | None = None) -> FleetError:
    """Paths relative to the current directory; renderers name files relative to the repo."""

    def where(file: str | None) -> str | None:
        relative = file and repo_dir is not None and not Path(file).is_absolute()
        if relative and repo_dir is not None and (repo_dir / str(file)).exists():
            file = str(repo_dir / str(file))
        return _display(file)

    return FleetError(problems=[Problem(p.message, where(p.file), p.line) for p in err.problems])


@app.command("validate")
def validate_command(
    repo_dir: RepoDir = Path("."),
    render: Annotated[
        bool,
        typer.Option(
            "--render/--no-render",
            help="Also render every deployment unit, as sync would (needs helm/kustomize).",
        ),
    ] = True,
) -> None:
    """Check the fleet definition, every bundle, every per-cluster template and render.

    Every unit is rendered the way `fleet sync` and `fleet serve` render a commit, so a
    manifest Kubernetes would refuse (`metadata: oops`) is a problem here too. Exit 0 and
    print a summary when everything is valid; exit 1 with one `path:line: message` line per
    problem otherwise. Nothing is deployed and no cluster is contacted. A notifier URL,
    metric provider address or gate URL outside the operator's FLEET_ALLOWED_HOSTS (or
    a link-local address) is a problem too, and so is a credential sent to a host
    its binding (FLEET_REGISTRY_HOSTS_<NAME>, FLEET_METRICS_HOSTS_<NAME>,
    FLEET_GATE_HOSTS_<NAME>) does not list.
    """
    from fleet import config
    from fleet.desired import check_urls
    from fleet.spec.credential_hosts import check_credential_hosts
    from fleet.spec.loader import load_repository
    from fleet.targeting.dependencies import reject_dependency_cycles
    from fleet.targeting.units import compute_units

    try:
        repo = load_repository(repo_dir)
        check_urls(repo)
        check_credential_hosts(repo, config.current().env)
        if render:
            units = _render_all(repo)
        else:  # no registry is asked either: OCI chart versions are not resolved
            from fleet.desired import check_gates, check_notifiers, check_registries
            from fleet.images.checks import check_image_policies
            from fleet.plugin.manager import FleetPlugins

            plugins = FleetPlugins.load()
            check_registries(repo, plugins)
            check_image_policies(repo, plugins)
            check_notifiers(repo, plugins)
            check_gates(repo, plugins)
            units = compute_units(repo)
            reject_dependency_cycles(repo, units)
    except FleetError as err:
        raise _relative(err, repo_dir) from None
    typer.echo(
        f"ok: {len(repo.definition.clusters)} clusters, {len(repo.bundles)} bundles, "
        f"{len(units)} deployment units"
    )


def _render_all(repo: FleetRepo) -> list[DeploymentUnit]:
    """Target and render every unit as a sync would, in memory (no render cache on disk)."""
    from fleet.desired import DesiredState
    from fleet.plugin.manager import FleetPlugins

    plugins = FleetPlugins.load()
    plugins.raise_for_failures()
    state = DesiredState.target(repo, "", plugins)
    state.render_all()
    return state.units


@app.command("targets")
def targets_command(
    repo_dir: RepoDir = Path("."),
    output: Annotated[
        str,
        typer.Option("--output", "-o", metavar="FORMAT", help="table (default) or json."),
    ] = "table",
) -> None:
    """Show which bundle goes to which cluster, with its customization and deployment id.

    The deployment id changes exactly when what the cluster should run changes (bundle
    content, merged options or renderer).
    """
    from fleet.desired import fleet_units
    from fleet.plugin.manager import FleetPlugins
    from fleet.spec.loader import load_repository
    from fleet.status.model import format_table

    check_output(output)
    try:
        # the renderers' identities are part of the id: the same ids `fleet sync` records
        units = fleet_units(load_repository(repo_dir), FleetPlugins.load())
    except FleetError as err:
        raise _relative(err) from None
    if output == "json":
        rows: list[dict[str, Any]] = [
            {
                "bundle": u.bundle,
                "cluster": u.cluster,
                "customization": u.customization,
                "deploymentId": u.deployment_id,
                "region": u.region,
                "renderer": u.renderer,
            }
            for u in units
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    header = ["BUNDLE", "CLUSTER", "CUSTOMIZATION", "DEPLOYMENT ID"]
    table = [[u.bundle, u.cluster, u.customization or "-", u.short_id] for u in units]
    typer.echo(format_table(header, table), nl=False)


@app.command("schema")
def schema_command(
    bundle: Annotated[
        bool,
        typer.Option("--bundle", help="Schema of a bundle's fleet.yaml instead of the root."),
    ] = False,
) -> None:
    """Print the JSON Schema of the root fleet.yaml (or of a bundle fleet.yaml).

    For editors: `fleet schema > fleet.schema.json`, then this line at the top of
    fleet.yaml:

    \b
      # yaml-language-server: $schema=fleet.schema.json
    """
    from fleet.spec.bundle_options import BundleOptions
    from fleet.spec.definition import FleetDefinition

    model = BundleOptions if bundle else FleetDefinition
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "fleet bundle fleet.yaml" if bundle else "fleet definition (kind: Fleet)"
    typer.echo(json.dumps(schema, indent=2))
