"""Charts from an HTTPS chart repository (`helm package` + `helm repo index`, served from a
directory) with a version range: resolved once when the commit is targeted, rendered as
pinned by every later render (a worker's too), and a 503 from the server is a transient
error (retried, never remembered as a broken commit or a failed render)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.desired import DesiredState
from fleet.errors import FleetError, TransientError
from fleet.plugin.manager import FleetPlugins
from fleet.render.cache import RenderCache
from fleet.runtime.scheduler import Scheduler, SchedulerConfig
from fleet.runtime.state_cache import connect_redis
from fleet.runtime.tasks import TaskArgs
from fleet.source.git import GitSource
from fleet.spec.loader import load_repository
from tests.support.chart_repo import ChartRepo, serve_chart_repo
from tests.support.servers import GitServer, RedisServer


@pytest.fixture
def chart_repo(binary: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChartRepo]:
    yield from serve_chart_repo(binary("helm"), tmp_path, monkeypatch)


def fleet_repo(root: Path, chart_repo: str, version: str) -> Path:
    (root / "web").mkdir(parents=True)
    (root / "fleet.yaml").write_text(
        "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: charts\n"
        "clusters: [{name: c1}, {name: c2}]\nbundles: {paths: [web]}\n"
    )
    (root / "web" / "fleet.yaml").write_text(
        f"helm:\n  repo: {chart_repo}\n  chart: demo\n  version: '{version}'\n"
    )
    return root


def target(repo: Path, **kw: Any) -> DesiredState:
    return DesiredState.target(
        load_repository(repo), "c0ffee", FleetPlugins.load(entry_points=False), **kw
    )


def rendered(state: DesiredState) -> list[dict[str, str]]:
    return [state.manifests(unit)[0]["data"] for unit in state.units]


def test_a_range_is_resolved_once_and_pinned_in_the_deployment_id(
    chart_repo: ChartRepo, tmp_path: Path
) -> None:
    repo = fleet_repo(tmp_path / "repo", chart_repo.url, ">=0.1.0 <0.9.0")
    state = target(repo)
    ids = {unit.deployment_id for unit in state.units}
    assert len(ids) == 1  # both clusters: one id, with the pin in it
    assert state.pins is not None
    (pin,) = state.pins.all()
    assert (pin.chart, pin.version) == (f"{chart_repo.url}/demo", "0.2.0")
    assert pin.digest.startswith("sha256:")
    assert str(pin) in state.units[0].renderer

    # before the units render, a newer matching version is published
    chart_repo.publish("0.3.0")
    assert rendered(state) == [{"chart": "0.2.0", "marker": "first"}] * 2  # the pinned one
    # a worker loading the commit later with the scheduler's pins: the same ids and version
    worker = target(repo, pins=state.pins.all())
    assert {u.deployment_id for u in worker.units} == ids
    assert rendered(worker) == [{"chart": "0.2.0", "marker": "first"}] * 2

    later = target(repo)  # the next load pins what the repository has now
    assert {unit.deployment_id for unit in later.units} != ids
    assert rendered(later) == [{"chart": "0.3.0", "marker": "first"}] * 2


def test_a_version_published_again_is_refused_not_rendered(
    chart_repo: ChartRepo, tmp_path: Path
) -> None:
    repo = fleet_repo(tmp_path / "repo", chart_repo.url, "0.2.0")
    state = target(repo)
    assert state.pins is not None
    (pin,) = state.pins.all()
    assert pin.version == "0.2.0"
    chart_repo.publish("0.2.0", marker="again")  # same version, other bytes
    worker = target(repo, pins=state.pins.all())
    with pytest.raises(FleetError, match="is not the archive this commit was pinned to") as err:
        worker.manifests(worker.units[0])
    assert not isinstance(err.value, TransientError)
    assert pin.digest in str(err.value)


def test_a_503_from_the_chart_server_is_transient_at_load_and_at_render(
    chart_repo: ChartRepo, tmp_path: Path
) -> None:
    repo = fleet_repo(tmp_path / "repo", chart_repo.url, "^0.1.0")
    chart_repo.handler.outage = True
    down = target(repo)  # not a broken commit: its bundle is deferred, resolved again later
    assert list(down.deferred) == ["web"]
    assert re.search(r"chart not resolved: .*index\.yaml: HTTP 503", down.deferred["web"].reason)
    chart_repo.handler.outage = False
    state = target(repo)  # back: the same commit loads, nothing deferred
    assert state.pins is not None and not state.deferred

    cache = RenderCache()
    worker = target(repo, pins=state.pins.all(), cache=cache)
    chart_repo.handler.outage = True  # down again while a worker renders
    with pytest.raises(TransientError, match=r"helm pull failed for chart .*503"):
        worker.manifests(worker.units[0])
    chart_repo.handler.outage = False
    # the same worker, the same render cache: rendered now, the outage was not remembered
    assert worker.manifests(worker.units[0])[0]["data"] == {"chart": "0.1.0", "marker": "first"}


class _Dispatcher:
    def send(self, task: str, kwargs: TaskArgs, queue: str) -> str:
        return "task"


def test_the_scheduler_loads_a_commit_again_once_its_chart_server_is_back(
    chart_repo: ChartRepo, git_server: GitServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    """One 503 does not mark the commit broken: the commit is in force with the chart's
    bundle deferred, and that bundle is resolved again once its backoff is over."""
    name = f"pins-{uuid.uuid4().hex[:6]}"
    work = git_server.create_repo(name, tmp_path / "work")
    fleet_repo(work.path, chart_repo.url, "^0.1.0")
    sha = work.commit_and_push("a chart from a repository")
    chart_repo.handler.outage = True
    scheduler = Scheduler(
        GitSource(git_server.url(name), "main"),
        connect_redis(redis_server.url),
        _Dispatcher(),
        plugins=FleetPlugins.load(entry_points=False),
        config=SchedulerConfig(poll_interval=3600),
    )
    scheduler.tick()
    desired = scheduler.desired
    assert desired is not None and scheduler.commit_error is None  # in force, not broken
    assert list(desired.deferred) == ["web"]  # ... with its one bundle deferred
    assert "HTTP 503" in desired.deferred["web"].reason
    assert not any(e.type == "commit.rejected" for e in scheduler._commit_events)

    chart_repo.handler.outage = False
    scheduler.deferred.retry_at = 0.0  # the backoff is over
    scheduler.tick()
    desired = scheduler.desired
    assert desired is not None and not desired.deferred and scheduler.commit_error is None
    assert scheduler.revision is not None and scheduler.revision.sha == sha
