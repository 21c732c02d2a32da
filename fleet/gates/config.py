"""A commit's gates, built once when it is loaded, and how each wave is verified.

`GateSet.build` asks the gate plugins (`fleet_gate`) to build every gate the commit
declares: the definition's `rollout.gates` (every wave), each definition wave's `gates`,
and a bundle's `rolloutStrategy.gates` (every wave of that bundle) and its partitions'
`gates`. A gate no plugin serves, or whose parameters its plugin refuses, is a problem at
its file:line, so `fleet validate` and every sync reject the commit before a cluster is
touched. `wave_settings` is then what the rollout tracker needs for one wave of one
bundle, from the wave as `fleet.rollout.waves` resolved it (its gate entries in order:
rollout, bundle, wave; its bake time; whether a failure rolls back): the gates built for
those entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fleet.gates.model import Gate, GateConfigError
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.definition import MetricProvider, Rollout
from fleet.spec.rollout_spec import GateSpec, gate_names

Loc = tuple[str | int, ...]
GateBuilder = Callable[[GateSpec, Mapping[str, MetricProvider]], Gate | None]


@dataclass(frozen=True, slots=True)
class ConfiguredGate:
    """A gate as the commit declares it (`spec`), built by its plugin (`gate`)."""

    name: str
    spec: GateSpec
    gate: Gate


@dataclass(frozen=True, slots=True)
class WaveSettings:
    """How one wave of one bundle is verified."""

    gates: tuple[ConfiguredGate, ...] = ()
    bake: int = 0  # seconds
    auto_rollback: bool = False

    @property
    def verified(self) -> bool:
        """Anything beyond "every unit Ready": such a wave can fail (and roll back)."""
        return bool(self.gates or self.bake or self.auto_rollback)


@dataclass(frozen=True, slots=True)
class GateProblem:
    """A gate that cannot be built: `where` is "definition" or a bundle name; `loc` the
    path to its key in that file's YAML."""

    where: str
    loc: Loc
    message: str


@dataclass
class GateSet:
    """Every gate of one commit, built (see module docstring)."""

    rollout: Rollout | None = None
    options: Mapping[str, BundleOptions] = field(default_factory=dict)
    common: tuple[ConfiguredGate, ...] = ()
    by_wave: dict[str, tuple[ConfiguredGate, ...]] = field(default_factory=dict)
    by_bundle: dict[str, tuple[ConfiguredGate, ...]] = field(default_factory=dict)
    by_partition: dict[tuple[str, str], tuple[ConfiguredGate, ...]] = field(default_factory=dict)
    problems: list[GateProblem] = field(default_factory=list)
    built: dict[str, Gate] = field(default_factory=dict)  # by `spec_key`

    @classmethod
    def build(
        cls,
        rollout: Rollout | None,
        options: Mapping[str, BundleOptions],
        providers: Sequence[MetricProvider],
        build: GateBuilder,
        known_types: Callable[[], set[str]],
    ) -> GateSet:
        """Build every gate; unbuildable ones are in `problems` (the rest still works)."""
        by_name = {p.name: p for p in providers}
        found = cls(rollout, dict(options))

        def make(specs: Sequence[GateSpec], where: str, loc: Loc) -> tuple[ConfiguredGate, ...]:
            built, problems = configure_gates(specs, lambda s: build(s, by_name), loc, known_types)
            found.problems += [GateProblem(where, p_loc, msg) for p_loc, msg in problems]
            found.built.update({spec_key(g.spec): g.gate for g in built})
            return tuple(built)

        if rollout is not None:
            found.common = make(rollout.gates, "definition", ("rollout", "gates"))
            for i, wave in enumerate(rollout.waves):
                found.by_wave[wave.name] = make(wave.gates, "definition",
                                                ("rollout", "waves", i, "gates"))  # fmt: skip
        for bundle, opts in options.items():
            strategy = opts.rollout_strategy
            if strategy is None:
                continue
            found.by_bundle[bundle] = make(strategy.gates, bundle, ("rolloutStrategy", "gates"))
            for i, part in enumerate(strategy.partitions):
                loc = ("rolloutStrategy", "partitions", i, "gates")
                found.by_partition[(bundle, part.name or f"partition-{i}")] = make(
                    part.gates, bundle, loc
                )
        return found


def spec_key(spec: GateSpec) -> str:
    """Equal gate entries, equal keys (a wave's gate is found again by what it says)."""
    return json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True, default=str)


def wave_settings(
    gates: GateSet, specs: Sequence[GateSpec], bake: int, auto_rollback: bool
) -> WaveSettings:
    """A wave's settings from its resolved gate entries (`fleet.rollout.waves.WavePlan`),
    each with the gate built for it when the commit was loaded."""
    names = gate_names(list(specs))
    configured = tuple(
        ConfiguredGate(name, spec, gates.built[spec_key(spec)])
        for name, spec in zip(names, specs, strict=True)
        if spec_key(spec) in gates.built
    )
    return WaveSettings(configured, bake, auto_rollback)


def configure_gates(
    specs: Sequence[GateSpec],
    build: Callable[[GateSpec], Gate | None],
    loc: Loc,
    known_types: Callable[[], set[str]],
) -> tuple[list[ConfiguredGate], list[tuple[Loc, str]]]:
    """Build each gate of one list; a gate no plugin serves, or one whose plugin refuses
    its parameters, is a (location, message) problem at its key."""
    names = gate_names(list(specs))
    built: list[ConfiguredGate] = []
    problems: list[tuple[Loc, str]] = []
    for i, (name, spec) in enumerate(zip(names, specs, strict=True)):
        try:
            gate = build(spec)
        except GateConfigError as err:
            problems.append(((*loc, i, err.key or "type"), f"gate {name}: {err}"))
            continue
        except (ValueError, TypeError) as err:
            problems.append(((*loc, i), f"gate {name}: {err}"))
            continue
        if gate is None:
            types = ", ".join(sorted(known_types())) or "none installed"
            problems.append(((*loc, i, "type"),
                             f"unknown gate type '{spec.type}' (known: {types})"))  # fmt: skip
            continue
        built.append(ConfiguredGate(name, spec, gate))
    return built, problems
