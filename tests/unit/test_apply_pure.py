"""Pure parts of the apply engine: names, hashes, ownership metadata, drift comparison."""

from __future__ import annotations

import re

from fleet.engine.apply import object_hash, short_name, with_ownership
from fleet.engine.drift import comparable, differing_paths, ignored_pointers, object_diff
from fleet.engine.identity import Owner
from fleet.engine.inventory import Inventory, inventory_name, record
from fleet.engine.kube import ObjectRef, classify
from fleet.engine.labels import ANN_FLEET, ANN_HASH, LABEL_BUNDLE, LABEL_FLEET
from fleet.spec.bundle_options import ComparePatch

LABEL = re.compile(r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$")


def test_short_name_is_valid_deterministic_and_distinct() -> None:
    assert short_name("web") == "web"
    long_a, long_b = "a" * 80, "a" * 79 + "b"
    for name in (long_a, "Team_A/App", "x" * 63 + "/", "--", "ÄÖÜ"):
        out = short_name(name)
        assert len(out) <= 63 and LABEL.match(out), out
        assert short_name(name) == out
    assert short_name(long_a) != short_name(long_b)
    assert len(inventory_name("z" * 300)) <= 63
    assert inventory_name("web", "shop") != inventory_name("web", "blog")
    odd = inventory_name("Web_App", "Shop.EU")  # `_` and `.` are not allowed in DNS labels
    assert re.fullmatch(r"[a-z0-9-]+\.bundle-[a-z0-9-]+", odd), odd


def test_content_hash_ignores_key_order() -> None:
    a = {"kind": "ConfigMap", "data": {"x": "1", "y": "2"}}
    b = {"data": {"y": "2", "x": "1"}, "kind": "ConfigMap"}
    assert object_hash(a) == object_hash(b)
    assert object_hash(a) != object_hash({**a, "data": {"x": "2"}})


def test_with_ownership_copies_and_strips_server_fields() -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "labels": {"app": "x"}, "resourceVersion": "5", "uid": "u"},
    }
    body = with_ownership(manifest, Owner("web", "shop"), "d" * 64, "h" * 64)
    assert body["metadata"]["labels"] == {"app": "x", LABEL_BUNDLE: "web", LABEL_FLEET: "shop"}
    assert body["metadata"]["annotations"][ANN_HASH] == "h" * 64
    assert body["metadata"]["annotations"][ANN_FLEET] == "shop"
    assert "resourceVersion" not in body["metadata"] and "uid" not in body["metadata"]
    assert manifest["metadata"]["labels"] == {"app": "x"}  # input untouched


def test_differing_paths_and_ignores() -> None:
    live = {"metadata": {"name": "a", "resourceVersion": "9"}, "spec": {"replicas": 3, "x": [1, 2]}}
    want = {
        "metadata": {"name": "a", "resourceVersion": "10"},
        "spec": {"replicas": 1, "x": [1, 3]},
    }
    assert differing_paths(comparable(live), comparable(want)) == ["/spec/replicas", "/spec/x/1"]
    ref = ObjectRef("apps/v1", "Deployment", "ns", "web")
    patches = [
        ComparePatch.model_validate({"kind": "Deployment", "jsonPointers": ["/spec/replicas"]}),
        ComparePatch.model_validate({"kind": "Service", "jsonPointers": ["/spec/x"]}),
    ]
    ignore = ignored_pointers(ref, patches)
    assert ignore == ["/spec/replicas"]
    assert differing_paths(comparable(live, ignore), comparable(want, ignore)) == ["/spec/x/1"]


def test_secret_diff_never_shows_values() -> None:
    ref = ObjectRef("v1", "Secret", "ns", "s")
    live = {"apiVersion": "v1", "kind": "Secret", "data": {"a": "c2VjcmV0MQ==", "b": "c2FtZQ=="}}
    want = {"apiVersion": "v1", "kind": "Secret", "data": {"a": "c2VjcmV0Mg==", "b": "c2FtZQ=="}}
    text = object_diff(ref, live, want)
    assert "c2VjcmV0" not in text and "c2FtZQ" not in text
    assert "<redacted, desired value differs>" in text


def test_record_writes_only_on_change() -> None:
    inv = Inventory("web")
    first = record(inv, [], commit="c1", deployment_id="d1", state="NotReady", message="")
    assert first is not None
    assert record(first, [], commit="c1", deployment_id="d1", state="NotReady", message="x") is None
    ready = record(first, [], commit="c1", deployment_id="d1", state="Ready", message="")
    assert ready is not None and len(ready.revisions) == 1  # same deployment: updated in place
    assert Inventory.from_json("web", ready.to_json()).revisions == ready.revisions


def test_conflict_message_names_manager_and_field() -> None:
    body = (
        b'{"kind":"Status","message":"Apply failed with 1 conflict: conflict with '
        b'\\"kubectl-edit\\" using v1: .data.k","reason":"Conflict","details":{"causes":[{"reason":'
        b'"FieldManagerConflict","message":"conflict with \\"kubectl-edit\\" using v1",'
        b'"field":".data.k"}]},"code":409}'
    )
    err = classify(409, body, cluster="c", what="apply ConfigMap ns/a")
    assert str(err).startswith('c: apply ConfigMap ns/a: conflict with "kubectl-edit" on .data.k')


def test_secret_values_are_redacted_from_server_messages() -> None:
    body = b'{"message":"Secret \\"s\\" is invalid: data[x]: Invalid value: \\"p4ss\\": bad"}'
    err = classify(422, body, cluster="c", what="apply Secret ns/s", kind="Secret")
    assert "p4ss" not in str(err) and "<redacted>" in str(err)
