"""Property-based: random and mutated definitions either validate or give a FleetError.

Never another exception (that would be a traceback for the user), and never a read outside
the repository (checked with a Python audit hook on `open` and directory listings).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.errors import FleetError
from fleet.spec.loader import load_repository
from fleet.targeting.units import compute_units
from tests.support.reads import recorded_reads

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "fleet.example.yaml").read_text()


@contextmanager
def sandbox() -> Iterator[tuple[Path, Path]]:
    """A repository with the example bundles, a secret beside it and a symlink to it."""
    with tempfile.TemporaryDirectory(prefix="fleet-hyp-") as tmp:
        repo, outside = Path(tmp) / "repo", Path(tmp) / "outside"
        (outside / "chart").mkdir(parents=True)
        (outside / "secret.yaml").write_text("token: hunter2\n")
        shutil.copytree(ROOT / "examples", repo / "examples")
        (repo / "escape").symlink_to(outside)
        yield repo, outside


def validate(repo: Path, outside: Path) -> None:
    """Load and target; only FleetError may escape; nothing outside may be read."""
    with recorded_reads() as watched:
        try:
            compute_units(load_repository(repo))
        except FleetError as err:
            assert err.problems and all(str(p) for p in err.problems)
    leaked = [p for p in watched if Path(p).resolve().is_relative_to(outside.resolve())]
    assert not leaked, leaked


names = st.sampled_from(["a", "dev-eu", "prod-eu", "x" * 70, "Bad_Name", "", "prod"])
label_maps = st.dictionaries(
    st.sampled_from(["env", "region", "tier"]),
    st.sampled_from(["dev", "prod", "eu", ""]),
    max_size=3,
)
paths = st.sampled_from(
    [
        "examples/bundles/web",
        "examples/bundles/*",
        "examples/**",
        "../outside",
        "../outside/*",
        "escape",
        "escape/chart",
        "/etc",
        "~",
        "missing",
        "",
        "examples/bundles/web/chart/templates",
    ]
)
operators = st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Equals", None])
selectors = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": label_maps,
        "matchExpressions": st.lists(
            st.fixed_dictionaries(
                {"key": st.sampled_from(["env", "region"]), "operator": operators},
                optional={"values": st.lists(st.sampled_from(["dev", "prod", "eu"]), max_size=2)},
            ),
            max_size=2,
        ),
    },
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 200), st.text(max_size=8))
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
options = st.fixed_dictionaries(
    {},
    optional={
        "namespace": st.sampled_from(["ns", "", "x" * 5]),
        "helm": st.fixed_dictionaries(
            {},
            optional={
                "chart": paths,
                "valuesFiles": st.lists(
                    st.sampled_from(
                        [
                            "../../../outside/secret.yaml",
                            "values-prod.yaml",
                            "../escape/secret.yaml",
                        ]
                    ),
                    max_size=2,
                ),
                "values": st.dictionaries(
                    st.sampled_from(["a", "b"]),
                    st.sampled_from(
                        ["${ .ClusterName }", "${ .ClusterLabels.env }", "${ nope }", "${", 1]
                    ),
                    max_size=2,
                ),
            },
        ),
        "kustomize": st.fixed_dictionaries({"dir": paths}),
        "targetCustomizations": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "clusterSelector": selectors,
                    "clusterGroup": names,
                    "doNotDeploy": st.booleans(),
                },
            ),
            max_size=2,
        ),
        "bogus": junk,
    },
)
definitions = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["fleet-gitops.io/v1alpha1", "v1"]),
        "kind": st.just("Fleet"),
        "name": names,
    },
    optional={
        "clusters": st.lists(
            st.fixed_dictionaries(
                {"name": names}, optional={"labels": label_maps, "credential": names}
            ),
            max_size=3,
        ),
        "groups": st.lists(
            st.fixed_dictionaries({"name": names, "selector": selectors}), max_size=2
        ),
        "bundles": st.fixed_dictionaries(
            {},
            optional={
                "paths": st.lists(paths | st.fixed_dictionaries({"glob": paths}), max_size=2),
                "inline": st.lists(
                    st.fixed_dictionaries({"name": names, "path": paths}).map(lambda d: d)
                    | options.map(lambda o: {"name": "inl", "path": "examples/bundles/web", **o}),
                    max_size=2,
                ),
            },
        ),
        "defaults": options,
        "rollout": st.fixed_dictionaries(
            {},
            optional={
                "maxUnavailable": st.sampled_from([1, "10%", "200%", -1, "x", True]),
                "waves": st.lists(
                    st.fixed_dictionaries(
                        {"name": names},
                        optional={"group": names, "clusters": st.lists(names, max_size=2)},
                    ),
                    max_size=2,
                ),
            },
        ),
        "junk": junk,
    },
)

# FLEET_HYPOTHESIS_EXAMPLES raises the count for a deeper local run.
SETTINGS = settings(
    max_examples=int(os.environ.get("FLEET_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(definition=definitions)
def test_random_definitions(definition: dict[str, Any]) -> None:
    with sandbox() as (repo, outside):
        (repo / "fleet.yaml").write_text(yaml.safe_dump(definition))
        validate(repo, outside)


@SETTINGS
@given(bundle_options=options)
def test_random_bundle_options(bundle_options: dict[str, Any]) -> None:
    with sandbox() as (repo, outside):
        shutil.copy(ROOT / "fleet.example.yaml", repo / "fleet.yaml")
        (repo / "examples/bundles/web/fleet.yaml").write_text(yaml.safe_dump(bundle_options))
        validate(repo, outside)


@SETTINGS
@given(data=st.data())
def test_mutated_example_text(data: st.DataObject) -> None:
    """Character-level damage to the real example: deletions, insertions, line swaps."""
    text = EXAMPLE
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["delete", "insert", "swap", "indent"]))
        pos = data.draw(st.integers(0, max(0, len(text) - 1)))
        if kind == "delete":
            text = text[:pos] + text[pos + data.draw(st.integers(1, 20)) :]
        elif kind == "insert":
            text = (
                text[:pos]
                + data.draw(
                    st.sampled_from([":", "-", " ", "\n", "[", "'", "&a", "*a", "{", "${", "../"])
                )
                + text[pos:]
            )
        else:
            lines = text.splitlines()
            i = data.draw(st.integers(0, len(lines) - 1))
            j = data.draw(st.integers(0, len(lines) - 1))
            if kind == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] = "  " + lines[i]
            text = "\n".join(lines) + "\n"
    with sandbox() as (repo, outside):
        (repo / "fleet.yaml").write_text(text)
        validate(repo, outside)


def test_the_read_recorder_sees_a_read_outside_the_repository() -> None:
    """The leak checks above are only as good as the recorder: it must see real reads."""
    with sandbox() as (_repo, outside), recorded_reads() as watched:
        (outside / "secret.yaml").read_text()
    assert any(p.endswith("secret.yaml") for p in watched)
