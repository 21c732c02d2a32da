"""Per-bundle waves: partitions by each selector kind, definition waves, auto-partitions,
precedence, and every wave setting resolved along its chain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from fleet.rollout.waves import BundleWaves, bundle_waves, plan_waves
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.definition import Rollout
from fleet.targeting.units import DeploymentUnit

GROUP_LABELS = {"eu-prod": {"tier": "gold"}, "us-prod": {"tier": "silver"}}
CLUSTERS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "canary": ({"env": "dev"}, ()),
    "eu-1": ({"env": "prod", "region": "eu"}, ("eu-prod",)),
    "eu-2": ({"env": "prod", "region": "eu"}, ("eu-prod",)),
    "us-1": ({"env": "prod", "region": "us"}, ("us-prod",)),
    "us-2": ({"env": "prod", "region": "us"}, ("us-prod",)),
    "lab": ({"env": "lab"}, ()),
}


def units(
    strategy: Mapping[str, Any] | None = None,
    clusters: Sequence[str] = tuple(CLUSTERS),
    bundle: str = "web",
) -> list[DeploymentUnit]:
    doc = {"rolloutStrategy": strategy} if strategy is not None else {}
    options = BundleOptions.model_validate(doc)
    out = []
    for name in clusters:
        labels, groups = CLUSTERS.get(name, ({}, ()))
        out.append(
            DeploymentUnit(
                bundle,
                name,
                options,
                "v2",
                None,
                labels,
                None,
                frozenset(groups),
                group_labels=GROUP_LABELS,
            )
        )
    return out


def layout(
    strategy: Mapping[str, Any] | None = None,
    rollout: Mapping[str, Any] | None = None,
    clusters: Sequence[str] = tuple(CLUSTERS),
) -> BundleWaves:
    spec = Rollout.model_validate(rollout) if rollout is not None else None
    return bundle_waves("web", units(strategy, clusters), spec)


def members(waves: BundleWaves) -> list[tuple[str, list[str]]]:
    return [(w.name, [u.cluster for u in w.units]) for w in waves.waves]


def test_partitions_by_name_selector_group_and_group_selector() -> None:
    waves = layout(
        {
            "partitions": [
                {"name": "canary", "clusterName": "canary"},
                {"name": "eu", "clusterSelector": {"matchLabels": {"region": "eu"}}},
                {"clusterGroup": "us-prod", "clusterSelector": {"matchLabels": {"region": "xx"}}},
                {"name": "silver", "clusterGroupSelector": {"matchLabels": {"tier": "silver"}}},
            ]
        }
    )
    assert waves.source == "partitions"
    # the third partition needs both criteria: nothing matches, it is no wave;
    # clusters in no partition form the last wave
    assert members(waves) == [
        ("canary", ["canary"]),
        ("eu", ["eu-1", "eu-2"]),
        ("silver", ["us-1", "us-2"]),
        ("(rest)", ["lab"]),
    ]


def test_a_cluster_goes_to_the_first_partition_that_matches() -> None:
    waves = layout(
        {
            "partitions": [
                {"clusterGroup": "eu-prod"},
                {"clusterSelector": {"matchLabels": {"env": "prod"}}},
                {"clusterName": "eu-1"},  # eu-1 is already in partition-1
                {},  # no criterion: matches nothing (Rancher's ClusterMatcher)
            ]
        },
        clusters=["eu-1", "eu-2", "us-1", "canary"],
    )
    assert members(waves) == [
        ("partition-0", ["eu-1", "eu-2"]),
        ("partition-1", ["us-1"]),
        ("(rest)", ["canary"]),
    ]


def test_partitions_win_over_definition_waves_for_their_bundle() -> None:
    rollout = {"waves": [{"name": "first", "clusters": ["us-1"]}]}
    own = layout({"partitions": [{"name": "mine", "clusterName": "eu-1"}]}, rollout)
    assert own.source == "partitions"
    assert [w.name for w in own.waves] == ["mine", "(rest)"]
    other = layout(None, rollout)
    assert other.source == "rollout.waves"
    assert members(other)[0] == ("first", ["us-1"])
    assert other.waves[1].name == "(rest)"


def test_plan_waves_gives_each_bundle_its_own() -> None:
    rollout = Rollout.model_validate({"waves": [{"name": "dev", "clusters": ["canary"]}]})
    mixed = units({"partitions": [{"name": "us", "clusterGroup": "us-prod"}]}, bundle="api")
    mixed += units(None, bundle="web")
    layouts = plan_waves(mixed, rollout)
    assert [w.name for w in layouts["api"].waves] == ["us", "(rest)"]
    assert [w.name for w in layouts["web"].waves] == ["dev", "(rest)"]


def many(count: int) -> list[str]:
    return [f"c{i:03d}" for i in reversed(range(count))]


@pytest.mark.parametrize(
    ("count", "strategy", "sizes"),
    [
        (199, None, [199]),  # below the default threshold 200: one wave
        (200, None, [50, 50, 50, 50]),  # at the threshold: 25% each
        (10, {"autoPartitionThreshold": 10, "autoPartitionSize": 4}, [4, 4, 2]),
        (10, {"autoPartitionThreshold": 10, "autoPartitionSize": "30%"}, [3, 3, 3, 1]),
        (10, {"autoPartitionThreshold": 10, "autoPartitionSize": 0}, [10]),  # off
        (10, {"autoPartitionThreshold": 0, "autoPartitionSize": 2}, [10]),  # off
        (3, {"autoPartitionThreshold": 1, "autoPartitionSize": "10%"}, [1, 1, 1]),  # >= 1
    ],
)
def test_auto_partitions_by_threshold_and_size(
    count: int, strategy: dict[str, Any] | None, sizes: list[int]
) -> None:
    waves = layout(strategy, clusters=many(count))
    assert [len(w.units) for w in waves.waves] == sizes
    if len(sizes) > 1:
        assert waves.source == "auto"
        assert [w.name for w in waves.waves][:2] == ["auto-1", "auto-2"]
        # sorted by cluster name, as Rancher sorts its targets
        flat = [u.cluster for w in waves.waves for u in w.units]
        assert flat == sorted(flat)
    else:
        assert waves.source == "single" and waves.waves[0].name == "(all)"


def test_definition_waves_turn_auto_partitions_off() -> None:
    rollout = {"waves": [{"name": "w", "clusters": ["c000"]}]}
    waves = layout({"autoPartitionThreshold": 2, "autoPartitionSize": 1}, rollout, many(5))
    assert [len(w.units) for w in waves.waves] == [1, 4]


def test_settings_resolve_wave_then_bundle_then_definition() -> None:
    rollout = {
        "maxUnavailable": 3,
        "offline": "skip",
        "bake": "10m",
        "maxNew": 7,
        "autoRollback": True,
        "gates": [{"type": "approval", "name": "fleet-wide"}],
        "waves": [
            {
                "name": "canary",
                "clusters": ["canary"],
                "maxUnavailable": 1,
                "offline": "wait",
                "bake": "1m",
                "delay": "30s",
                "maxNew": 2,
                "gates": [{"type": "http", "url": "http://x"}],
            },
        ],
    }
    waves = layout(None, rollout)
    canary, rest = waves.waves
    assert (canary.max_unavailable, canary.offline, canary.bake, canary.delay) == (
        1,
        "wait",
        60,
        30,
    )
    assert canary.max_new == 2 and waves.max_new == 7
    assert [g.type for g in canary.gates] == ["approval", "http"]
    assert (rest.max_unavailable, rest.offline, rest.bake, rest.delay, rest.max_new) == (
        3, "skip", 600, 0, None,
    )  # fmt: skip
    assert [g.type for g in rest.gates] == ["approval"]
    assert canary.auto_rollback and rest.auto_rollback and waves.max_unavailable_partitions == 0

    strategy = {
        "maxUnavailable": "50%",
        "offline": "unavailable",
        "bake": "2m",
        "maxNew": 4,
        "autoRollback": False,
        "maxUnavailablePartitions": 1,
        "gates": [{"type": "approval", "name": "bundle"}],
        "partitions": [
            {"name": "p", "clusterName": "canary", "gates": [{"type": "approval", "name": "p"}]},
            {
                "name": "q",
                "clusterName": "eu-1",
                "maxUnavailable": 0,
                "offline": "skip",
                "bake": "5s",
                "delay": "1m",
            },
        ],
    }
    waves = layout(strategy, rollout)
    p, q, rest = waves.waves
    assert [g.name for g in p.gates] == ["fleet-wide", "bundle", "p"]
    assert (p.max_unavailable, p.offline, p.bake, p.delay, p.max_new) == (
        "50%",
        "unavailable",
        120,
        0,
        None,
    )
    assert (q.max_unavailable, q.offline, q.bake, q.delay) == (0, "skip", 5, 60)
    assert [g.name for g in rest.gates] == ["fleet-wide", "bundle"]
    assert waves.max_new == 4 and not p.auto_rollback and waves.max_unavailable_partitions == 1


def test_defaults_without_any_rollout() -> None:
    (only,) = layout(None, None).waves
    assert (only.name, only.max_unavailable, only.offline, only.bake, only.delay) == (
        "(all)", "100%", "wait", 0, 0,
    )  # fmt: skip
    assert only.max_new is None and only.gates == () and not only.auto_rollback


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (2, 2), (9, 3), ("50%", 1), ("1%", 1)])
def test_max_unavailable_partitions_like_rancher_limit(value: int | str, expected: int) -> None:
    strategy = {
        "maxUnavailablePartitions": value,
        "partitions": [{"clusterName": "canary"}, {"clusterName": "eu-1"}],
    }
    assert layout(strategy).max_unavailable_partitions == expected  # 3 waves with (rest)


def test_duplicate_partition_names_are_made_unique() -> None:
    waves = layout(
        {"partitions": [{"name": "p", "clusterName": "eu-1"}, {"name": "p", "clusterName": "us-1"}]}
    )
    assert [w.name for w in waves.waves] == ["p", "p-1", "(rest)"]
