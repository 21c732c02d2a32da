"""Targeting: which bundle goes where, merged options, deployment ids."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.spec.bundle_options import LabelSelector
from fleet.spec.cluster import ClusterContext
from fleet.spec.loader import load_bundle, load_repository
from fleet.targeting.units import compute_units, unit_for_cluster

ROOT = Path(__file__).resolve().parents[2]

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: test
clusters:
  - {name: dev-eu, labels: {env: dev, region: eu}}
  - {name: prod-eu, labels: {env: prod, region: eu}}
  - {name: prod-us, labels: {env: prod, region: us}}
groups:
  - {name: prod, selector: {matchLabels: {env: prod}}, labels: {tier: production}}
  - {name: eu, selector: {matchLabels: {region: eu}}}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def fleet_repo(tmp_path: Path, bundles: str, files: dict[str, str]) -> Path:
    write(tmp_path / "fleet.yaml", DEFINITION + textwrap.dedent(bundles))
    for name, text in files.items():
        write(tmp_path / name, text)
    return tmp_path


def table(tmp_path: Path) -> dict[tuple[str, str], str | None]:
    units = compute_units(load_repository(tmp_path))
    return {(u.bundle, u.cluster): u.customization for u in units}


def test_example_targets(tmp_path: Path) -> None:
    shutil.copy(ROOT / "fleet.example.yaml", tmp_path / "fleet.yaml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    units = compute_units(load_repository(tmp_path))
    assert len(units) == 9
    by_key = {(u.bundle, u.cluster): u for u in units}
    web_eu = by_key["web", "prod-eu"].options.helm
    assert web_eu is not None
    assert web_eu.values["region"] == "eu"
    assert web_eu.values["replicaCount"] == 3
    assert web_eu.values["greeting"] == "hello from prod-eu"
    assert web_eu.values_files == ["values-prod.yaml"]
    assert by_key["web", "prod-us"].options.helm.values["region"] == "us"  # type: ignore[union-attr]
    assert by_key["web", "dev-eu"].customization is None
    guestbook = by_key["guestbook", "prod-us"].options.kustomize
    assert guestbook is not None and guestbook.dir == "overlays/prod"
    assert by_key["platform-config", "prod-eu"].options.yaml.overlays == ["prod"]  # type: ignore[union-attr]
    assert all(not u.options.target_customizations for u in units)
    # same merged inputs -> same id; templated region makes prod-eu and prod-us differ
    assert (
        by_key["guestbook", "prod-eu"].deployment_id == by_key["guestbook", "prod-us"].deployment_id
    )
    assert by_key["web", "prod-eu"].deployment_id != by_key["web", "prod-us"].deployment_id
    assert by_key["web", "prod-eu"].region == "eu"


def test_targets_any_entry_all_criteria(tmp_path: Path) -> None:
    fleet_repo(
        tmp_path,
        """\
        bundles:
          paths:
            - glob: only-prod-eu
              targets:
                - {clusterGroup: prod, clusterSelector: {matchLabels: {region: eu}}}
            - glob: dev-or-us
              targets:
                - clusterName: dev-eu
                - clusterSelector: {matchLabels: {region: us}}
            - glob: by-group-labels
              targets:
                - clusterGroupSelector: {matchLabels: {tier: production}}
            - everywhere
        """,
        {
            f"{b}/cm.yaml": "kind: ConfigMap\n"
            for b in ("only-prod-eu", "dev-or-us", "by-group-labels", "everywhere")
        },
    )
    got = table(tmp_path)
    assert sorted(c for b, c in got if b == "only-prod-eu") == ["prod-eu"]
    assert sorted(c for b, c in got if b == "dev-or-us") == ["dev-eu", "prod-us"]
    assert sorted(c for b, c in got if b == "by-group-labels") == ["prod-eu", "prod-us"]
    assert sorted(c for b, c in got if b == "everywhere") == ["dev-eu", "prod-eu", "prod-us"]


def test_customizations_first_match_wins_and_do_not_deploy(tmp_path: Path) -> None:
    fleet_repo(
        tmp_path,
        "bundles:\n  paths: [app]\n",
        {
            "app/cm.yaml": "kind: ConfigMap\n",
            "app/fleet.yaml": """\
            namespace: base
            namespaceLabels: {a: "1"}
            targetCustomizations:
              - name: skip-us
                clusterSelector: {matchLabels: {region: us}}
                doNotDeploy: true
              - name: prod
                clusterGroup: prod
                namespace: prod-ns
                namespaceLabels: {b: "2"}
                keepResources: true
              - name: eu-never-reached-for-prod-eu
                clusterGroup: eu
                namespace: eu-ns
            """,
        },
    )
    units = {u.cluster: u for u in compute_units(load_repository(tmp_path))}
    assert set(units) == {"dev-eu", "prod-eu"}
    assert units["prod-eu"].customization == "prod"
    assert units["prod-eu"].options.namespace == "prod-ns"
    assert units["prod-eu"].options.namespace_labels == {"a": "1", "b": "2"}
    assert units["prod-eu"].options.keep_resources is True
    assert units["dev-eu"].customization == "eu-never-reached-for-prod-eu"
    assert units["dev-eu"].options.namespace == "eu-ns"
    assert units["dev-eu"].options.keep_resources is False


def test_helm_merge_rules(tmp_path: Path) -> None:
    fleet_repo(
        tmp_path,
        "bundles:\n  paths: [app]\n",
        {
            "app/chart/Chart.yaml": "name: c\nversion: 1.0.0\n",
            "app/base.yaml": "a: 1\n",
            "app/prod.yaml": "a: 2\n",
            "app/fleet.yaml": """\
            helm:
              chart: ./chart
              version: 1.0.0
              releaseName: app
              values: {image: {repo: r, tag: "1"}, replicas: 1}
              valuesFiles: [base.yaml]
            targetCustomizations:
              - name: prod
                clusterGroup: prod
                helm:
                  version: 2.0.0
                  values: {image: {tag: "2"}}
                  valuesFiles: [prod.yaml]
            """,
        },
    )
    units = {u.cluster: u for u in compute_units(load_repository(tmp_path))}
    helm = units["prod-us"].options.helm
    assert helm is not None
    assert helm.values == {"image": {"repo": "r", "tag": "2"}, "replicas": 1}
    assert helm.version == "2.0.0" and helm.release_name == "app" and helm.chart == "./chart"
    assert helm.values_files == ["base.yaml", "prod.yaml"]
    dev = units["dev-eu"].options.helm
    assert dev is not None and dev.values_files == ["base.yaml"] and dev.version == "1.0.0"


def test_deployment_ids_change_only_for_affected_units(tmp_path: Path) -> None:
    shutil.copy(ROOT / "fleet.example.yaml", tmp_path / "fleet.yaml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")

    def ids() -> dict[tuple[str, str], str]:
        return {
            (u.bundle, u.cluster): u.deployment_id for u in compute_units(load_repository(tmp_path))
        }

    before = ids()
    assert ids() == before  # same inputs, same ids
    values = tmp_path / "examples/bundles/web/values-prod.yaml"
    values.write_text(values.read_text() + "extra: true\n")
    after = ids()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {("web", "prod-eu"), ("web", "prod-us")}
    # a file every unit of a bundle renders changes all of that bundle's units
    (tmp_path / "examples/bundles/guestbook/base/service.yaml").write_text("kind: Service\n")
    again = ids()
    assert {k for k in after if after[k] != again[k]} == {
        ("guestbook", "dev-eu"),
        ("guestbook", "prod-eu"),
        ("guestbook", "prod-us"),
    }


def test_renderer_version_is_part_of_the_id(tmp_path: Path) -> None:
    fleet_repo(tmp_path, "bundles:\n  paths: [app]\n", {"app/cm.yaml": "kind: ConfigMap\n"})
    repo = load_repository(tmp_path)
    one = compute_units(repo, renderer_of=lambda b: "yaml@1")
    two = compute_units(repo, renderer_of=lambda b: "yaml@2")
    assert one[0].renderer == "yaml@1"
    assert one[0].deployment_id != two[0].deployment_id
    assert compute_units(repo)[0].renderer == "auto"


def test_external_chart_is_hashed(tmp_path: Path) -> None:
    fleet_repo(
        tmp_path,
        "bundles:\n  paths: [app]\n",
        {
            "shared/chart/Chart.yaml": "name: c\nversion: 1.0.0\n",
            "shared/chart/templates/cm.yaml": "kind: ConfigMap\n",
            "app/fleet.yaml": "helm:\n  chart: ../shared/chart\n",
        },
    )
    first = compute_units(load_repository(tmp_path))[0].deployment_id
    write(tmp_path / "shared/chart/templates/cm.yaml", "kind: ConfigMap\nmetadata: {}\n")
    assert compute_units(load_repository(tmp_path))[0].deployment_id != first


def test_templated_values_file_makes_id_per_cluster(tmp_path: Path) -> None:
    fleet_repo(
        tmp_path,
        "bundles:\n  paths: [app]\n",
        {
            "app/chart/Chart.yaml": "name: c\nversion: 1.0.0\n",
            "app/values.yaml": "region: ${ .ClusterLabels.region }\n",
            "app/fleet.yaml": "helm:\n  chart: ./chart\n  valuesFiles: [values.yaml]\n",
        },
    )
    ids = {u.cluster: u.deployment_id for u in compute_units(load_repository(tmp_path))}
    assert len(set(ids.values())) == 3


def test_unit_for_cluster_standalone(tmp_path: Path) -> None:
    write(
        tmp_path / "b/fleet.yaml",
        """\
        helm:
          chart: ./chart
          values: {name: "${ .ClusterName }"}
        targetCustomizations:
          - clusterGroup: prod
            helm: {values: {prod: true}}
          - clusterName: skip-me
            doNotDeploy: true
        """,
    )
    write(tmp_path / "b/chart/Chart.yaml", "name: c\nversion: 1.0.0\n")
    bundle = load_bundle(tmp_path / "b")
    groups = {"prod": LabelSelector.model_validate({"matchLabels": {"env": "prod"}})}
    unit = unit_for_cluster(bundle, ClusterContext("c1", {"env": "prod"}), groups)
    assert unit is not None and unit.options.helm is not None
    assert unit.options.helm.values == {"name": "c1", "prod": True}
    assert unit.customization == "targetCustomizations[0]"
    assert unit_for_cluster(bundle, ClusterContext("skip-me", {})) is None


def test_customization_needs_a_criterion(tmp_path: Path) -> None:
    write(tmp_path / "b/fleet.yaml", "targetCustomizations:\n  - name: x\n    namespace: y\n")
    with pytest.raises(FleetError, match=r"fleet.yaml:2: targetCustomizations\[0\] needs"):
        load_bundle(tmp_path / "b")


def test_shared_kustomize_base_outside_bundle_is_hashed(tmp_path: Path) -> None:
    fleet_repo(
        tmp_path,
        "bundles:\n  paths: [app]\n",
        {
            "shared/base/kustomization.yaml": "resources: [cm.yaml]\n",
            "shared/base/cm.yaml": "kind: ConfigMap\n",
            "app/kustomization.yaml": "resources:\n  - ../shared/base\n",
        },
    )
    first = compute_units(load_repository(tmp_path))[0].deployment_id
    write(tmp_path / "shared/base/cm.yaml", "kind: ConfigMap\ndata: {a: b}\n")
    assert compute_units(load_repository(tmp_path))[0].deployment_id != first


def test_kustomize_reference_outside_repo_is_an_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(tmp_path / "outside/kustomization.yaml", "resources: []\n")
    fleet_repo(
        repo,
        "bundles:\n  paths: [app]\n",
        {"app/kustomization.yaml": "resources:\n  - ok.yaml\n  - ../../outside\n"},
    )
    with pytest.raises(FleetError) as info:
        load_repository(repo)
    assert str(info.value) == (
        f"{repo / 'app/kustomization.yaml'}:3: kustomize resource '../../outside' "
        "is outside the repository"
    )
