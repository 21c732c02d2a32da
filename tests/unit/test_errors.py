"""Errors typed by what happens next: the taxonomy, and who must not remember a transient one."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.engine.kube import ClusterUnreachable, Conflict, Invalid, KubeError, classify
from fleet.errors import FleetError, PermanentError, Problem, TransientError, UserError
from fleet.render.cache import RenderCache


def test_a_bare_fleet_error_is_a_user_error() -> None:
    err = FleetError("bad value", file="fleet.yaml", line=3)
    assert isinstance(err, UserError) and isinstance(err, FleetError)
    assert str(err) == err.reason == "fleet.yaml:3: bad value"
    many = FleetError(problems=[Problem("a", "x.yaml", 1), Problem("b")])
    assert str(many) == "x.yaml:1: a\nb" and many.reason == "x.yaml:1: a"
    with pytest.raises(ValueError):
        FleetError()


def test_transient_and_permanent_are_not_user_errors() -> None:
    transient = TransientError("chart server down", retry_after=4)
    assert transient.retry_after == 4 and not isinstance(transient, UserError)
    assert not isinstance(PermanentError("refused"), UserError)


def test_cluster_unreachable_carries_its_reason_and_delay_as_data() -> None:
    err = classify(503, b'{"message": "etcd\\nleader lost"}', cluster="c1", what="GET x")
    assert isinstance(err, ClusterUnreachable) and isinstance(err, TransientError)
    assert isinstance(err, KubeError) and not isinstance(err, UserError)
    assert err.reason == "c1: GET x: API server answered 503: etcd leader lost"
    assert str(err) == f"{err.reason}; will retry with backoff"
    assert err.retry_after == 10.0 and err.status == 503
    assert [p.message for p in err.problems] == [err.reason]  # what the CLI prints


def test_refusals_are_permanent() -> None:
    assert isinstance(classify(409, b"{}", cluster="c", what="apply"), Conflict)
    for status in (400, 403, 404, 409, 422):
        refused = classify(status, b"{}", cluster="c", what="apply")
        assert isinstance(refused, PermanentError) and not isinstance(refused, TransientError)
    assert isinstance(classify(422, b"{}", cluster="c", what="x"), Invalid)


def test_the_render_cache_remembers_user_errors_but_never_transient_ones() -> None:
    cache = RenderCache()
    calls: list[str] = []

    def broken() -> list[dict[str, Any]]:
        calls.append("broken")
        raise FleetError("template error", file="bundle/fleet.yaml")

    for _ in range(2):
        with pytest.raises(UserError):
            cache.get_or_render("bad", broken)
    assert calls == ["broken"]  # the same input gives the same error: rendered once

    outage = [True]

    def fetch() -> list[dict[str, Any]]:
        calls.append("fetch")
        if outage[0]:
            raise TransientError("chart repository unreachable")
        return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]

    with pytest.raises(TransientError):
        cache.get_or_render("remote", fetch)
    outage[0] = False
    manifests, hit = cache.get_or_render("remote", fetch)
    assert not hit and manifests[0]["kind"] == "ConfigMap"
    assert calls == ["broken", "fetch", "fetch"]


def test_the_cli_prints_user_and_transient_errors_as_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 1 and one line each, never a traceback, also for an unreachable cluster."""
    from fleet.cli import app, main

    raised: list[FleetError] = [
        FleetError("bad value", file="fleet.yaml", line=3),
        ClusterUnreachable("c1: GET /api: cannot reach the API server (MaxRetryError)"),
    ]

    @app.command("raise-for-test", hidden=True)
    def _raise() -> None:
        raise raised.pop(0)

    try:
        assert main(["raise-for-test"]) == 1
        assert capsys.readouterr().err == "fleet.yaml:3: bad value\n"
        assert main(["raise-for-test"]) == 1
        assert capsys.readouterr().err == (
            "error: c1: GET /api: cannot reach the API server (MaxRetryError)\n"
        )
    finally:
        app.registered_commands.pop()
