"""`ClusterLink.lend`: concurrent calls on one cluster each get a connection of their own.

A connection's counters and discovery cache belong to one thread. The first version handed
the link's own connection to every caller that came while it was out (a sibling was never
made), so units synced side by side shared one connection and each unit's request count
(`UnitResult.requests`, read by the benchmarks) included its neighbours' requests.
"""

from __future__ import annotations

from kubernetes.client import ApiClient

from fleet.engine.kube import ClusterConnection
from fleet.runtime.clusters import ClusterLink
from fleet.spec.definition import ClusterSpec


def make_link() -> ClusterLink:
    link = ClusterLink(ClusterSpec(name="one"))
    link.conn = ClusterConnection("one", ApiClient())
    return link


def test_a_second_loan_while_the_first_is_out_is_another_connection() -> None:
    link = make_link()
    with link.lend() as first, link.lend() as second, link.lend() as third:
        assert first is link.conn
        assert len({id(first), id(second), id(third)}) == 3


def test_connections_given_back_are_reused_and_all_are_counted() -> None:
    link = make_link()
    with link.lend() as first, link.lend() as second:
        first.requests, second.requests = 3, 4
    with link.lend() as again, link.lend() as again2:
        assert {id(again), id(again2)} == {id(first), id(second)}
    with link.lend() as a, link.lend() as b, link.lend() as c:
        c.requests = 5
        assert c not in (a, b)
    assert link.requests == 12
