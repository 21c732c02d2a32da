"""The checks of `imagePolicies` that need more than the definition's models: a semver
range the grammar of `fleet.source.semver` parses, and an image host some `registries`
entry serves (which host an entry without an address serves is its plugin's answer).

Run when a commit is targeted (`fleet.desired.fleet_units`, so `fleet validate`, `sync`
and `serve`) and by `fleet validate --no-render`; each problem at its file:line.
"""

from __future__ import annotations

from fleet.errors import FleetError, Problem
from fleet.images.policy import semver_range
from fleet.images.scan import unserved
from fleet.registry.access import ProviderSource, Registries
from fleet.spec.loader import FleetRepo


def check_image_policies(repo: FleetRepo, plugins: ProviderSource) -> None:
    """FleetError with one problem per bad range or unserved image host."""
    definition = repo.definition
    if not definition.image_policies:
        return
    registries = Registries(definition.registries, plugins)
    problems = []

    def line(*loc: str | int) -> int | None:
        return repo.document.line_of(("imagePolicies", *loc)) if repo.document else None

    for index, spec in enumerate(definition.image_policies):
        try:
            semver_range(spec)
        except FleetError as err:
            where = line(index, "policy", "semver", "range")
            problems.append(Problem(err.reason, str(repo.definition_file), where))
        refused = unserved(spec, registries)
        if refused is not None:
            problems.append(Problem(refused, str(repo.definition_file), line(index, "image")))
    if problems:
        raise FleetError(problems=problems)
