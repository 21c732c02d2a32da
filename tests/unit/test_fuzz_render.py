"""Fuzz harness: generated and mutated repository files through validate *and* render.

A repository is untrusted input (README "Security"). Whatever the definition, a bundle's
fleet.yaml, a values file, a kustomization or a manifest says, loading, targeting and
rendering a commit must end in success or in a `FleetError` whose every problem names a
file; never another exception (a traceback, or a commit `fleet serve` neither applies nor
reports), never a read outside the repository (a Python audit hook watches `open` and
directory listings), and every case within a hypothesis deadline (a YAML bomb or a hang
fails it).

`make test` runs a few examples per property; `make fuzz` runs many more
(`FLEET_FUZZ_EXAMPLES`, and `FLEET_FUZZ_DEADLINE_MS` for the per-case bound).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.desired import DesiredState
from fleet.errors import FleetError
from fleet.plugin.manager import FleetPlugins
from fleet.spec.loader import load_repository
from tests.support.reads import recorded_reads

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = FleetPlugins.load()
EXAMPLES = int(os.environ.get("FLEET_FUZZ_EXAMPLES", "6"))
DEADLINE_MS = int(os.environ.get("FLEET_FUZZ_DEADLINE_MS", "20000"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 10,  # `make test`: the same few cases every run
)

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: fuzz
clusters:
  - {name: dev, labels: {env: dev, port: "8080"}}
  - {name: prod, labels: {env: prod}, annotations: {owner: team}}
bundles:
  paths: [app, web]
"""
WEB = "helm:\n  chart: ./chart\n  valuesFiles: [values.yaml]\n  values:\n    greeting: hi\n"


@contextmanager
def sandbox() -> Iterator[tuple[Path, Path]]:
    """A repository with a raw-YAML bundle `app` and a helm bundle `web`, a secret beside."""
    with tempfile.TemporaryDirectory(prefix="fleet-fuzz-") as tmp:
        repo, outside = Path(tmp) / "repo", Path(tmp) / "outside"
        outside.mkdir()
        (outside / "secret.yaml").write_text("apiVersion: v1\nkind: Secret\ntoken: hunter2\n")
        (repo / "app").mkdir(parents=True)
        shutil.copytree(ROOT / "examples/bundles/web/chart", repo / "web/chart")
        (repo / "fleet.yaml").write_text(DEFINITION)
        (repo / "web/fleet.yaml").write_text(WEB)
        (repo / "web/values.yaml").write_text("replicaCount: 1\n")
        (repo / "app/cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
        (repo / "escape").symlink_to(outside)
        yield repo, outside


def check(repo: Path, outside: Path) -> None:
    """Validate and render everything; only FleetErrors naming a file may come out."""
    with recorded_reads() as watched:
        try:
            state = DesiredState.target(load_repository(repo), "", PLUGINS)
            state.render_all()
        except FleetError as err:
            assert err.problems
            unnamed = [str(p) for p in err.problems if not p.file]
            assert not unnamed, unnamed
    leaked = [p for p in watched if Path(p).resolve().is_relative_to(outside.resolve())]
    assert not leaked, leaked


# --- generated content -----------------------------------------------------------------

texts = st.sampled_from(
    ["a", "", "web", "${ .ClusterName }", "${ .ClusterLabels.port }", "${ .ClusterLabels }",
     "${ nope }", "${", "../escape/secret.yaml", "x" * 300, "yes", "2024-01-01", "0x1F"]
)  # fmt: skip
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**20), st.floats(), texts)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(texts | st.integers(0, 3) | st.booleans(), inner, max_size=3)
    ),
    max_leaves=8,
)
metadata = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["a", "b", ""]) | junk,
        "namespace": st.sampled_from(["ns", ""]) | junk,
        "labels": st.dictionaries(texts, texts, max_size=2) | junk,
        "annotations": st.dictionaries(texts, texts, max_size=2) | junk,
    },
)
manifest = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["v1", "apps/v1", "apiextensions.k8s.io/v1"]) | junk,
        "kind": st.sampled_from(
            ["ConfigMap", "Namespace", "List", "ConfigMapList", "CustomResourceDefinition"]
        )
        | junk,
        "metadata": metadata | junk,
        "data": junk,
        "items": st.lists(junk | st.fixed_dictionaries({"kind": texts, "metadata": metadata})),
        "spec": junk,
    },
)
documents = st.lists(manifest | junk, min_size=1, max_size=3)
charts = st.sampled_from(
    ["./chart", "chart", "../escape", "/etc", "--post-renderer=/bin/sh",
     "http://127.0.0.1:1/c.tgz", "file:///etc", "oci://", "git::x"]
)  # fmt: skip
bundle_options = st.fixed_dictionaries(
    {},
    optional={
        "namespace": texts | junk,
        "defaultNamespace": texts | junk,
        "labels": st.dictionaries(texts, texts | junk, max_size=2),
        "helm": st.fixed_dictionaries(
            {"chart": charts},
            optional={
                "repo": st.sampled_from(["https://", "http://127.0.0.1:1", "-x", "file:///"]),
                "version": st.sampled_from(["1.0.0", "--devel", ">=1 <2"]),
                "valuesFiles": st.lists(
                    st.sampled_from(["values.yaml", "../escape/secret.yaml", "missing.yaml"]),
                    max_size=2,
                ),
                "values": st.dictionaries(texts, junk, max_size=3),
                "releaseName": texts,
            },
        ),
        "yaml": st.fixed_dictionaries({"overlays": st.lists(texts, max_size=2)}),
        "targetCustomizations": st.lists(
            st.fixed_dictionaries(
                {"name": texts},
                optional={
                    "clusterSelector": st.just({"matchLabels": {"env": "prod"}}),
                    "helm": st.fixed_dictionaries({"values": st.dictionaries(texts, junk)}),
                    "namespace": texts,
                },
            ),
            max_size=2,
        ),
        "bogus": junk,
    },
)
INSERTS = [":", "-", " ", "\n", "[", "{", "'", '"', "&a ", "*a", "<<: *a\n", "? ", "\t", "#",
           "!!binary ", "!!python/object:os.system ", "%YAML 1.1\n---\n", "---\n", "${", "../",
           "\ufeff", "\x00", "~"]  # fmt: skip


def mutate(data: st.DataObject, text: str) -> str:
    """Character-level damage: deletions, insertions, line swaps and re-indents."""
    for _ in range(data.draw(st.integers(0, 4), label="mutations")):
        kind = data.draw(st.sampled_from(["delete", "insert", "swap", "indent", "alias"]))
        pos = data.draw(st.integers(0, max(0, len(text) - 1)))
        lines = text.splitlines() or [""]
        if kind == "delete":
            text = text[:pos] + text[pos + data.draw(st.integers(1, 20)) :]
        elif kind == "insert":
            text = text[:pos] + data.draw(st.sampled_from(INSERTS)) + text[pos:]
        elif kind == "alias":  # anchor one line's value, reuse it many times further down
            i = data.draw(st.integers(0, len(lines) - 1))
            lines[i] = lines[i].replace(": ", ": &a ", 1)
            lines.append("z: [" + ", ".join(["*a"] * data.draw(st.integers(1, 50))) + "]")
            text = "\n".join(lines) + "\n"
        else:
            i = data.draw(st.integers(0, len(lines) - 1))
            j = data.draw(st.integers(0, len(lines) - 1))
            if kind == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] = "  " + lines[i]
            text = "\n".join(lines) + "\n"
    return text


def dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


# --- properties ------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), docs=documents)
def test_fuzz_manifests(data: st.DataObject, docs: list[Any]) -> None:
    text = mutate(data, yaml.safe_dump_all(docs, sort_keys=False))
    with sandbox() as (repo, outside):
        (repo / "app/cm.yaml").write_text(text)
        check(repo, outside)


@SETTINGS
@given(data=st.data(), values=junk)
def test_fuzz_values_files(data: st.DataObject, values: Any) -> None:
    with sandbox() as (repo, outside):
        (repo / "web/values.yaml").write_text(mutate(data, dump(values)))
        check(repo, outside)


@SETTINGS
@given(data=st.data(), options=bundle_options, bundle=st.sampled_from(["app", "web"]))
def test_fuzz_bundle_fleet_yaml(data: st.DataObject, options: dict[str, Any], bundle: str) -> None:
    with sandbox() as (repo, outside):
        (repo / bundle / "fleet.yaml").write_text(mutate(data, dump(options)))
        check(repo, outside)


kustomize_refs = st.sampled_from(
    ["cm.yaml", "../escape", "https://127.0.0.1:1/x.yaml", "github.com/o/r//b?ref=-x",
     "git@127.0.0.1:o/r.git", "file:///etc", "http://x/y", "gh:o/r", "git::https://h/r.git",
     "ssh://", "https://", "//", "?ref=", "/etc/passwd"]
)  # fmt: skip
kustomization = st.fixed_dictionaries(
    {},
    optional={
        key: st.lists(kustomize_refs | junk, max_size=3)
        for key in ("resources", "bases", "components", "crds", "patchesStrategicMerge")
    }
    | {
        "patches": st.lists(st.fixed_dictionaries({"path": kustomize_refs | junk}), max_size=2),
        "configMapGenerator": st.lists(
            st.fixed_dictionaries({"name": texts, "files": st.lists(kustomize_refs | junk)}),
            max_size=2,
        ),
        "openapi": st.fixed_dictionaries({"path": kustomize_refs}) | junk,
    },
)


@SETTINGS
@given(data=st.data(), doc=kustomization)
def test_fuzz_kustomization(data: st.DataObject, doc: dict[str, Any]) -> None:
    """Remote references (none allowed here, so nothing is fetched), odd shapes, escapes."""
    with sandbox() as (repo, outside):
        (repo / "app" / "kustomization.yaml").write_text(mutate(data, dump(doc)))
        check(repo, outside)


@SETTINGS
@given(data=st.data())
def test_fuzz_definition(data: st.DataObject) -> None:
    with sandbox() as (repo, outside):
        (repo / "fleet.yaml").write_text(mutate(data, DEFINITION))
        check(repo, outside)
