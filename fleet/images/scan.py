"""One scan of every image policy of a fleet: tags listed once per repository.

The hook point for `fleet images scan`, the serve loop and the webhooks:

    registries = Registries(definition.registries, plugins)   # fleet.registry.access
    try:
        result = scan_policies(definition, registries)           # or only={"web"}
    finally:
        registries.close()
    result.choices["web"]   # ImageChoice(policy, repository, tag, digest)
    result.errors["api"]    # one line, why policy "api" picked nothing this time

A fleet of 1,000 clusters has one scan, not 1,000: the policies are grouped by the
repository their image names (after the provider's normalization, so `nginx` and
`docker.io/library/nginx` are one), each repository's tags are listed once through its
provider's `list_tags` (the distribution API with `Link` pagination, or a plugin's own
such as Quay's), and every policy of that repository picks from the same listing
(`fleet.images.policy.select_tag`). With `digest: true` the chosen tag's manifest digest
is read with a manifest HEAD (all four manifest types accepted), once per (repository, tag).

Failures stay with the policies they concern: a registry that is down, refuses the
credential or answers nonsense is an error for the policies of its repositories only, and
every other repository is still scanned. An image whose host no `registries` entry serves
is an error too, and that host is never contacted (as for digest pinning). Errors are the
registry client's one-line messages, which never hold a credential or a token.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from fleet.errors import FleetError
from fleet.images.model import ImageChoice
from fleet.images.policy import select_tag
from fleet.registry.access import Registries
from fleet.registry.client import RegistryClient
from fleet.spec.definition import FleetDefinition
from fleet.spec.image_policies import ImagePolicySpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanResult:
    """What one scan found: a choice or an error for every policy scanned."""

    choices: dict[str, ImageChoice] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def unserved(spec: ImagePolicySpec, registries: Registries) -> str | None:
    """Why `spec`'s image may not be scanned (no `registries` entry serves its host), or
    None. The rule of digest pinning: an entry naming the host, or an entry without an
    address whose type is the provider that claims the host (`type: dockerhub`)."""
    if registries.spec_for(spec.host) is not None:
        return None
    return (
        f"image policy {spec.name}: registry host {spec.host or 'docker.io'!r} of "
        f"{spec.image} is not served by any entry of the definition's registries"
    )


def scan_policies(
    definition: FleetDefinition,
    registries: Registries,
    *,
    only: Collection[str] | None = None,
) -> ScanResult:
    """Scan the definition's image policies (those named in `only`, default all)."""
    result = ScanResult()
    groups: dict[tuple[str, str], list[ImagePolicySpec]] = {}
    clients: dict[tuple[str, str], RegistryClient] = {}
    for spec in definition.image_policies:
        if only is not None and spec.name not in only:
            continue
        refused = unserved(spec, registries)
        if refused is not None:
            result.errors[spec.name] = refused
            continue
        try:
            client, reference = registries.resolve(spec.image)
        except FleetError as err:
            result.errors[spec.name] = f"image policy {spec.name}: {err.reason}"
            continue
        key = (client.host, reference.repository)
        groups.setdefault(key, []).append(spec)
        clients[key] = client
    for key, specs in groups.items():
        _scan_repository(clients[key], key[1], specs, result)
    return result


def _scan_repository(
    client: RegistryClient, repository: str, specs: list[ImagePolicySpec], result: ScanResult
) -> None:
    """List `repository`'s tags once and let each of its policies pick."""
    try:
        tags = client.provider.list_tags(client, repository)
    except Exception as err:  # a provider plugin's failure stays with its policies
        reason = _reason(err)
        for spec in specs:
            result.errors[spec.name] = f"image policy {spec.name}: {reason}"
        return
    digests: dict[str, str] = {}
    for spec in specs:
        try:
            tag = select_tag(spec, tags)
            if tag is None:
                result.errors[spec.name] = (
                    f"image policy {spec.name}: no tag of {spec.image} matches "
                    f"({len(tags)} tags listed)"
                )
                continue
            digest = None
            if spec.digest:
                digest = digests.get(tag)
                if digest is None:
                    digest = digests[tag] = client.head_manifest(repository, tag).digest
            result.choices[spec.name] = ImageChoice(spec.name, spec.image, tag, digest)
        except Exception as err:  # one policy's failure stays its own
            result.errors[spec.name] = f"image policy {spec.name}: {_reason(err)}"


def _reason(err: Exception) -> str:
    if isinstance(err, FleetError):
        return err.reason
    log.warning("image scan: unexpected %s from a registry provider", type(err).__name__)
    return f"unexpected {type(err).__name__} from the registry provider"
