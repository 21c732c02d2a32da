"""The root fleet.yaml: strict models, file:line errors with hints, references, example."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.runtime.credentials import resolve_kubeconfig
from fleet.spec.definition import ClusterSpec, cluster_context
from fleet.spec.loader import load_bundle, load_repository
from fleet.spec.yamlload import load_yaml_text

ROOT = Path(__file__).resolve().parents[2]

HEADER = "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: test\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def repo_with(tmp_path: Path, body: str) -> Path:
    write(tmp_path / "fleet.yaml", HEADER + textwrap.dedent(body))
    return tmp_path


def problems(tmp_path: Path) -> list[str]:
    with pytest.raises(FleetError) as info:
        load_repository(tmp_path)
    return [str(p) for p in info.value.problems]


def test_example_definition_validates(tmp_path: Path) -> None:
    shutil.copy(ROOT / "fleet.example.yaml", tmp_path / "fleet.yaml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    repo = load_repository(tmp_path)
    assert [c.name for c in repo.definition.clusters] == ["dev-eu", "prod-eu", "prod-us"]
    assert {c.effective_region for c in repo.definition.clusters} == {"eu", "us"}
    names = {b.name for b in repo.bundles}
    assert names == {"web", "guestbook", "platform-config"}
    renderers = {b.name: b.options for b in repo.bundles}
    assert renderers["web"].helm is not None
    assert renderers["guestbook"].kustomize is not None
    assert renderers["platform-config"].default_namespace == "platform"
    assert renderers["web"].labels == {"managed-by": "fleet"}  # from defaults
    assert repo.definition.rollout is not None
    assert [w.name for w in repo.definition.rollout.waves] == ["canary", "prod-eu", "prod-us"]


def test_unknown_key_names_file_line_and_hint(tmp_path: Path) -> None:
    repo_with(
        tmp_path,
        """\
        clusters:
          - name: a
            lables: {env: dev}
        """,
    )
    (message,) = problems(tmp_path)
    assert message == (
        f"{tmp_path / 'fleet.yaml'}:6: unknown key 'lables' in clusters[0]; did you mean 'labels'?"
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    repo_with(tmp_path, "cluster: []\n")
    (message,) = problems(tmp_path)
    assert message.endswith(":4: unknown key 'cluster'; did you mean 'clusters'?")


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    repo_with(
        tmp_path,
        """\
        clusters:
          - name: a
            lables: {}
          - name: Not_A_Name
        notifiers:
          - {name: n, type: webhook, events: [rollout.faild]}
        """,
    )
    found = problems(tmp_path)
    assert len(found) == 3, found
    assert [p.split(":")[1] for p in found] == ["6", "7", "9"]
    assert "did you mean 'rollout.failed'?" in found[2]


def test_bad_selector_operator(tmp_path: Path) -> None:
    repo_with(
        tmp_path,
        """\
        groups:
          - name: g
            selector:
              matchExpressions:
                - key: env
                  operator: Inn
                  values: [x]
        """,
    )
    (message,) = problems(tmp_path)
    assert ":9: groups[0].selector.matchExpressions[0].operator:" in message
    assert "did you mean 'In'?" in message


def test_in_operator_needs_values(tmp_path: Path) -> None:
    repo_with(
        tmp_path,
        """\
        groups:
          - name: g
            selector:
              matchExpressions:
                - {key: env, operator: In}
        """,
    )
    (message,) = problems(tmp_path)
    assert ":8:" in message and "needs a non-empty 'values'" in message


def test_duplicate_cluster_names_and_undefined_group(tmp_path: Path) -> None:
    repo_with(
        tmp_path,
        """\
        clusters:
          - name: a
          - name: a
        groups:
          - name: prod
            selector: {}
        rollout:
          waves:
            - name: w
              group: prd
        """,
    )
    found = problems(tmp_path)
    file = tmp_path / "fleet.yaml"
    assert f"{file}:6: duplicate cluster name 'a' (first defined in clusters[0])" in found
    assert f"{file}:13: undefined group 'prd'; did you mean 'prod'?" in found


def test_malformed_yaml_has_line(tmp_path: Path) -> None:
    write(tmp_path / "fleet.yaml", HEADER + "clusters:\n  - name: a\n   labels: [\n")
    (message,) = problems(tmp_path)
    assert message.startswith(f"{tmp_path / 'fleet.yaml'}:6: invalid YAML")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    repo_with(tmp_path, "clusters: []\nclusters: []\n")
    (message,) = problems(tmp_path)
    assert message.endswith(":5: duplicate key 'clusters'")


def test_max_unavailable_int_or_percent(tmp_path: Path) -> None:
    repo_with(tmp_path, "rollout:\n  maxUnavailable: 150%\n")
    (message,) = problems(tmp_path)
    assert ":5: rollout.maxUnavailable:" in message and "percentage" in message
    repo_with(tmp_path, "rollout:\n  maxUnavailable: 25%\n  waves: []\n")
    assert load_repository(tmp_path).definition.rollout is not None


def test_wave_needs_exactly_one_choice(tmp_path: Path) -> None:
    repo_with(tmp_path, "rollout:\n  waves:\n    - name: w\n")
    (message,) = problems(tmp_path)
    assert ":6:" in message and "exactly one of" in message


def test_missing_required_key(tmp_path: Path) -> None:
    repo_with(tmp_path, "clusters:\n  - labels: {a: b}\n")
    (message,) = problems(tmp_path)
    assert message.endswith(":5: missing required key 'name' in clusters[0]")


def test_not_kind_fleet(tmp_path: Path) -> None:
    write(tmp_path / "fleet.yaml", "defaultNamespace: x\n")
    (message,) = problems(tmp_path)
    assert "needs 'kind: Fleet'" in message


def test_no_definition(tmp_path: Path) -> None:
    (message,) = problems(tmp_path)
    assert "no fleet.yaml" in message


def test_bundle_fleet_yaml_errors_point_at_bundle_file(tmp_path: Path) -> None:
    repo_with(tmp_path, "bundles:\n  paths: ['apps/*']\n")
    write(tmp_path / "apps/one/fleet.yaml", "defaultNamespace: x\nhelm:\n  valuesFile: [a]\n")
    (message,) = problems(tmp_path)
    bundle_file = tmp_path / "apps/one/fleet.yaml"
    assert message == (
        f"{bundle_file}:3: unknown key 'valuesFile' in helm; did you mean 'valuesFiles'?"
    )


def test_bundle_names_and_discovery(tmp_path: Path) -> None:
    repo_with(
        tmp_path,
        """\
        bundles:
          paths:
            - apps/*
            - glob: infra/**/net
          inline:
            - name: special
              path: apps/Two
              namespace: forced
        """,
    )
    write(tmp_path / "apps/one/cm.yaml", "kind: ConfigMap\n")
    write(tmp_path / "apps/Two/fleet.yaml", "defaultNamespace: two\n")
    write(tmp_path / "apps/three/fleet.yaml", "name: renamed\n")
    write(tmp_path / "apps/readme.md", "not a bundle\n")
    write(tmp_path / "infra/a/b/net/x.yaml", "kind: ConfigMap\n")
    repo = load_repository(tmp_path)
    by_name = {b.name: b for b in repo.bundles}
    assert set(by_name) == {"special", "apps-one", "renamed", "infra-a-b-net"}
    special = by_name["special"]
    assert special.options.namespace == "forced"
    assert special.options.default_namespace == "two"  # the directory's own fleet.yaml
    assert special.rel_path == "apps/Two"
    assert by_name["apps-one"].options_file is None


def test_glob_matching_nothing_and_missing_inline_dir(tmp_path: Path) -> None:
    repo_with(
        tmp_path,
        """\
        bundles:
          paths: [nowhere/*]
          inline:
            - name: gone
              path: missing
        """,
    )
    found = problems(tmp_path)
    assert any(":5: bundle path 'nowhere/*' matches no directory" in p for p in found)
    assert any(":8: bundle directory 'missing' not found" in p for p in found)


def test_duplicate_bundle_names(tmp_path: Path) -> None:
    repo_with(tmp_path, "bundles:\n  paths: ['a/*']\n")
    write(tmp_path / "a/x/fleet.yaml", "name: same\n")
    write(tmp_path / "a/y/fleet.yaml", "name: same\n")
    (message,) = problems(tmp_path)
    assert f"{tmp_path / 'a/y/fleet.yaml'}:1: duplicate bundle name 'same'" in message


def test_undefined_group_in_target_customization(tmp_path: Path) -> None:
    repo_with(tmp_path, "bundles:\n  paths: ['a/*']\n")
    write(
        tmp_path / "a/x/fleet.yaml",
        "targetCustomizations:\n  - name: p\n    clusterGroup: prod\n",
    )
    (message,) = problems(tmp_path)
    assert message == f"{tmp_path / 'a/x/fleet.yaml'}:3: undefined group 'prod'"


def test_load_bundle_standalone(tmp_path: Path) -> None:
    write(tmp_path / "b/fleet.yaml", "helm:\n  chart: ./chart\n")
    write(tmp_path / "b/chart/Chart.yaml", "name: c\nversion: 0.1.0\n")
    bundle = load_bundle(tmp_path / "b")
    assert bundle.name == "b" and bundle.rel_path == "."
    assert bundle.options_file == tmp_path / "b/fleet.yaml"
    assert len(bundle.content_hash) == 64


def test_yaml_lines_recorded() -> None:
    doc = load_yaml_text("a:\n  b:\n    - x\n    - y: 1\n", Path("f.yaml"))
    assert doc.line_of(("a", "b", 1, "y")) == 4
    assert doc.line_of(("a", "b", 0)) == 3
    assert doc.line_of(("a", "nope")) == 1


def test_credential_resolution(tmp_path: Path) -> None:
    spec = ClusterSpec.model_validate({"name": "prod-eu", "labels": {"region": "eu"}})
    assert cluster_context(spec).region == "eu"
    env = {"FLEET_CREDENTIALS_DIR": "/creds"}
    assert resolve_kubeconfig(spec, env).path == Path("/creds/prod-eu.kubeconfig")
    env["FLEET_KUBECONFIG_PROD_EU"] = "$HOME/k.yaml"
    env["HOME"] = "/home/w"
    assert resolve_kubeconfig(spec, env).path == Path("/home/w/k.yaml")
    explicit = ClusterSpec.model_validate(
        {"name": "x", "kubeconfig": {"path": "kc", "context": "ctx"}}
    )
    location = resolve_kubeconfig(explicit, {"FLEET_KUBECONFIG_DIR": str(tmp_path)})
    assert (location.path, location.context) == (tmp_path.resolve() / "kc", "ctx")
    # without FLEET_KUBECONFIG_DIR, a definition's path is relative to the worker's ~/.kube
    home = tmp_path / "home"
    assert resolve_kubeconfig(explicit, {"HOME": str(home)}).path == home / ".kube" / "kc"
    with pytest.raises(FleetError, match="FLEET_KUBECONFIG_PROD_EU"):
        resolve_kubeconfig(spec, {})


def test_kubeconfig_and_credential_are_exclusive(tmp_path: Path) -> None:
    repo_with(
        tmp_path,
        "clusters:\n  - name: a\n    credential: a\n    kubeconfig: {path: /k}\n",
    )
    (message,) = problems(tmp_path)
    assert ":5: clusters[0]: either 'kubeconfig' or 'credential'" in message.replace("give ", "")
