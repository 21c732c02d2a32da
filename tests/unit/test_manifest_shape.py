"""Odd but valid YAML: a file:line problem at render time, before any cluster is touched.

Manifests whose envelope Kubernetes would refuse (`metadata: oops`, `labels: [a]`, ...) used
to pass `fleet validate` and crash a sync halfway; a templated values key that yields a
number crashed `fleet validate` with a TypeError. Both `fleet validate` (which renders every
unit) and `desired.load_desired` (what `fleet sync` / `fleet serve` load a commit with) must
report them as one line with file and line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.desired import load_desired
from fleet.errors import FleetError
from fleet.plugin.manager import FleetPlugins
from fleet.render.cache import RenderCache
from fleet.render.manifests import load_manifests

pytestmark = pytest.mark.unit

HEADER = "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: test\n"
DEFINITION = HEADER + "clusters: [{name: a}, {name: b}]\nbundles:\n  paths: [app, good]\n"
GOOD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\ndata: {a: b}\n"

# case -> (manifest text of app/cm.yaml, line of the problem, words of the message)
BAD_MANIFESTS = {
    "metadata-scalar": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: oops\n",
        3,
        "metadata must be a mapping, not a string ('oops')",
    ),
    "labels-list": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [a]\n",
        5,
        "metadata.labels must be a mapping, not a list",
    ),
    "name-number": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 5\n",
        4,
        "metadata.name must be a string, not a number (5)",
    ),
    "kind-list": (
        "apiVersion: v1\nkind: [ConfigMap]\nmetadata: {name: x}\n",
        2,
        "kind must be a non-empty string, not a list",
    ),
    "namespace-number": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: 5\n",
        5,
        "metadata.namespace must be a string, not a number (5)",
    ),
    "annotation-value-number": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations:\n"
        "    ok: 'yes'\n    replicas: 3\n",
        7,
        "metadata.annotations: keys and values must be strings, 'replicas' has a number (3)",
    ),
    "label-value-bool": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels:\n    enabled: yes\n",
        6,
        "metadata.labels: keys and values must be strings, 'enabled' has a boolean (true)",
    ),
    "list-item-scalar": (
        "apiVersion: v1\nkind: List\nitems:\n  - " + GOOD.replace("\n", "\n    ") + "\n  - oops\n",
        10,
        "items[1] is a string ('oops'), not an object",
    ),
    "second-document": (
        GOOD + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels: {a: [b]}\n",
        11,
        "metadata.labels: keys and values must be strings, 'a' has a list",
    ),
}


def repo_with(tmp_path: Path, manifest: str) -> Path:
    repo = tmp_path / "repo"
    for name, text in {
        "fleet.yaml": DEFINITION,
        "app/cm.yaml": manifest,
        "good/cm.yaml": GOOD,
    }.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    return repo


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_validate_reports_bad_manifest_shape(
    case: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest, line, message = BAD_MANIFESTS[case]
    repo_with(tmp_path, manifest)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "repo"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    (error,) = captured.err.splitlines()
    assert error.startswith(f"repo/app/cm.yaml:{line}: {message}"), error


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_load_desired_rejects_the_commit(case: str, tmp_path: Path) -> None:
    """What sync and serve load: the whole commit fails, nothing is half-rendered."""
    manifest, line, message = BAD_MANIFESTS[case]
    repo = repo_with(tmp_path, manifest)
    with pytest.raises(FleetError) as info:
        load_desired(repo, "c", FleetPlugins.load(), cache=RenderCache())
    (problem,) = info.value.problems  # once, though both clusters get the bundle
    assert (problem.file, problem.line) == ("app/cm.yaml", line)
    assert problem.message.startswith(message)


def test_validate_no_render_skips_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = repo_with(tmp_path, BAD_MANIFESTS["metadata-scalar"][0])
    assert main(["validate", "--no-render", str(repo)]) == 0
    assert capsys.readouterr().out.startswith("ok: 2 clusters, 2 bundles")


def test_good_manifests_still_load() -> None:
    text = GOOD + "---\n" + "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n"
    text += "  labels: {a: 'b'}\n  annotations: {c: ''}\n---\nnot: a manifest\n---\n- a list\n"
    assert [m["kind"] for m in load_manifests(text, file="f")] == ["ConfigMap", "Namespace"]
    assert load_manifests("apiVersion: v1\nkind: ConfigMap\n", file="f")[0]["kind"] == "ConfigMap"


def test_templated_values_key_yielding_a_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`"${ .ClusterLabels.port }": x` used to be a TypeError in `fleet validate`."""
    repo = tmp_path / "repo"
    files = {
        "fleet.yaml": HEADER
        + "clusters: [{name: a, labels: {port: '8080'}}]\nbundles:\n  paths: [web]\n",
        "web/fleet.yaml": textwrap.dedent(
            """\
            helm:
              chart: c
              values:
                "${ .ClusterLabels.port }": x
                "${ .ClusterLabels }": y
                other: 1
            """
        ),
        "web/c/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
        "web/c/templates/cm.yaml": textwrap.dedent(
            """\
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: c}
            data:
              port: {{ index .Values "8080" | quote }}
            """
        ),
    }
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    assert main(["validate", str(repo)]) == 0, capsys.readouterr().err
    state = load_desired(repo, "c", FleetPlugins.load(), cache=RenderCache())
    (unit,) = state.units
    assert state.manifests(unit)[0]["data"] == {"port": "x"}
    assert unit.options.helm is not None
    assert set(unit.options.helm.values) == {"8080", '{"port": "8080"}', "other"}


def test_crd_with_a_scalar_spec_is_not_a_crash() -> None:
    """Found by the fuzz harness: `spec: true` in a CRD crashed the scope lookup."""
    from fleet.render.manifests import sort_manifests

    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"}
    for spec in (True, {"names": "x", "group": "g"}, None):
        assert sort_manifests([{**crd, "metadata": {"name": "c"}, "spec": spec}])
