"""Rancher Fleet's `${ }` helm values templating, and its errors with file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import FleetError
from fleet.spec.cluster import ClusterContext
from fleet.spec.definition import TargetCluster
from fleet.spec.loader import load_bundle
from fleet.targeting.templating import (
    EVERYTHING,
    TemplateError,
    build_context,
    render_string,
    render_values,
    template_context,
    template_uses,
)
from fleet.targeting.units import unit_for_cluster

CTX = build_context("prod-eu", {"env": "prod", "region": "eu", "replicas": "3"}, {"team": "a"})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${ .ClusterName }", "prod-eu"),
        ("${.ClusterLabels.region}", "eu"),
        ("app-${ .ClusterLabels.env }-${ .ClusterLabels.region }", "app-prod-eu"),
        ("${ .ClusterAnnotations.team }", "a"),
        ("${ .ClusterNamespace }", "fleet-default"),
        ('${ get .ClusterLabels "region" }', "eu"),
        ('${ get .ClusterLabels "zone" }', ""),
        ('${ get .ClusterLabels "zone" | default "z1" }', "z1"),
        ('${ default "z1" (get .ClusterLabels "region") }', "eu"),
        ("${ .ClusterLabels.region | upper }", "EU"),
        ('${ "ABC" | lower }', "abc"),
        ("${ .ClusterLabels.replicas }", 3),
        ("${ .ClusterLabels.replicas | quote }", "3"),
        ("n=${ .ClusterLabels.replicas | quote }", 'n="3"'),
        ('${ index .ClusterLabels "env" }', "prod"),
        ('${ replace "-" "_" .ClusterName }', "prod_eu"),
        ('${ hasKey .ClusterLabels "env" }', True),
        ("plain text", "plain text"),
    ],
)
def test_render_string(template: str, expected: Any) -> None:
    assert render_string(template, CTX) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${ .ClusterLabels.zone }", "map has no entry for key 'zone' in .ClusterLabels"),
        ("${ .Nope }", "map has no entry for key 'Nope'"),
        ("${ uper .ClusterName }", "unknown template function 'uper'; did you mean 'upper'?"),
        ("${ .ClusterName | exec }", "unknown template function 'exec'"),
        ("${ .ClusterName", "unterminated"),
        ("${ }", "empty template action"),
        ('${ required "region label needed" (get .ClusterLabels "zone") }', "region label needed"),
    ],
)
def test_render_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render_string(template, CTX)


def test_render_values_walks_keys_lists_and_reports_path() -> None:
    values = {"a": ["x-${ .ClusterName }", {"${ .ClusterLabels.env }": 1}], "n": 2}
    assert render_values(values, CTX) == {"a": ["x-prod-eu", {"prod": 1}], "n": 2}
    with pytest.raises(TemplateError) as info:
        render_values({"a": {"b": [1, "${ .ClusterLabels.zone }"]}}, CTX)
    assert info.value.path == ("a", "b", 1)


def bundle_dir(tmp_path: Path, fleet_yaml: str) -> Path:
    (tmp_path / "b/chart").mkdir(parents=True)
    (tmp_path / "b/chart/Chart.yaml").write_text("name: c\nversion: 1.0.0\n")
    (tmp_path / "b/fleet.yaml").write_text(textwrap.dedent(fleet_yaml))
    return tmp_path / "b"


def test_missing_label_error_has_bundle_file_and_line(tmp_path: Path) -> None:
    path = bundle_dir(
        tmp_path,
        """\
        helm:
          chart: ./chart
          values:
            zone: ${ .ClusterLabels.zone }
        """,
    )
    bundle = load_bundle(path)
    with pytest.raises(FleetError) as info:
        unit_for_cluster(bundle, ClusterContext("c1", {}))
    assert str(info.value) == (
        f"{path / 'fleet.yaml'}:4: bundle 'b': helm values template: map has no entry for key "
        "'zone' in .ClusterLabels (cluster 'c1')"
    )


def test_syntax_error_in_customization_reported_without_any_cluster(tmp_path: Path) -> None:
    path = bundle_dir(
        tmp_path,
        """\
        helm:
          chart: ./chart
        targetCustomizations:
          - clusterName: other
            helm:
              values:
                x: ${ nope .ClusterName }
        """,
    )
    with pytest.raises(FleetError, match=r"fleet.yaml:7: .*unknown template function 'nope'"):
        unit_for_cluster(load_bundle(path), ClusterContext("c1", {}))


def test_disable_pre_process_keeps_text(tmp_path: Path) -> None:
    path = bundle_dir(
        tmp_path,
        """\
        helm:
          chart: ./chart
          disablePreProcess: true
          values: {x: "${ .ClusterLabels.zone }"}
        """,
    )
    unit = unit_for_cluster(load_bundle(path), ClusterContext("c1", {}))
    assert unit is not None and unit.options.helm is not None
    assert unit.options.helm.values == {"x": "${ .ClusterLabels.zone }"}


def test_annotations_from_target_cluster(tmp_path: Path) -> None:
    path = bundle_dir(
        tmp_path,
        "helm:\n  chart: ./chart\n  values: {owner: '${ .ClusterAnnotations.owner }'}\n",
    )
    cluster = TargetCluster("c1", {}, annotations={"owner": "ops"})
    unit = unit_for_cluster(load_bundle(path), cluster)
    assert unit is not None and unit.options.helm is not None
    assert unit.options.helm.values == {"owner": "ops"}


def test_template_context_for_renderers() -> None:
    ctx = template_context(TargetCluster("c1", {"env": "dev"}, annotations={"a": "b"}))
    assert render_values({"x": "${ .ClusterAnnotations.a }-${ .ClusterLabels.env }"}, ctx) == {
        "x": "b-dev"
    }
    assert template_context(ClusterContext("c2"))["ClusterAnnotations"] == {}


def test_template_uses_limits_the_cache_key() -> None:
    uses = template_uses(
        {"a": "${ .ClusterLabels.region }", "b": ['${ get .ClusterAnnotations "x" }']}
    )
    assert uses.name is False and uses.labels == {"region"} and uses.annotations is None
    assert uses.key("c1", {"region": "eu", "env": "dev"}, {}) == uses.key(
        "c2", {"region": "eu", "env": "prod"}, {}
    )
    assert template_uses("${ . }") == EVERYTHING


def test_same_templated_result_same_id_across_clusters(tmp_path: Path) -> None:
    path = bundle_dir(
        tmp_path, "helm:\n  chart: ./chart\n  values: {r: '${ .ClusterLabels.region }'}\n"
    )
    bundle = load_bundle(path)
    one = unit_for_cluster(bundle, ClusterContext("a", {"region": "eu", "env": "dev"}))
    two = unit_for_cluster(bundle, ClusterContext("b", {"region": "eu"}))
    three = unit_for_cluster(bundle, ClusterContext("c", {"region": "us"}))
    assert one is not None and two is not None and three is not None
    assert one.deployment_id == two.deployment_id != three.deployment_id
