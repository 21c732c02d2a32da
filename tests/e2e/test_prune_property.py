"""Property: no object the next commit desires is ever deleted (a real cluster, seeded).

A random walk over commits of one fleet: each step adds, removes, moves objects between
bundles, renames bundle directories (so bundle names change) and flips custom resources
between the two served versions of their CRD. After every `fleet sync` of the next commit:

- every object desired by both commits kept its uid, and the audit log has no DELETE of it;
- every object the commit desires exists, owned by the bundle that renders it;
- every object that left Git is gone.

FLEET_PROPERTY_SEED picks the walk (printed on failure, so a failure reproduces);
FLEET_PROPERTY_STEPS its length.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from fleet.engine.kube import KubeError, ObjectRef
from fleet.engine.labels import LABEL_BUNDLE
from tests.conftest import LocalFleet
from tests.e2e.safe_support import SafeFleet, describe, new_fleet
from tests.e2e.sync_support import fleet_env  # noqa: F401  (fixture)
from tests.support.servers import GitServer

pytestmark = pytest.mark.usefixtures("fleet_env")

GROUP = "prop.safe.example.com"
CONFIGMAPS = [f"cm{i}" for i in range(6)]
GADGETS = ["g0", "g1"]
DIRS = ["a", "b", "c", "d", "e"]


@dataclass
class Commit:
    """object name -> (bundle directory, version for gadgets / "" for config maps)."""

    placed: dict[str, tuple[str, str]] = field(default_factory=dict)

    def copy(self) -> Commit:
        return Commit(dict(self.placed))


def mutate(rng: random.Random, old: Commit) -> tuple[Commit, list[str]]:
    new, did = old.copy(), []
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["add", "remove", "move", "rename", "version", "version"])
        free = [o for o in [*CONFIGMAPS, *GADGETS] if o not in new.placed]
        placed = sorted(new.placed)
        if op == "add" and free:
            name = rng.choice(free)
            new.placed[name] = (
                rng.choice(DIRS),
                rng.choice(["v1", "v2"]) if name in GADGETS else "",
            )
        elif op == "remove" and len(placed) > 1:  # an empty commit has no bundle at all
            new.placed.pop(rng.choice(placed))
        elif op == "move" and placed:
            name = rng.choice(placed)
            new.placed[name] = (rng.choice(DIRS), new.placed[name][1])
        elif op == "rename" and placed:
            used = sorted({d for d, _ in new.placed.values()})
            source, target = rng.choice(used), rng.choice(DIRS)
            new.placed = {n: (target if d == source else d, v) for n, (d, v) in new.placed.items()}
            op = f"rename {source}->{target}"
        elif op == "version":
            gadgets = [g for g in placed if g in GADGETS]
            if gadgets:
                name = rng.choice(gadgets)
                d, v = new.placed[name]
                new.placed[name] = (d, "v2" if v == "v1" else "v1")
        did.append(op)
    return new, did


def manifests(commit: Commit, ns: str) -> dict[str, list[dict[str, object]]]:
    """bundle directory -> its manifests."""
    out: dict[str, list[dict[str, object]]] = {}
    for name, (directory, version) in sorted(commit.placed.items()):
        if version:
            doc: dict[str, object] = {
                "apiVersion": f"{GROUP}/{version}",
                "kind": "Prop",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"dir": directory},
            }
        else:
            doc = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns},
                "data": {"dir": directory},
            }
        out.setdefault(directory, []).append(doc)
    return out


def ref(name: str, ns: str) -> ObjectRef:
    if name in GADGETS:
        return ObjectRef(f"{GROUP}/v1", "Prop", ns, name)
    return ObjectRef("v1", "ConfigMap", ns, name)


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"props.{GROUP}"},
    "spec": {
        "group": GROUP,
        "names": {"kind": "Prop", "plural": "props", "singular": "prop"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": v,
                "served": True,
                "storage": v == "v1",
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                        },
                    }
                },
            }
            for v in ("v1", "v2")
        ],
    },
}


@pytest.fixture
def fleet(git_server: GitServer, local_fleet: LocalFleet, tmp_path: Path) -> Iterator[SafeFleet]:
    made = new_fleet(git_server, local_fleet, tmp_path / "repo", prefix="prop")
    # the CRD is the test's, not the fleet's: it must outlive every commit of the walk
    made.conn.apply(CRD, force=True, field_manager="property-test")
    deadline = time.monotonic() + 60
    while True:  # served once Established
        made.conn.invalidate()
        try:
            made.conn.resource(f"{GROUP}/v2", "Prop")
            break
        except KubeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    yield made
    api = made.core().api_client
    with contextlib.suppress(client.ApiException):
        made.core().delete_namespace(made.ns("prop"))
    with contextlib.suppress(client.ApiException):
        client.ApiextensionsV1Api(api).delete_custom_resource_definition(f"props.{GROUP}")
    made.conn.close()


def write(fleet: SafeFleet, commit: Commit, ns: str) -> None:
    apps = fleet.tree.path / "apps"
    if apps.exists():
        fleet.remove("apps")
    for directory, docs in manifests(commit, ns).items():
        fleet.tree.write(f"apps/{directory}/objects.yaml", yaml.safe_dump_all(docs))


def test_no_desired_object_is_ever_deleted(fleet: SafeFleet) -> None:
    seed = int(os.environ.get("FLEET_PROPERTY_SEED") or random.randrange(1 << 30))
    steps = int(os.environ.get("FLEET_PROPERTY_STEPS") or 30)
    rng = random.Random(seed)
    ns = fleet.ns("prop")
    where = f"(FLEET_PROPERTY_SEED={seed})"

    current = Commit({"cm0": ("a", ""), "cm1": ("b", ""), "g0": ("a", "v1")})
    write(fleet, current, ns)
    fleet.commit("start")
    first = fleet.sync()
    assert first.ok, f"{where}\n{describe(first)}"
    for step in range(steps):
        uids = {n: fleet.uid(ref(n, ns)) for n in current.placed}
        nxt, did = mutate(rng, current)
        write(fleet, nxt, ns)
        fleet.commit(f"step {step}: {', '.join(did)}")
        mark = fleet.audit.mark()
        report = fleet.sync()
        what = f"{where} step {step} {did}: {current.placed} -> {nxt.placed}"
        assert report.ok, f"{what}\n{describe(report)}"

        deleted = {d.name for d in fleet.deletes(mark, ns) if d.namespace == ns}
        for name, (directory, _) in nxt.placed.items():
            live = fleet.live(ref(name, ns))
            assert live is not None, f"{what}: {name} is missing"
            labels = live["metadata"].get("labels") or {}
            assert labels.get(LABEL_BUNDLE) == f"apps-{directory}", f"{what}: {name} {labels}"
            if name in current.placed:
                assert name not in deleted, f"{what}: {name} was deleted"
                assert fleet.uid(ref(name, ns)) == uids[name], f"{what}: {name} recreated"
        for name in set(current.placed) - set(nxt.placed):
            assert fleet.uid(ref(name, ns)) is None, f"{what}: {name} should be gone"
        current = nxt
