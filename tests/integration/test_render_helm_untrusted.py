"""A repository is untrusted input: with the real helm binary, a Git value cannot become a
helm flag, chart sources are https/oci only, and a hung chart server cannot hold a render
(README "Security")."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.errors import FleetError, TransientError
from fleet.plugin.manager import FleetPlugins
from fleet.render.api import RenderRequest
from fleet.render.pipeline import render_bundle
from fleet.spec.bundle_options import BundleOptions, HelmOptions
from fleet.spec.cluster import ClusterContext
from tests.integration.test_render_helm import chart_repository, helm_env

__all__ = ["helm_env"]  # the autouse fixture: the real helm, caches in tmp_path

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: untrusted
clusters:
  - {name: c1, labels: {env: prod}}
bundles:
  paths: [web]
"""


@pytest.fixture
def web_chart_repo(tmp_path: Path, helm_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A chart named `web`, like the bundle: with `--post-renderer=...` as the chart, the
    release name is the only positional left, and helm fetches it as the chart."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "tls" / "server.crt"))
    with chart_repository(tmp_path, helm_env, {"web": ("0.1.0",)}) as url:
        yield url


def evil_script(tmp_path: Path) -> tuple[Path, Path]:
    """A post-renderer that leaves a marker file (and passes the manifests through)."""
    marker, script = tmp_path / "pwned", tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\ncat\n")
    script.chmod(0o755)
    return script, marker


def test_post_renderer_in_chart_is_refused_before_helm_runs(
    tmp_path: Path, web_chart_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    script, marker = evil_script(tmp_path)
    repo = tmp_path / "repo"
    (repo / "web").mkdir(parents=True)
    (repo / "fleet.yaml").write_text(DEFINITION)
    (repo / "web" / "fleet.yaml").write_text(
        f'helm:\n  repo: {web_chart_repo}\n  chart: "--post-renderer={script}"\n'
    )
    assert main(["validate", str(repo)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"{repo}/web/fleet.yaml:3: helm.chart: '--post-renderer={script}' starts with "
        "'-': a tool would read it as a flag"
    )
    assert main(["render", str(repo / "web")]) == 1
    assert main(["sync", str(repo), "--dry-run"]) == 1
    assert not marker.exists()


def test_the_renderer_refuses_a_flag_that_bypassed_validation(
    tmp_path: Path, web_chart_repo: str
) -> None:
    """Options built in code without validation (model_construct) still cannot pass a flag:
    the renderer checks again, and passes `--` before the positionals."""
    script, marker = evil_script(tmp_path)
    helm = HelmOptions.model_construct(repo=web_chart_repo, chart=f"--post-renderer={script}")
    request = RenderRequest(
        bundle_dir=tmp_path,
        repo_root=tmp_path,
        options=BundleOptions.model_construct(helm=helm),
        cluster=ClusterContext("c1"),
        bundle_name="web",
    )
    with pytest.raises(FleetError, match="starts with '-' and would be read as a flag"):
        render_bundle(request, FleetPlugins.load(entry_points=False))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("helm", "message"),
    [
        ({"repo": "http://charts.example.com", "chart": "x"}, "must be an https:// URL"),
        ({"repo": "file:///etc", "chart": "x"}, "must be an https:// URL"),
        ({"chart": "http://charts.example.com/x-1.0.0.tgz"}, "only https:// and oci://"),
        ({"chart": "file:///var/lib/other-repo/chart"}, "helm fetches charts over https or oci"),
        ({"chart": "git::https://example.com/charts.git"}, "helm fetches charts over https"),
        ({"chart": "https:///x.tgz"}, "has no host"),
        ({"repo": "https://c.example.com", "chart": "x", "version": "--devel"}, "flag"),
        ({"chart": "./c", "releaseName": "-x"}, "flag"),
    ],
)
def test_chart_sources_and_flags_are_checked_with_file_and_line(
    tmp_path: Path, helm: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    (repo / "web" / "c").mkdir(parents=True)
    (repo / "web" / "c" / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (repo / "fleet.yaml").write_text(DEFINITION)
    lines = "".join(f"  {key}: {value!r}\n" for key, value in helm.items())
    (repo / "web" / "fleet.yaml").write_text("helm:\n" + lines)
    assert main(["validate", "--no-render", str(repo)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"{repo}/web/fleet.yaml:"), line
    assert message in line


def test_namespace_and_kustomize_dir_cannot_be_flags(tmp_path: Path) -> None:
    for options in (
        {"namespace": "--kubeconfig=/x"},
        {"defaultNamespace": "-n"},
        {"kustomize": {"dir": "--enable-helm"}},
        {"targetCustomizations": [{"clusterName": "a", "namespace": "-a"}]},
    ):
        with pytest.raises(ValueError, match="starts with '-'"):
            BundleOptions.model_validate(options)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung chart repository."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(connection)  # held open, never read or written

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for connection in accepted:
            connection.close()


def test_a_hung_chart_server_times_out_and_names_the_bundle(
    tmp_path: Path, silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_RENDER_TIMEOUT", "2")
    request = RenderRequest(
        bundle_dir=tmp_path,
        repo_root=tmp_path,
        options=BundleOptions.model_validate({"helm": {"repo": silent_server, "chart": "demo"}}),
        cluster=ClusterContext("c1"),
        options_file=tmp_path / "fleet.yaml",
        bundle_name="web",
        cache_key="unit-1",
    )
    with pytest.raises(TransientError) as err:
        render_bundle(request, FleetPlugins.load(entry_points=False))
    assert str(err.value) == (
        f"{tmp_path}/fleet.yaml: helm template of bundle 'web' (chart {silent_server}/demo) "
        "timed out after 2 s (FLEET_RENDER_TIMEOUT) and was stopped"
    )
