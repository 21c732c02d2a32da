"""The built-in helm renderer with the real helm binary: local charts and a chart repository
served over HTTPS from a local directory (helm package + helm repo index)."""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import FleetError, TransientError
from fleet.plugin.manager import FleetPlugins
from fleet.render.api import RenderRequest
from fleet.render.cache import RenderCache
from fleet.render.pipeline import render_bundle
from fleet.spec.bundle_options import BundleOptions
from fleet.spec.cluster import ClusterContext
from tests.support.servers import free_port
from tests.support.tls import https_server, make_tls


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture(autouse=True)
def helm_env(binary: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The real helm, with its caches in a temporary directory (never the user's)."""
    helm: str = binary("helm")
    monkeypatch.delenv("FLEET_HELM", raising=False)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "helm-home" / name.lower()))
    return helm


def make_chart(chart: Path, *, extra_template: str | None = None) -> None:
    write(
        chart / "Chart.yaml",
        """
        apiVersion: v2
        name: demo
        version: 0.1.0
        kubeVersion: ">=1.20.0-0"
        """,
    )
    write(chart / "values.yaml", "replicas: 1\nimage: nginx:1\ncolor: default\n")
    write(
        chart / "templates" / "deployment.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
          namespace: {{ .Release.Namespace }}
          annotations:
            kube-version: {{ .Capabilities.KubeVersion.Version | quote }}
            color: {{ .Values.color | quote }}
        spec:
          replicas: {{ .Values.replicas }}
          template:
            spec:
              containers:
              - name: app
                image: {{ .Values.image | quote }}
        """,
    )
    write(
        chart / "templates" / "tests" / "test-connection.yaml",
        """
        apiVersion: v1
        kind: Pod
        metadata:
          name: {{ .Release.Name }}-test
          annotations: {"helm.sh/hook": test}
        spec: {containers: [{name: t, image: busybox}]}
        """,
    )
    write(
        chart / "crds" / "widgets.yaml",
        """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          group: example.com
          scope: Namespaced
          names: {kind: Widget, plural: widgets}
          versions:
          - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
        """,
    )
    if extra_template:
        write(chart / "templates" / "extra.yaml", extra_template)


def render(
    bundle: Path, root: Path, options: dict[str, Any], cluster: ClusterContext | None = None
) -> Any:
    request = RenderRequest(
        bundle_dir=bundle,
        repo_root=root,
        options=BundleOptions.model_validate(options),
        cluster=cluster or ClusterContext("c1", {"env": "prod"}),
        options_file=bundle / "fleet.yaml",
    )
    return render_bundle(request, FleetPlugins.load(entry_points=False), RenderCache())


def test_local_chart_with_values_files_and_values(tmp_path: Path) -> None:
    bundle = tmp_path / "web"
    make_chart(bundle / "chart")
    write(bundle / "values-prod.yaml", "replicas: 3\ncolor: from-file\nimage: nginx:2\n")
    options = {
        "helm": {
            "chart": "./chart",
            "valuesFiles": ["values-prod.yaml"],
            "values": {"color": "from-values"},
        },
        "defaultNamespace": "web-ns",
    }
    result = render(bundle, tmp_path, options)
    assert result.renderer == "helm"
    assert (
        result.renderer_version.startswith("helm v3.") and "fleet-helm" in result.renderer_version
    )
    kinds = [m["kind"] for m in result.manifests]
    assert kinds == ["CustomResourceDefinition", "Deployment"]  # CRDs included, test hook skipped
    deployment = result.manifests[1]
    assert deployment["metadata"]["name"] == "web"  # release name = bundle name
    assert deployment["metadata"]["namespace"] == "web-ns"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["annotations"]["color"] == "from-values"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"


def test_chart_kube_version_constraint_uses_the_cluster_version(tmp_path: Path) -> None:
    make_chart(tmp_path / "chart")
    new = render(
        tmp_path, tmp_path, {"helm": {"chart": "chart"}}, ClusterContext("c", kube_version="1.29.3")
    )
    deployment = next(m for m in new.manifests if m["kind"] == "Deployment")
    assert deployment["metadata"]["annotations"]["kube-version"] == "v1.29.3"
    with pytest.raises(FleetError) as err:
        render(
            tmp_path,
            tmp_path,
            {"helm": {"chart": "chart"}},
            ClusterContext("c", kube_version="1.19.0"),
        )
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'fleet.yaml'}: helm template failed for chart chart:")
    assert "kubeVersion" in message or "kube version" in message.lower()
    assert "\n" not in message


def test_chart_at_the_bundle_root_is_detected(tmp_path: Path) -> None:
    make_chart(tmp_path)
    result = render(tmp_path, tmp_path, {"helm": {"releaseName": "custom"}})
    assert result.renderer == "helm"
    assert (
        next(m for m in result.manifests if m["kind"] == "Deployment")["metadata"]["name"]
        == "custom"
    )


def test_template_error_is_one_line_with_the_chart(tmp_path: Path) -> None:
    make_chart(
        tmp_path / "chart",
        extra_template=(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            '  name: {{ required "set .Values.needed" .Values.needed }}\n'
        ),
    )
    with pytest.raises(FleetError) as err:
        render(tmp_path, tmp_path, {"helm": {"chart": "chart"}})
    message = str(err.value)
    assert "helm template failed for chart chart:" in message
    assert "set .Values.needed" in message
    assert "\n" not in message and "Traceback" not in message


def test_missing_chart_and_bad_values_file(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match=r"helm\.chart '\./nope' not found"):
        render(tmp_path, tmp_path, {"helm": {"chart": "./nope"}})
    make_chart(tmp_path / "chart")
    write(tmp_path / "list.yaml", "- not\n- a mapping\n")
    with pytest.raises(FleetError, match=r"^list\.yaml: values file is not a mapping$"):
        render(tmp_path, tmp_path, {"helm": {"chart": "chart", "valuesFiles": ["list.yaml"]}})
    with pytest.raises(FleetError, match="outside the repository"):
        render(tmp_path, tmp_path, {"helm": {"chart": "../../etc"}})


def test_templated_values_file_uses_the_cluster(tmp_path: Path) -> None:
    make_chart(tmp_path / "chart")
    write(tmp_path / "values.yaml", "color: ${ .ClusterLabels.env }\n")
    options = {"helm": {"chart": "chart", "valuesFiles": ["values.yaml"]}}
    plugins = FleetPlugins.load(entry_points=False)
    cache = RenderCache()
    colors = []
    for env in ("prod", "dev", "prod"):
        request = RenderRequest(
            tmp_path,
            tmp_path,
            BundleOptions.model_validate(options),
            ClusterContext("c", {"env": env}),
        )
        result = render_bundle(request, plugins, cache)
        deployment = next(m for m in result.manifests if m["kind"] == "Deployment")
        colors.append(deployment["metadata"]["annotations"]["color"])
    assert colors == ["prod", "dev", "prod"]
    assert (cache.misses, cache.hits) == (2, 1)


def test_helm_then_kustomize_post_render(tmp_path: Path) -> None:
    make_chart(tmp_path / "chart")
    write(
        tmp_path / "kustomize" / "kustomization.yaml",
        """
        commonLabels: {team: blue}
        patches:
        - patch: |
            - {op: replace, path: /spec/replicas, value: 7}
          target: {kind: Deployment}
        """,
    )
    result = render(
        tmp_path, tmp_path, {"helm": {"chart": "chart"}, "kustomize": {"dir": "kustomize"}}
    )
    assert result.renderer == "helm" and result.post_renderer == "kustomize"
    deployment = next(m for m in result.manifests if m["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 7
    assert deployment["metadata"]["labels"]["team"] == "blue"
    assert not (tmp_path / "kustomize" / "fleet-manifests.yaml").exists()  # worked on a copy


def test_missing_helm_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_chart(tmp_path)
    monkeypatch.setenv("FLEET_HELM", "/nonexistent/helm")
    with pytest.raises(FleetError, match="helm not found: FLEET_HELM=/nonexistent/helm"):
        render(tmp_path, tmp_path, {})
    monkeypatch.delenv("FLEET_HELM")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    # fleet also looks next to the interpreter (`make testbin` links helm into .venv/bin)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "empty" / "python"))
    with pytest.raises(FleetError, match=r"^helm not found on PATH \(set FLEET_HELM\)$"):
        render(tmp_path, tmp_path, {})


@contextmanager
def chart_repository(
    tmp_path: Path, helm: str, charts: dict[str, tuple[str, ...]]
) -> Iterator[str]:
    """A real chart repository: `helm package` + `helm repo index`, served over HTTPS with a
    self-signed certificate that helm (SSL_CERT_FILE) is told to trust. Yields its URL."""
    served = tmp_path / "served"
    served.mkdir()
    for name, versions in charts.items():
        for version in versions:
            chart = tmp_path / "src" / name / version
            make_chart(chart)
            chart_yaml = (chart / "Chart.yaml").read_text().replace("0.1.0", version)
            (chart / "Chart.yaml").write_text(chart_yaml.replace("name: demo", f"name: {name}"))
            (chart / "values.yaml").write_text(f"replicas: 1\nimage: nginx:1\ncolor: v{version}\n")
            subprocess.run(
                [helm, "package", str(chart), "-d", str(served)], check=True, capture_output=True
            )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    with https_server(handler, make_tls(tmp_path / "tls")) as url:
        subprocess.run(
            [helm, "repo", "index", str(served), "--url", url], check=True, capture_output=True
        )
        yield url


@pytest.fixture
def chart_repo(tmp_path: Path, helm_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Chart `demo` in versions 0.1.0, 0.2.0 and 1.0.0, over HTTPS."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "tls" / "server.crt"))
    with chart_repository(tmp_path, helm_env, {"demo": ("0.1.0", "0.2.0", "1.0.0")}) as url:
        yield url


def test_chart_from_a_repository_with_a_semver_range(tmp_path: Path, chart_repo: str) -> None:
    bundle = tmp_path / "remote"
    bundle.mkdir()
    options = {"helm": {"repo": chart_repo, "chart": "demo", "version": ">=0.1.0 <1.0.0"}}
    result = render(bundle, tmp_path, options)
    deployment = next(m for m in result.manifests if m["kind"] == "Deployment")
    assert deployment["metadata"]["annotations"]["color"] == "v0.2.0"  # highest match of the range
    options["helm"]["version"] = "1.0.0"
    result = render(bundle, tmp_path, options)
    deployment = next(m for m in result.manifests if m["kind"] == "Deployment")
    assert deployment["metadata"]["annotations"]["color"] == "v1.0.0"
    options["helm"]["version"] = "9.9.9"
    with pytest.raises(
        FleetError, match=re.escape(f"helm template failed for chart {chart_repo}/demo@9.9.9")
    ):
        render(bundle, tmp_path, options)


def test_a_chart_server_down_is_transient_and_not_remembered(
    tmp_path: Path, chart_repo: str
) -> None:
    """Fetch failure -> TransientError (retry later); a missing version stays a user error.
    One cache across both calls: the outage must not fail the unit once the server is back."""
    bundle = tmp_path / "remote"
    bundle.mkdir()
    dead = f"https://127.0.0.1:{free_port()}"
    request = RenderRequest(
        bundle_dir=bundle,
        repo_root=tmp_path,
        options=BundleOptions.model_validate({"helm": {"repo": dead, "chart": "demo"}}),
        cluster=ClusterContext("c1", {}),
        options_file=bundle / "fleet.yaml",
        cache_key="unit-1",
    )
    plugins, cache = FleetPlugins.load(entry_points=False), RenderCache()
    with pytest.raises(TransientError, match=re.escape(f"helm template failed for chart {dead}")):
        render_bundle(request, plugins, cache)
    with pytest.raises(TransientError):
        render_bundle(request, plugins, cache)  # tried again, not answered from the cache
    assert cache.hits == 0
    missing = {"helm": {"repo": chart_repo, "chart": "demo", "version": "9.9.9"}}
    with pytest.raises(FleetError) as err:
        render(bundle, tmp_path, missing)
    assert not isinstance(err.value, TransientError)
