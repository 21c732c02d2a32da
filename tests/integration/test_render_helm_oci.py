"""Helm charts from OCI registries, for real: the built helm pushes a chart to the test
bed's registries (htpasswd and token auth) and fleet's helm renderer pulls it with the
credential the definition's `registries` names, through a registry config file made for
that run, never on helm's command line."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

import plugins.render_helm as render_helm
from fleet.errors import FleetError
from fleet.plugin.manager import FleetPlugins
from fleet.process import ToolResult
from fleet.render.api import RenderRequest
from fleet.render.cache import RenderCache
from fleet.render.pipeline import render_bundle
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.cluster import ClusterContext
from fleet.spec.definition import RegistrySpec
from tests.support.registry import RegistryServer
from tests.support.tls import TlsFiles

VERSIONS = ("0.1.0", "0.2.0", "1.0.0")


def _chart(base: Path, version: str, marker: str = "first") -> Path:
    chart = base / f"web-{version}"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: web\nversion: {version}\n")
    (chart / "templates" / "cm.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {{ .Release.Name }}
            data:
              chart: {{ .Chart.Version | quote }}
              marker: MARKER
            """
        ).replace("MARKER", marker)
    )
    return chart


def _push_charts(
    helm: str,
    registry: RegistryServer,
    tls: TlsFiles,
    base: Path,
    versions: tuple[str, ...] = VERSIONS,
    path: str = "charts",
    marker: str = "first",
) -> None:
    env_flags = [f"--registry-config={registry.auth_file()}", f"--ca-file={tls.cert}"]
    for version in versions:
        chart = _chart(base, version, marker)
        subprocess.run(
            [helm, "package", str(chart), f"--destination={base}"], check=True, capture_output=True
        )
        done = subprocess.run(
            [helm, "push", str(base / f"web-{version}.tgz"), f"oci://{registry.host}/{path}",
             *env_flags],
            capture_output=True,
            text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def pushed(
    binary: Any,
    htpasswd_registry: RegistryServer,
    token_registry: RegistryServer,
    registry_tls: TlsFiles,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, RegistryServer]:
    helm: str = binary("helm")
    for registry in (htpasswd_registry, token_registry):
        _push_charts(helm, registry, registry_tls, tmp_path_factory.mktemp("charts"))
    return {"htpasswd": htpasswd_registry, "token": token_registry}


@pytest.fixture(autouse=True)
def helm_env(
    binary: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry_tls: TlsFiles
) -> None:
    binary("helm")
    monkeypatch.delenv("FLEET_HELM", raising=False)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "helm-home" / name.lower()))
    registry_tls.trust(monkeypatch)


def _render(
    tmp_path: Path, registry: RegistryServer, version: str, *, credential: str | None = "bed"
) -> list[dict[str, Any]]:
    bundle = tmp_path / "repo" / "web"
    bundle.mkdir(parents=True, exist_ok=True)
    options = BundleOptions.model_validate(
        {"helm": {"chart": f"oci://{registry.host}/charts/web", "version": version}}
    )
    spec = RegistrySpec(name="bed", type="oci", host=registry.host, credential=credential)
    request = RenderRequest(
        bundle_dir=bundle,
        repo_root=tmp_path / "repo",
        options=options,
        cluster=ClusterContext(name="c1"),
        bundle_name="web",
        registries=(spec,),
    )
    return render_bundle(request, FleetPlugins.load(entry_points=False), RenderCache()).manifests


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_oci_chart_with_a_version_range_and_the_definitions_credential(
    auth: str,
    pushed: dict[str, RegistryServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = pushed[auth]
    user, password = next(iter(registry.users.items()))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    runs: list[list[str]] = []
    config_files: list[Path] = []
    original = render_helm.run_tool

    def spy(argv: list[str], **kwargs: Any) -> ToolResult:  # the real run, recorded
        runs.append(list(argv))
        for arg in argv:
            if arg.startswith("--registry-config="):
                path = Path(arg.split("=", 1)[1])
                assert oct(path.stat().st_mode & 0o777) == "0o600"
                config_files.append(path)
        return original(argv, **kwargs)

    monkeypatch.setattr(render_helm, "run_tool", spy)
    manifests = _render(tmp_path, registry, ">=0.1.0 <1.0.0")
    assert [m["data"]["chart"] for m in manifests] == ["0.2.0"]  # the highest in the range
    template = next(run for run in runs if "template" in run)
    assert not any(password in arg for arg in template)
    assert config_files and not any(path.exists() for path in config_files)  # removed


def test_oci_chart_without_the_credential_fails_in_one_line(
    pushed: dict[str, RegistryServer], tmp_path: Path
) -> None:
    with pytest.raises(
        FleetError, match=r"helm template failed for chart oci://.*basic credential not found"
    ):
        _render(tmp_path, pushed["htpasswd"], "0.1.0", credential=None)


def test_oci_chart_with_an_unset_credential_names_the_variables(
    pushed: dict[str, RegistryServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEET_REGISTRY_USERNAME_BED", raising=False)
    monkeypatch.delenv("FLEET_REGISTRY_PASSWORD_BED", raising=False)
    with pytest.raises(FleetError, match="set FLEET_REGISTRY_USERNAME_BED and FLEET_REG"):
        _render(tmp_path, pushed["token"], "0.1.0")


def _fleet_repo(root: Path, registry: RegistryServer, version: str) -> Path:
    (root / "web").mkdir(parents=True)
    (root / "fleet.yaml").write_text(
        "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: charts\n"
        "clusters: [{name: c1}, {name: c2}]\nbundles: {paths: [web]}\n"
        f"registries:\n  - {{name: bed, type: oci, host: '{registry.host}', credential: bed}}\n"
    )
    (root / "web" / "fleet.yaml").write_text(
        f"helm:\n  chart: oci://{registry.host}/pinned/web\n  version: '{version}'\n"
    )
    return root


def test_a_version_range_is_resolved_once_and_pinned_in_the_deployment_id(
    pushed: dict[str, RegistryServer],
    binary: Any,
    registry_tls: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every cluster renders the version resolved when the commit was targeted, even when
    a newer matching version is pushed meanwhile; the next load pins the new one."""
    from fleet.desired import DesiredState
    from fleet.spec.loader import load_repository

    registry = pushed["token"]
    user, password = next(iter(registry.users.items()))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "cache"))
    helm: str = binary("helm")
    _push_charts(helm, registry, registry_tls, tmp_path / "first", ("0.1.0", "0.2.0"), "pinned")
    repo = _fleet_repo(tmp_path / "repo", registry, ">=0.1.0 <0.9.0")
    plugins = FleetPlugins.load(entry_points=False)
    state = DesiredState.target(load_repository(repo), "", plugins)
    ids = {unit.deployment_id for unit in state.units}
    assert len(ids) == 1  # both clusters: one id, with the pin in it
    assert state.pins is not None
    (pin,) = state.pins.pins.values()
    assert pin.version == "0.2.0" and pin.digest.startswith("sha256:")

    # before the units render, a newer matching chart appears and 0.2.0 is pushed again
    # with other content
    _push_charts(helm, registry, registry_tls, tmp_path / "late", ("0.3.0",), "pinned")
    _push_charts(helm, registry, registry_tls, tmp_path / "again", ("0.2.0",), "pinned", "again")
    rendered = [state.manifests(unit)[0]["data"] for unit in state.units]
    # what was pinned (version and bytes), not what helm would pick now
    assert rendered == [{"chart": "0.2.0", "marker": "first"}] * 2

    later = DesiredState.target(load_repository(repo), "", plugins)
    assert {unit.deployment_id for unit in later.units} != ids  # the new version, a new id
    assert [later.manifests(unit)[0]["data"]["chart"] for unit in later.units] == ["0.3.0"] * 2


def test_a_worker_targets_with_the_schedulers_pins_from_redis(
    pushed: dict[str, RegistryServer],
    binary: Any,
    registry_tls: TlsFiles,
    redis_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scheduler writes a commit's pins to Redis; a worker loading the commit after a
    newer chart was pushed gets the scheduler's ids and renders the scheduler's version
    (without them it would compute another id and skip the task as stale)."""
    from fleet.desired import DesiredState
    from fleet.runtime.state_cache import StateCache
    from fleet.spec.loader import load_repository

    registry = pushed["htpasswd"]
    user, password = next(iter(registry.users.items()))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "cache"))
    helm: str = binary("helm")
    _push_charts(helm, registry, registry_tls, tmp_path / "first", ("1.0.0",), "workers")
    repo = tmp_path / "repo"
    _fleet_repo(repo, registry, "^1.0.0")
    (repo / "web" / "fleet.yaml").write_text(
        f"helm:\n  chart: oci://{registry.host}/workers/web\n  version: '^1.0.0'\n"
    )
    plugins = FleetPlugins.load(entry_points=False)
    scheduler = DesiredState.target(load_repository(repo), "c0ffee", plugins)
    assert scheduler.pins is not None
    cache = StateCache.from_url(redis_server.url, f"pins-{tmp_path.name}")
    cache.set_chart_pins("c0ffee", scheduler.pins.all())

    _push_charts(helm, registry, registry_tls, tmp_path / "late", ("1.1.0",), "workers")
    pins = cache.chart_pins("c0ffee")
    assert [(p.version, p.wanted) for p in pins] == [("1.0.0", "^1.0.0")]
    worker = DesiredState.target(load_repository(repo), "c0ffee", plugins, pins=pins)
    assert [u.deployment_id for u in worker.units] == [u.deployment_id for u in scheduler.units]
    assert {worker.manifests(u)[0]["data"]["chart"] for u in worker.units} == {"1.0.0"}
    unpinned = DesiredState.target(load_repository(repo), "c0ffee", plugins)
    assert [u.deployment_id for u in unpinned.units] != [u.deployment_id for u in scheduler.units]
