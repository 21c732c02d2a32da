"""Helm values keys are strings, as Helm's own YAML parser makes them (fuzz finding: mixed
int and str keys in templated targetCustomization values crashed the deployment-id hash)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.spec.bundle_options import HelmOptions
from fleet.spec.loader import load_repository
from fleet.targeting.units import compute_units

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: keys
clusters:
  - {name: dev, labels: {env: dev}}
  - {name: prod, labels: {env: prod}}
bundles:
  paths: [app]
"""


def repo(tmp_path: Path, bundle_yaml: str) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "fleet.yaml").write_text(DEFINITION)
    (tmp_path / "app" / "fleet.yaml").write_text(textwrap.dedent(bundle_yaml))
    return tmp_path


def test_mixed_keys_in_templated_customization_values_target(tmp_path: Path) -> None:
    root = repo(
        tmp_path,
        """\
        helm:
          values: {ports: {80: http, name: web}}
        targetCustomizations:
        - name: prod
          clusterSelector: {matchLabels: {env: prod}}
          helm:
            values: {extra: {1: a, b: "${ .ClusterName }", 2.5: c}}
        """,
    )
    units = {u.cluster: u for u in compute_units(load_repository(root))}
    helm = units["prod"].options.helm
    assert helm is not None
    assert helm.values == {
        "ports": {"80": "http", "name": "web"},
        "extra": {"1": "a", "b": "prod", "2.5": "c"},
    }
    assert units["dev"].deployment_id != units["prod"].deployment_id


def test_keys_become_helm_strings() -> None:
    helm = HelmOptions.model_validate({"values": {"a": [{2.5: 1, False: 2}], 7: {"x": 1}}})
    assert helm.values == {"a": [{"2.5": 1, "false": 2}], "7": {"x": 1}}
    with pytest.raises(ValueError, match="a values key must be a string, a number or a boolean"):
        HelmOptions.model_validate({"values": {"a": {None: 1}}})


def test_a_key_given_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="values key '1' is given twice"):
        HelmOptions.model_validate({"values": {"a": {1: "x", "1": "y"}}})


def test_a_null_key_is_a_file_line_error(tmp_path: Path) -> None:
    root = repo(
        tmp_path,
        """\
        helm:
          values:
            a: {~: x}
        """,
    )
    with pytest.raises(FleetError) as err:
        load_repository(root)
    (problem,) = err.value.problems
    assert problem.file == str(root / "app" / "fleet.yaml")
    assert problem.line is not None
    assert "a values key must be a string, a number or a boolean, not None" in problem.message
