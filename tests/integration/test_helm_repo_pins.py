"""Charts from an HTTPS chart repository (`helm package` + `helm repo index`, served from a
directory) with a version range: resolved once when the commit is targeted, rendered as
pinned by every later render (a worker's too), and a 503 from the server is a transient
error (retried, never remembered as a broken commit or a failed render)."""

from __future__ import annotations

import functools
import http.server
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet.desired import DesiredState
from fleet.errors import FleetError, TransientError
from fleet.plugin.manager import FleetPlugins
from fleet.render.cache import RenderCache
from fleet.spec.loader import load_repository
from tests.support.tls import https_server, make_tls


class _Handler(http.server.SimpleHTTPRequestHandler):
    outage = False  # set on the class: every request answers 503 while True

    def do_GET(self) -> None:
        if type(self).outage:
            self.send_error(503, "Service Unavailable")
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class ChartRepo:
    helm: str
    served: Path
    src: Path
    url: str
    handler: type[_Handler]

    def publish(self, version: str, marker: str = "first") -> None:
        """Package chart `demo` at `version` (a ConfigMap saying both) and index again."""
        chart = self.src / f"{version}-{marker}"
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: demo\nversion: {version}\n")
        (chart / "templates" / "cm.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo}\n"
            f'data: {{chart: "{version}", marker: "{marker}"}}\n'
        )
        run = functools.partial(subprocess.run, check=True, capture_output=True)
        run([self.helm, "package", str(chart), "-d", str(self.served)])
        run([self.helm, "repo", "index", str(self.served), "--url", self.url])


@pytest.fixture
def chart_repo(binary: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChartRepo]:
    helm: str = binary("helm")
    monkeypatch.delenv("FLEET_HELM", raising=False)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "helm-home" / name.lower()))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "tls" / "server.crt"))
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "cache"))
    served = tmp_path / "served"
    served.mkdir()
    handler = type("Handler", (_Handler,), {"outage": False})
    serve = functools.partial(handler, directory=str(served))
    with https_server(serve, make_tls(tmp_path / "tls")) as url:
        repo = ChartRepo(helm, served, tmp_path / "src", url, handler)
        for version in ("0.1.0", "0.2.0", "1.0.0"):
            repo.publish(version)
        yield repo


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
    with pytest.raises(TransientError, match="index.yaml: HTTP 503"):
        target(repo)  # the scheduler loads the commit again later: not a broken commit
    chart_repo.handler.outage = False
    state = target(repo)  # back: the same commit loads
    assert state.pins is not None

    cache = RenderCache()
    worker = target(repo, pins=state.pins.all(), cache=cache)
    chart_repo.handler.outage = True  # down again while a worker renders
    with pytest.raises(TransientError, match="helm pull failed for chart .*503"):
        worker.manifests(worker.units[0])
    chart_repo.handler.outage = False
    # the same worker, the same render cache: rendered now, the outage was not remembered
    assert worker.manifests(worker.units[0])[0]["data"] == {"chart": "0.1.0", "marker": "first"}
