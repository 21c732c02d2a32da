"""A chart whose registry or repository index is down defers its bundle only: the commit
is targeted and its other bundles render; the deferred bundle's id says `unresolved`, its
manifests are the TransientError, and a worker given the scheduler's `defer` asks nothing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleet.desired import DesiredState
from fleet.errors import TransientError
from fleet.plugin.manager import FleetPlugins
from fleet.spec.loader import load_repository
from tests.support.servers import free_port
from tests.support.tls import TlsFiles


def fleet_repo(root: Path, host: str) -> Path:
    for bundle in ("oci", "indexed", "plain"):
        (root / bundle).mkdir(parents=True)
    (root / "fleet.yaml").write_text(
        textwrap.dedent(
            f"""\
            apiVersion: fleet-gitops.io/v1alpha1
            kind: Fleet
            name: charts
            clusters: [{{name: c1}}, {{name: c2}}]
            bundles: {{paths: [oci, indexed, plain]}}
            registries: [{{name: bed, type: oci, host: "{host}"}}]
            """
        )
    )
    (root / "oci" / "fleet.yaml").write_text(
        f"helm: {{chart: 'oci://{host}/charts/web', version: '>=1.0 <2'}}\n"
    )
    (root / "indexed" / "fleet.yaml").write_text(
        f"helm: {{repo: 'https://{host}/repo', chart: web, version: '1.0.0'}}\n"
    )
    (root / "plain" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {a: b}\n"
    )
    return root


def test_a_chart_registry_that_is_down_defers_only_its_bundles(
    registry_tls: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(registry_tls.cert))
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    repo = load_repository(fleet_repo(tmp_path / "repo", host))
    plugins = FleetPlugins.load(entry_points=False)

    state = DesiredState.target(repo, "c0ffee", plugins)
    state.render_all()  # not a broken commit: plain renders and can roll out
    assert set(state.deferred) == {"oci", "indexed"}
    reasons = state.deferred_reasons()
    assert all(why.startswith("chart not resolved: ") for why in reasons.values()), reasons
    units = {u.key: u for u in state.units}
    assert set(units) == {(b, c) for b in ("oci", "indexed", "plain") for c in ("c1", "c2")}
    assert all("charts: unresolved" in units[(b, "c1")].renderer for b in ("oci", "indexed"))
    assert [m["kind"] for m in state.manifests(units[("plain", "c1")])] == ["ConfigMap"]
    with pytest.raises(TransientError, match="chart not resolved"):
        state.manifests(units[("oci", "c1")])
    claimed = {b for owners in state.claims("c1").by_key.values() for b in owners}
    assert claimed == {"plain"}  # the charts cannot render: not among the claims

    # a worker given what the scheduler deferred computes the same ids without asking: a
    # registry that answers now (here: another host) changes nothing for those bundles
    monkeypatch.setattr(
        "fleet.registry.charts.resolve_chart",
        lambda *a: pytest.fail("a deferred chart was resolved"),
    )
    worker = DesiredState.target(repo, "c0ffee", plugins, defer=reasons)
    assert {u.key: u.deployment_id for u in worker.units} == {
        k: u.deployment_id for k, u in units.items()
    }
    assert worker.deferred_reasons() == reasons
