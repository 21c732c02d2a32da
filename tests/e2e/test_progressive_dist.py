"""Progressive delivery in `fleet serve`: the canary's gate fails after a scheduler restart.

Real `fleet serve` and `fleet worker` processes, real Redis, five real clusters and a real
Prometheus. The canary wave has a bake time and an error-rate analysis that takes a
measurement every second; in the middle of the canary's soak the scheduler is killed and
started again, the canary's error rate then goes bad, and the restarted scheduler (which
remembers nothing but what Redis holds) fails the wave, rolls the canary back to the
previous revision and never lets the later waves see the bad one.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.rollout import record as rec
from fleet.runtime.rollout_store import RedisRolloutStore
from fleet.runtime.state_cache import connect_redis
from tests.e2e.dist_support import Distributed, distributed, wait_until
from tests.e2e.progressive_support import (
    ProgressiveFleet,
    five_clusters,  # noqa: F401  (fixture)
    new_progressive,
    prometheus_gate,
    wait_error_rate,
)
from tests.support.exporter import Exporter
from tests.support.prometheus import PrometheusServer
from tests.support.servers import GitServer, RedisServer

REDIS_DB = 13  # this module's own database


@pytest.fixture
def setup(
    git_server: GitServer,
    five_clusters: dict[str, Path],  # noqa: F811
    exporter: Exporter,
    prometheus: PrometheusServer,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[ProgressiveFleet, Distributed, str]]:
    monkeypatch.setenv("FLEET_MAX_WAIT_SECONDS", "20")
    fleet = new_progressive(git_server, five_clusters, exporter, prometheus, tmp_path, monkeypatch)
    url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    connect_redis(url).flushdb()
    # a measurement a second, for 40 s at most; a few rounds without data are allowed: on a
    # loaded machine a late scrape leaves the 5 s rate window empty for a round, and the
    # canary is Ready (its gate asking) within a second or two of the commit
    gate = prometheus_gate(prometheus, count=40, inconclusiveLimit=5)
    canary = {"name": "canary", "clusters": [fleet.name("canary")], "bake": "8s",
              "gates": [gate]}  # fmt: skip
    fleet.write_definition(
        {
            "autoRollback": True,
            "waves": [
                canary,
                {"name": "eu", "selector": {"matchLabels": {"region": "eu"}}},
                {"name": "us", "selector": {"matchLabels": {"region": "us"}}},
            ],
        },
        metricProviders=[{"name": "prom", "address": prometheus.url}],
    )
    fleet.write("apps/web/fleet.yaml", {"defaultNamespace": fleet.ns})
    with distributed(fleet.tree.remote_url, tmp_path / "logs", url,
                     Path(str(tmp_path / "credentials"))) as dist:  # fmt: skip
        yield fleet, dist, url
    fleet.close()


def test_a_restarted_scheduler_finishes_the_soak_and_rolls_the_canary_back(
    setup: tuple[ProgressiveFleet, Distributed, str], prometheus: PrometheusServer,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    fleet, dist, url = setup
    store = RedisRolloutStore(connect_redis(url), f"prog-{fleet.sfx}")
    canary = fleet.name("canary")
    fleet.app("v1")
    first = fleet.commit("v1")
    dist.start_worker("all", "eu", "us")
    dist.start_serve("--poll-interval", "3600", "--drift-interval", "3600")
    dist.wait_converged(first, timeout=240)
    assert all(fleet.version(c) == "v1" for c in fleet.names)

    fleet.app("v2")
    second = fleet.commit("v2")
    assert dist.push_webhook(second) == 202

    def soaking() -> bool:
        found = store.records().get("apps-web")
        wave = found.waves.get("canary") if found is not None else None
        return bool(wave and wave.ready_at and found and found.commit == second)

    wait_until(soaking, 120, "the canary to be Ready at v2 and soaking", dist)
    measured = store.records()["apps-web"].waves["canary"].gates["error-rate"].memory
    assert dist.serve is not None
    dist.serve.kill(signal.SIGKILL)  # in the middle of the soak
    fleet.exporter.set(canary, error_rate=0.2)
    wait_error_rate(prometheus, canary, 0.19, 0.21)
    dist.start_serve("--poll-interval", "3600", "--drift-interval", "3600")

    def rolled_back() -> rec.BundleRollout | None:
        found = store.records().get("apps-web")
        return found if found is not None and found.outcome == rec.ROLLED_BACK else None

    found = wait_until(rolled_back, 120, "the canary's rollback", dist)
    wait_until(lambda: fleet.version(canary) == "v1", 60, "the canary to run v1 again", dist)
    assert all(fleet.version(c) == "v1" for c in fleet.names)  # the other waves never got v2
    gate = found.waves["canary"].gates["error-rate"]
    assert gate.verdict == "failed" and f"0.2 on {canary}" in gate.message, gate
    # the analysis went on from what Redis held: the rounds before the restart still count
    assert len(str(gate.memory.get("rounds", ""))) > len(str(measured.get("rounds", ""))), (
        measured,
        gate.memory,
    )
    assert found.waves["canary"].rolled_back == [canary]

    code = main(["rollout", "status", "apps-web", "--redis", url, "--repo", fleet.tree.remote_url])
    out = capsys.readouterr().out
    assert code == 0 and "rolledBack" in out and "error-rate" in out, out


def test_after_a_redis_wipe_the_rolled_back_revision_stays_rolled_back(
    setup: tuple[ProgressiveFleet, Distributed, str], prometheus: PrometheusServer,
) -> None:  # fmt: skip
    """The canary's gate fails and it is rolled back; then Redis loses everything and the
    scheduler starts again: the workers' refresh finds the rolled-back revision in the
    canary's history, so neither the canary nor a later wave gets it again (with the
    canary's metrics good again, nothing else would stop it); a new commit rolls out."""
    fleet, dist, url = setup
    client = connect_redis(url)
    store = RedisRolloutStore(client, f"prog-{fleet.sfx}")
    canary = fleet.name("canary")
    gate = prometheus_gate(prometheus)  # three rounds a second apart
    fleet.write_definition(
        {
            "autoRollback": True,
            "waves": [
                {"name": "canary", "clusters": [canary], "bake": "2s", "gates": [gate]},
                {"name": "eu", "selector": {"matchLabels": {"region": "eu"}}},
                {"name": "us", "selector": {"matchLabels": {"region": "us"}}},
            ],
        },
        metricProviders=[{"name": "prom", "address": prometheus.url}],
    )
    fleet.app("v1")
    first = fleet.commit("v1")
    dist.start_worker("all", "eu", "us")
    dist.start_serve("--poll-interval", "3600", "--drift-interval", "3600")
    dist.wait_converged(first, timeout=240)

    fleet.exporter.set(canary, error_rate=0.2)
    wait_error_rate(prometheus, canary, 0.19, 0.21)
    fleet.app("v2")
    second = fleet.commit("v2")
    assert dist.push_webhook(second) == 202

    def rolled_back() -> rec.BundleRollout | None:
        found = store.records().get("apps-web")
        done = found is not None and found.commit == second and found.outcome == rec.ROLLED_BACK
        return found if done else None

    revision = wait_until(rolled_back, 120, "the canary's rollback", dist).revision
    wait_until(lambda: fleet.version(canary) == "v1", 60, "the canary to run v1 again", dist)

    assert dist.serve is not None
    dist.serve.kill(signal.SIGKILL)
    fleet.exporter.set(canary, error_rate=0.0)  # the gate would pass v2 now
    wait_error_rate(prometheus, canary, 0.0, 0.01)
    client.flushdb()  # Redis lost everything: records, controls, the state cache
    dist.start_serve("--poll-interval", "3600", "--drift-interval", "3600")

    def held() -> dict[str, str] | None:
        status = dist.status()
        rows = {u["cluster"]: u["message"] for u in status.get("units", [])}
        mine = [m for m in rows.values() if m.startswith(f"revision {revision} was rolled back")]
        return rows if status.get("commit") == second and len(mine) == len(fleet.names) else None

    rows = wait_until(held, 120, "every unit to wait, the revision rolled back", dist)
    assert "gate error-rate: 0.2 on" in rows[canary], rows
    assert all(fleet.version(c) == "v1" for c in fleet.names)  # nobody got v2 again
    assert set(store.rolled_back()["apps-web"]) == {revision}  # rebuilt from the history
    [rollout] = dist.status()["rollouts"]
    assert (rollout["revision"], rollout["outcome"]) == (revision, "rolledBack"), rollout
    assert revision in rollout["rejected"]

    fleet.app("v3")
    third = fleet.commit("v3")
    assert dist.push_webhook(third) == 202
    status = dist.wait_converged(third, timeout=240)
    assert all(fleet.version(c) == "v3" for c in fleet.names)
    [rollout] = status["rollouts"]
    assert rollout["outcome"] == "succeeded" and revision in rollout["rejected"], rollout
    assert [w["phase"] for w in rollout["waves"]] == ["passed", "passed", "passed"]
