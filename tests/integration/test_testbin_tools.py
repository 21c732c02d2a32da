"""helm and kustomize built from Go modules by tests/testbin/build.sh, run for real."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_helm_template_from_built_binary(binary: Callable[[str], str], tmp_path: Path) -> None:
    helm = binary("helm")
    assert "v3." in run(helm, "version", "--short")
    chart = tmp_path / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: demo\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n"
    )
    (chart / "values.yaml").write_text("replicas: 1\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        "data:\n  replicas: {{ .Values.replicas | quote }}\n"
        "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )
    out = run(helm, "template", "rel", str(chart), "--set", "replicas=3")
    doc = yaml.safe_load(out.split("---", 1)[1])
    assert doc["metadata"]["name"] == "rel"
    assert doc["data"]["replicas"] == "3"
    # build.sh sets helm's default Kubernetes version to the test clusters' minor version
    assert doc["data"]["kube"].startswith("v1.36")


def test_kustomize_build_from_built_binary(binary: Callable[[str], str], tmp_path: Path) -> None:
    kustomize = binary("kustomize")
    assert "v5." in run(kustomize, "version")
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: base\ndata:\n  a: '1'\n"
    )
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\nnamePrefix: prod-\ncommonLabels:\n  env: prod\n"
    )
    doc = yaml.safe_load(run(kustomize, "build", str(tmp_path)))
    assert doc["metadata"]["name"] == "prod-base"
    assert doc["metadata"]["labels"] == {"env": "prod"}
