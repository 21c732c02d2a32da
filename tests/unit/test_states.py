"""Rancher Fleet's state ranking and the roll-ups object -> bundle -> cluster -> fleet."""

from __future__ import annotations

import pytest

from fleet.states import (
    BundleState,
    bundle_state,
    cluster_state,
    count_states,
    fleet_state,
    summary_message,
    worst_state,
)

S = BundleState

# Rancher's StateRank, worst first.
RANKED = [S.ERR_APPLIED, S.WAIT_APPLIED, S.MODIFIED, S.OUT_OF_SYNC, S.PENDING, S.NOT_READY, S.READY]


def test_values_are_rancher_names() -> None:
    assert [s.value for s in RANKED] == [
        "ErrApplied",
        "WaitApplied",
        "Modified",
        "OutOfSync",
        "Pending",
        "NotReady",
        "Ready",
    ]


def test_rank_order_matches_rancher() -> None:
    ranks = [s.rank for s in RANKED]
    assert ranks == sorted(ranks, reverse=True)
    assert len(set(ranks)) == len(ranks)


@pytest.mark.parametrize("i", range(len(RANKED)))
def test_worst_state_wins_against_every_lower_one(i: int) -> None:
    worse = RANKED[i]
    for better in RANKED[i:]:
        assert worst_state([better, worse, better]) is worse


def test_empty_rolls_up_to_ready() -> None:
    assert worst_state([]) is S.READY
    assert bundle_state([]) is S.READY


def test_roll_up_object_bundle_cluster_fleet() -> None:
    bundle_a = bundle_state([S.READY, S.NOT_READY, S.READY])
    bundle_b = bundle_state([S.READY, S.MODIFIED])
    assert (bundle_a, bundle_b) == (S.NOT_READY, S.MODIFIED)
    eu = cluster_state([bundle_a, bundle_b])
    us = cluster_state([S.READY])
    assert eu is S.MODIFIED
    assert fleet_state([eu, us]) is S.MODIFIED
    assert fleet_state([us, us]) is S.READY


def test_count_states_worst_first() -> None:
    counts = count_states([S.READY, S.READY, S.ERR_APPLIED, S.NOT_READY])
    assert list(counts.items()) == [(S.ERR_APPLIED, 1), (S.NOT_READY, 1), (S.READY, 2)]


def test_summary_message_leaves_out_ready_and_ranks() -> None:
    named = {"prod-us": S.READY, "prod-eu": S.NOT_READY, "dev-eu": S.ERR_APPLIED, "x": S.NOT_READY}
    assert summary_message(named) == "ErrApplied(1) [dev-eu]; NotReady(2) [prod-eu, x]"
    assert summary_message({"a": S.READY}) == ""


def test_summary_message_is_bounded() -> None:
    named = {f"c{i:02}": S.NOT_READY for i in range(15)}
    message = summary_message(named, limit=3)
    assert message == "NotReady(15) [c00, c01, c02, +12 more]"
    assert summary_message({"a": S.ERR_APPLIED, "b": S.NOT_READY}, limit=1) == (
        "ErrApplied(1) [a]; NotReady(1) [+1 more]"
    )
