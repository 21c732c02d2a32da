"""Each bundle's waves, and every setting of each wave resolved (pure).

Rancher Fleet rolls a bundle out by *its* partitions; fleet's definition has fleet-wide
`rollout.waves`. `bundle_waves` decides, per bundle, which apply and what each wave's
settings are, so the planner and the gate tracker read one structure (`BundleWaves`) and
never walk the precedence chains themselves.

Where the waves come from, first that applies:

1. the bundle's `rolloutStrategy.partitions` (non-empty): its partitions, in order. They
   win over the definition's `rollout.waves` for that bundle (a bundle that says how it
   rolls out is more specific than the fleet's default). A cluster goes to the first
   partition that matches it; a partition's criteria (clusterName, clusterSelector over
   the cluster's labels, clusterGroup, clusterGroupSelector over the labels of the
   cluster's groups) must all match, clusterGroup and clusterGroupSelector on one same
   group, and a partition with none matches nothing (Rancher's `ClusterMatcher`). Clusters
   in no partition form the implicit last wave `(rest)` (Rancher's code leaves them out of
   every partition, its docs say they are auto-partitioned at the end; a last wave is what
   fleet's definition waves do too). An unnamed partition is `partition-N`, N its index in
   the list (`rolloutStrategy.partitions[N]`); a name used twice gets `-N` added (wave
   names key approvals and the gate tracker).
2. the definition's `rollout.waves`, same first-match rule, rest in `(rest)`.
3. Rancher's auto-partitioning: when the bundle targets at least `autoPartitionThreshold`
   clusters (default 200; Rancher turns it off below the threshold, and when the
   threshold is 0 or `autoPartitionSize` is 0), its clusters sorted by name are cut into
   waves `auto-1`, `auto-2`, ... of `autoPartitionSize` clusters (default 25%; an int, or
   a percentage of the bundle's clusters rounded down, at least 1).
4. else one wave `(all)`.

Settings of a wave, first given wins:

- maxUnavailable: the wave's/partition's, the bundle's `rolloutStrategy.maxUnavailable`,
  `rollout.maxUnavailable`, else 100%.
- offline: the wave's/partition's, the bundle's, then `rollout.offline` (default `wait`).
- delay (seconds, 0 = none): the wave's/partition's only.
- maxNew: the wave's own cap (definition waves only; Rancher's partitions have none).
  The bundle's `rolloutStrategy.maxNew`, else `rollout.maxNew`, is a cap for the whole
  bundle (Rancher's maxNew is per bundle), `BundleWaves.max_new`. Both apply.
- bake (seconds, 0 = none): the wave's/partition's, the bundle's, then `rollout.bake`.
- gates: `rollout.gates` + the bundle's `rolloutStrategy.gates` + the wave's/partition's,
  in that order (all must pass).
- autoRollback: the bundle's `rolloutStrategy.autoRollback`, else `rollout.autoRollback`.
- maxUnavailablePartitions (`BundleWaves.max_unavailable_partitions`): the bundle's, an
  int or a percentage of its waves (Rancher's `limit`: rounded down, at least 1 for a
  percentage; default 0). See the planner for what it does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fleet.spec.bundle_options import Partition, RolloutStrategy
from fleet.spec.definition import Rollout, Wave
from fleet.spec.rollout_spec import GateSpec, OfflinePolicy, parse_duration
from fleet.targeting.selectors import compile_selector
from fleet.targeting.units import DeploymentUnit, UnitKey

ALL_WAVE = "(all)"
REST_WAVE = "(rest)"
DEFAULT_MAX_UNAVAILABLE = "100%"
DEFAULT_AUTO_PARTITION_SIZE = "25%"  # Rancher's defAutoPartitionSize
DEFAULT_AUTO_PARTITION_THRESHOLD = 200  # Rancher's defAutoPartitionThreshold
DEFAULT_MAX_UNAVAILABLE_PARTITIONS = 0  # Rancher's defMaxUnavailablePartitions

_Matches = Callable[[DeploymentUnit], bool]


@dataclass(frozen=True, slots=True)
class WavePlan:
    """One wave of one bundle: its units and its resolved settings (see module doc)."""

    index: int
    name: str
    units: tuple[DeploymentUnit, ...]
    max_unavailable: int | str
    offline: OfflinePolicy
    delay: int
    max_new: int | None
    bake: int
    gates: tuple[GateSpec, ...]
    auto_rollback: bool


@dataclass(frozen=True, slots=True)
class BundleWaves:
    """A bundle's waves in rollout order (only waves with units) and its bundle-wide caps.

    `source` says where the waves came from: `partitions`, `rollout.waves`, `auto` or
    `single`.
    """

    bundle: str
    waves: tuple[WavePlan, ...]
    source: str
    max_new: int | None
    max_unavailable_partitions: int
    auto_rollback: bool

    def wave_of(self, cluster: str) -> WavePlan | None:
        for wave in self.waves:
            if any(u.cluster == cluster for u in wave.units):
                return wave
        return None


@dataclass(frozen=True, slots=True)
class _Defaults:
    """What a wave inherits when it says nothing: the bundle's, then the definition's."""

    max_unavailable: int | str
    offline: OfflinePolicy
    bake: int
    gates: tuple[GateSpec, ...]
    auto_rollback: bool


def plan_waves(
    units: Sequence[DeploymentUnit],
    rollout: Rollout | None,
    definition: DefinitionWaves | None = None,
) -> dict[str, BundleWaves]:
    """bundle -> its waves, for every bundle of `units` (in the order they come)."""
    by_bundle: dict[str, list[DeploymentUnit]] = {}
    for unit in units:
        by_bundle.setdefault(unit.bundle, []).append(unit)
    definition = definition or DefinitionWaves(rollout)
    return {
        bundle: bundle_waves(bundle, bundle_units, rollout, definition)
        for bundle, bundle_units in by_bundle.items()
    }


def bundle_waves(
    bundle: str,
    units: Sequence[DeploymentUnit],
    rollout: Rollout | None,
    definition: DefinitionWaves | None = None,
) -> BundleWaves:
    """One bundle's waves (`units` are that bundle's). `definition` caches the cluster ->
    definition wave matching across bundles; give the same one for every bundle."""
    strategy = units[0].options.rollout_strategy if units else None
    defaults = _defaults(strategy, rollout)
    waves: list[WavePlan]
    if strategy is not None and strategy.partitions:
        source = "partitions"
        waves = _partition_waves(strategy.partitions, units, defaults)
    elif rollout is not None and rollout.waves:
        source = "rollout.waves"
        waves = (definition or DefinitionWaves(rollout)).waves(units, defaults)
    else:
        waves = _auto_waves(strategy, units, defaults)
        source = "auto" if len(waves) > 1 else "single"
    bundle_max_new = strategy.max_new if strategy is not None else None
    if bundle_max_new is None and rollout is not None:
        bundle_max_new = rollout.max_new
    partitions_limit = strategy.max_unavailable_partitions if strategy is not None else None
    return BundleWaves(
        bundle,
        tuple(waves),
        source,
        bundle_max_new,
        _max_unavailable_partitions(partitions_limit, len(waves)),
        defaults.auto_rollback,
    )


def resolve_count(value: int | str, total: int) -> int:
    """An int, or "N%" of `total` rounded down; at least 1 (so a rollout can progress;
    Kubernetes and Rancher round the same way)."""
    if isinstance(value, str) and value.endswith("%"):
        count = int(value[:-1]) * total // 100
    else:
        count = int(value)
    return max(count, 1)


def _max_unavailable_partitions(value: int | str | None, waves: int) -> int:
    """Rancher's `limit` for maxUnavailablePartitions: an int as given (0 is allowed and
    is the default), a percentage of the waves rounded down and at least 1."""
    if value is None:
        return DEFAULT_MAX_UNAVAILABLE_PARTITIONS
    if isinstance(value, int):
        return min(value, waves)
    return min(resolve_count(value, waves), waves)


def _defaults(strategy: RolloutStrategy | None, rollout: Rollout | None) -> _Defaults:
    max_unavailable: int | str = DEFAULT_MAX_UNAVAILABLE
    offline: OfflinePolicy = "wait"
    bake: int | str | None = None
    gates: list[GateSpec] = []
    auto_rollback = False
    if rollout is not None:
        if rollout.max_unavailable is not None:
            max_unavailable = rollout.max_unavailable
        offline, bake, auto_rollback = rollout.offline, rollout.bake, rollout.auto_rollback
        gates = list(rollout.gates)
    if strategy is not None:
        if strategy.max_unavailable is not None:
            max_unavailable = strategy.max_unavailable
        offline = strategy.offline or offline
        bake = strategy.bake if strategy.bake is not None else bake
        if strategy.auto_rollback is not None:
            auto_rollback = strategy.auto_rollback
        gates += strategy.gates
    return _Defaults(max_unavailable, offline, _seconds(bake), tuple(gates), auto_rollback)


def _seconds(value: int | str | None) -> int:
    return 0 if value is None else parse_duration(value)


def _wave(
    index: int,
    name: str,
    units: Sequence[DeploymentUnit],
    defaults: _Defaults,
    own: Wave | Partition | None = None,
) -> WavePlan:
    if own is None:
        return WavePlan(
            index, name, tuple(units), defaults.max_unavailable, defaults.offline, 0, None,
            defaults.bake, defaults.gates, defaults.auto_rollback,
        )  # fmt: skip
    return WavePlan(
        index,
        name,
        tuple(units),
        own.max_unavailable if own.max_unavailable is not None else defaults.max_unavailable,
        own.offline or defaults.offline,
        _seconds(own.delay),
        own.max_new if isinstance(own, Wave) else None,
        _seconds(own.bake) if own.bake is not None else defaults.bake,
        defaults.gates + tuple(own.gates),
        defaults.auto_rollback,
    )


def _grouped(
    units: Sequence[DeploymentUnit], index_of: Callable[[DeploymentUnit], int]
) -> dict[int, list[DeploymentUnit]]:
    grouped: dict[int, list[DeploymentUnit]] = {}
    for unit in units:
        grouped.setdefault(index_of(unit), []).append(unit)
    return grouped


def _partition_waves(
    partitions: Sequence[Partition], units: Sequence[DeploymentUnit], defaults: _Defaults
) -> list[WavePlan]:
    matchers = [_partition_matcher(p) for p in partitions]
    rest = len(partitions)

    def index_of(unit: DeploymentUnit) -> int:
        return next((i for i, m in enumerate(matchers) if m(unit)), rest)

    grouped = _grouped(units, index_of)
    out = []
    used: set[str] = set()
    for index in sorted(grouped):
        if index == rest:
            out.append(_wave(index, REST_WAVE, grouped[index], defaults))
            continue
        part = partitions[index]
        name = part.name or f"partition-{index}"
        if name in used:  # Rancher's names are for display only; ours key gates and approvals
            name = f"{name}-{index}"
        used.add(name)
        out.append(_wave(index, name, grouped[index], defaults, part))
    return out


class DefinitionWaves:
    """The definition's waves, with cluster -> wave index cached across bundles (every
    bundle without partitions shares it, so a cluster is matched once per plan)."""

    def __init__(self, rollout: Rollout | None) -> None:
        self.specs: list[Wave] = list(rollout.waves) if rollout is not None else []
        self._matchers = [_wave_matcher(w) for w in self.specs]
        self._index: dict[str, int] = {}

    def index_of(self, unit: DeploymentUnit) -> int:
        found = self._index.get(unit.cluster)
        if found is None:
            found = next((i for i, m in enumerate(self._matchers) if m(unit)), len(self.specs))
            self._index[unit.cluster] = found
        return found

    def name_of(self, unit: DeploymentUnit) -> str:
        if not self.specs:
            return ALL_WAVE
        index = self.index_of(unit)
        return self.specs[index].name if index < len(self.specs) else REST_WAVE

    def names(self, units: Sequence[DeploymentUnit]) -> dict[str, str]:
        """cluster -> its definition wave (`(all)` without waves): the fleet-wide view."""
        out: dict[str, str] = {}
        for unit in units:
            if unit.cluster not in out:
                out[unit.cluster] = self.name_of(unit)
        return out

    def waves(self, units: Sequence[DeploymentUnit], defaults: _Defaults) -> list[WavePlan]:
        grouped = _grouped(units, self.index_of)
        out = []
        for index in sorted(grouped):
            if index == len(self.specs):
                out.append(_wave(index, REST_WAVE, grouped[index], defaults))
            else:
                spec = self.specs[index]
                out.append(_wave(index, spec.name, grouped[index], defaults, spec))
        return out


def _auto_waves(
    strategy: RolloutStrategy | None, units: Sequence[DeploymentUnit], defaults: _Defaults
) -> list[WavePlan]:
    size_value: int | str = DEFAULT_AUTO_PARTITION_SIZE
    threshold = DEFAULT_AUTO_PARTITION_THRESHOLD
    if strategy is not None:
        if strategy.auto_partition_size is not None:
            size_value = strategy.auto_partition_size
        if strategy.auto_partition_threshold is not None:
            threshold = strategy.auto_partition_threshold
    disabled = size_value == 0 or threshold <= 0 or len(units) < threshold
    if not units or disabled:
        return [_wave(0, ALL_WAVE, units, defaults)]
    size = min(resolve_count(size_value, len(units)), len(units))
    ordered = sorted(units, key=lambda u: u.cluster)
    return [
        _wave(i, f"auto-{i + 1}", ordered[start : start + size], defaults)
        for i, start in enumerate(range(0, len(ordered), size))
    ]


def _wave_matcher(wave: Wave) -> _Matches:
    if wave.clusters is not None:
        names = frozenset(wave.clusters)
        return lambda unit: unit.cluster in names
    if wave.group is not None:
        group = wave.group
        return lambda unit: group in unit.groups
    assert wave.selector is not None
    selector = compile_selector(wave.selector)
    return lambda unit: selector.matches(unit.labels)


def _partition_matcher(part: Partition) -> _Matches:
    """Rancher's ClusterMatcher: every given criterion matches; none given matches none."""
    checks: list[_Matches] = []
    if part.cluster_name is not None:
        name = part.cluster_name
        checks.append(lambda unit: unit.cluster == name)
    if part.cluster_selector is not None:
        selector = compile_selector(part.cluster_selector)
        checks.append(lambda unit: selector.matches(unit.labels))
    group, group_selector = part.cluster_group, part.cluster_group_selector
    if group is not None or group_selector is not None:
        compiled = compile_selector(group_selector) if group_selector is not None else None
        empty: Mapping[str, str] = {}

        def group_matches(unit: DeploymentUnit) -> bool:
            for member in unit.groups:
                if group is not None and member != group:
                    continue
                if compiled is None or compiled.matches(unit.group_labels.get(member, empty)):
                    return True
            return False

        checks.append(group_matches)
    if not checks:
        return lambda unit: False
    if len(checks) == 1:
        return checks[0]
    return lambda unit: all(check(unit) for check in checks)


def unit_waves(units: Sequence[DeploymentUnit], rollout: Rollout | None) -> dict[UnitKey, str]:
    """(bundle, cluster) -> its wave name (for `fleet plan` and status views)."""
    out: dict[UnitKey, str] = {}
    for layout in plan_waves(units, rollout).values():
        for wave in layout.waves:
            for unit in wave.units:
                out[unit.key] = wave.name
    return out
