"""A commit's credentials against the operator's host bindings, at file:line.

`fleet.credhosts` refuses a credential sent to a host its binding
(`FLEET_<KIND>_HOSTS_<NAME>`) does not list, at the moment of the request. This module
makes the same check when a commit loads (`fleet validate`, `fleet sync`, the scheduler
and the workers, through `fleet.desired.fleet_units`), so a commit that points a bound
credential elsewhere is one `file:line` problem per entry before anything is rendered or
asked, instead of a refusal deep in a scan or a gate:

- `registries[]` with a `credential` and a `host`/`url` (`type: dockerhub` without one:
  `docker.io`); other entries without an address are checked when a reference names
  their host;
- `metricProviders[]` with a `credential`: the host of `address`;
- gates (the definition's and bundles') with `credential` and `url` parameters (the
  `http` gate): the host of `url`; a templated host (`{{cluster}}.apps.example.com`) is
  matched as written, so it passes a glob entry (`*.apps.example.com`) and each rendered
  URL is checked again when the gate runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from fleet import credhosts
from fleet.errors import FleetError, Problem
from fleet.spec.bundle_options import RolloutStrategy
from fleet.spec.definition import RegistrySpec, Rollout
from fleet.spec.loader import FleetRepo
from fleet.spec.rollout_spec import GateSpec
from fleet.spec.yamlload import Loc


def check_credential_hosts(repo: FleetRepo, env: Mapping[str, str]) -> None:
    """FleetError with every credential the commit sends to a host its binding in `env`
    does not list (see the module docstring); unbound credentials only log a warning."""
    definition, file = repo.definition, str(repo.definition_file)

    def line(loc: Loc) -> int | None:
        return repo.document.line_of(loc) if repo.document else None

    problems: list[Problem] = []
    for i, spec in enumerate(definition.registries):
        host = _registry_host(spec)
        if spec.credential and host is not None:
            reason = credhosts.refusal(
                credhosts.REGISTRY, spec.credential, *credhosts.registry_endpoint(host), env
            )
            if reason is not None:
                key = "url" if spec.url else "host" if spec.host else "credential"
                problems.append(Problem(f"registry {spec.name!r}: {reason}", file,
                                        line(("registries", i, key))))  # fmt: skip
    for i, provider in enumerate(definition.metric_providers):
        if provider.credential:
            reason = credhosts.url_refusal(
                credhosts.METRICS, provider.credential, provider.address, env
            )
            if reason is not None:
                at = line(("metricProviders", i, "address"))
                problems.append(Problem(f"metric provider {provider.name!r}: {reason}", file, at))
    for loc, gate in definition_gates(definition.rollout):
        if (reason := _gate_refusal(gate, env)) is not None:
            problems.append(Problem(f"gate {gate.name or gate.type}: {reason}", file,
                                    line((*loc, "url"))))  # fmt: skip
    for bundle in repo.bundles:
        for loc, gate in strategy_gates(bundle.options.rollout_strategy):
            if (reason := _gate_refusal(gate, env)) is not None:
                where, at = bundle.where((*loc, "url"))
                problems.append(Problem(f"gate {gate.name or gate.type}: {reason}", where, at))
    if problems:
        raise FleetError(problems=problems)


def definition_gates(rollout: Rollout | None) -> Iterator[tuple[Loc, GateSpec]]:
    """Every gate of the definition's `rollout`, with its location."""
    if rollout is None:
        return
    for i, spec in enumerate(rollout.gates):
        yield ("rollout", "gates", i), spec
    for w, wave in enumerate(rollout.waves):
        for i, spec in enumerate(wave.gates):
            yield ("rollout", "waves", w, "gates", i), spec


def strategy_gates(strategy: RolloutStrategy | None) -> Iterator[tuple[Loc, GateSpec]]:
    """Every gate of a bundle's `rolloutStrategy`, with its location in the bundle."""
    if strategy is None:
        return
    for i, spec in enumerate(strategy.gates):
        yield ("rolloutStrategy", "gates", i), spec
    for p, part in enumerate(strategy.partitions):
        for i, spec in enumerate(part.gates):
            yield ("rolloutStrategy", "partitions", p, "gates", i), spec


def _gate_refusal(gate: GateSpec, env: Mapping[str, str]) -> str | None:
    credential, url = gate.params.get("credential"), gate.params.get("url")
    if not isinstance(credential, str) or not credential or not isinstance(url, str):
        return None
    return credhosts.url_refusal(credhosts.GATE, credential, url, env)


def _registry_host(spec: RegistrySpec) -> str | None:
    """The host a registry entry's credential goes to, as `FLEET_REGISTRY_HOSTS_` lists it."""
    if spec.host:
        return spec.host.lower()
    if spec.url:
        url = spec.url if "://" in spec.url else f"https://{spec.url}"
        return url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2].lower()
    return "docker.io" if spec.type == "dockerhub" else None
