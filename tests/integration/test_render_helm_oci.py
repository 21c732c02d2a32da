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


def _chart(base: Path, version: str) -> Path:
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
            """
        )
    )
    return chart


def _push_charts(helm: str, registry: RegistryServer, tls: TlsFiles, base: Path) -> None:
    env_flags = [f"--registry-config={registry.auth_file()}", f"--ca-file={tls.cert}"]
    for version in VERSIONS:
        chart = _chart(base, version)
        subprocess.run(
            [helm, "package", str(chart), f"--destination={base}"], check=True, capture_output=True
        )
        done = subprocess.run(
            [helm, "push", str(base / f"web-{version}.tgz"), f"oci://{registry.host}/charts",
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
