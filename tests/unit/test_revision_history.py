"""The pure parts of the revision history: names, payloads, records, what a sync writes."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from fleet.config import Settings
from fleet.engine.history import (
    Revision,
    RevisionStatus,
    decode_payload,
    encode_payload,
    previous_good,
    revision_name,
    revision_of,
    revision_secret,
    selector,
)
from fleet.engine.history_store import Applied, _update, history_due, is_redeploy, with_history
from fleet.engine.identity import Owner
from fleet.engine.inventory import DeployedRevision, Inventory
from fleet.errors import UserError
from fleet.manifest import Manifest
from fleet.spec.bundle_options import BundleOptions

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

RICH_OPTIONS: dict[str, Any] = {
    "defaultNamespace": "shop",
    "namespaceLabels": {"team": "a"},
    "helm": {
        "chart": "oci://registry.example.com/charts/app",
        "version": "^1.2.0",
        "releaseName": "app",
        "values": {"replicas": 3, "nested": {"list": [1, "two", None], "flag": False}},
        "takeOwnership": True,
    },
    "diff": {"comparePatches": [{"kind": "Deployment", "name": "web", "jsonPointers": ["/x"]}]},
    "correctDrift": {"enabled": True, "force": True},
    "keepResources": True,
    "deleteCRDResources": True,
    "waitTimeoutSeconds": 90,
}


def manifests() -> list[Manifest]:
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "é"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"t": "eA=="}},
    ]


def test_a_payload_round_trips_the_manifests_and_the_options_exactly() -> None:
    options = BundleOptions.model_validate(RICH_OPTIONS)
    payload = encode_payload(Owner("b", "f"), "d" * 64, "c1", manifests(), options)
    got_manifests, got_options, commit = decode_payload(payload.data)
    assert got_manifests == manifests()
    assert got_options == options
    assert commit == "c1" and not payload.not_rollbackable


def test_a_payload_is_canonical_whatever_the_key_order() -> None:
    reordered = [{k: m[k] for k in reversed(list(m))} for m in manifests()]
    a = encode_payload(Owner("b"), "d" * 64, "c1", manifests(), BundleOptions())
    b = encode_payload(Owner("b"), "d" * 64, "c1", reordered, BundleOptions())
    assert a == b
    other = encode_payload(Owner("b"), "d" * 64, "c2", manifests(), BundleOptions())
    assert other.digest != a.digest  # the commit is part of what is kept


def test_a_payload_too_big_keeps_no_manifests_and_says_why() -> None:
    payload = encode_payload(Owner("b"), "d" * 64, "c1", manifests(), BundleOptions(), max_bytes=10)
    assert payload.not_rollbackable.startswith("manifests too big to keep (")
    assert "at most 10" in payload.not_rollbackable
    got_manifests, got_options, commit = decode_payload(payload.data)
    assert (got_manifests, got_options, commit) == (None, None, "c1")


@pytest.mark.parametrize(
    "data", [b"", b"not gzip", base64.b64decode("H4sIAAAAAAAAA6uuBQBDv6ajAgAAAA==")]
)
def test_a_payload_that_is_not_one_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_payload(data)


def test_revision_names_stay_valid_and_short_for_long_names() -> None:
    assert revision_name("web", "shop", 3) == "shop.bundle-web.r3"
    assert revision_name("web", None, 12) == "bundle-web.r12"
    long = revision_name("Team_A/" + "x" * 300, "F" * 200, 123456)
    assert len(long) <= 253 and DNS_SUBDOMAIN.match(long)
    assert revision_name("a" * 300, "f", 1) != revision_name("a" * 299 + "b", "f", 1)


def test_the_selector_of_a_fleetless_owner_excludes_fleets() -> None:
    assert selector(Owner("web", "shop")) == (
        "fleet-gitops.io/history=true,fleet-gitops.io/bundle=web,fleet-gitops.io/fleet=shop"
    )
    assert selector(Owner("web")).endswith(",!fleet-gitops.io/fleet")


def secret_of(owner: Owner, number: int, status: RevisionStatus = "applied") -> Manifest:
    payload = encode_payload(owner, "d" * 64, "c1", manifests(), BundleOptions())
    at = "2024-05-01T10:00:00Z"
    return revision_secret(owner, number, deployment_id="d" * 64, commit="c1", status=status,
                           sequence=7, payload=payload, applied_at=at)  # fmt: skip


def test_a_revision_secret_reads_back_as_its_record() -> None:
    owner = Owner("web", "shop")
    body = secret_of(owner, 4, "ready")
    assert body["type"] == "fleet-gitops.io/revision.v1"
    revision = revision_of(body, owner)
    assert revision is not None
    assert (revision.number, revision.status, revision.sequence) == (4, "ready", 7)
    assert (revision.deployment_id, revision.commit) == ("d" * 64, "c1")
    assert revision.applied_at == "2024-05-01T10:00:00Z"
    assert revision.rollbackable and not revision.loaded and revision.name == "shop.bundle-web.r4"


def test_another_owners_revision_is_not_read_as_ours() -> None:
    body = secret_of(Owner("web", "shop"), 1)
    assert revision_of(body, Owner("web", "other")) is None
    assert revision_of(body, Owner("web")) is None
    assert revision_of(body, Owner("api", "shop")) is None


def rev(
    number: int, status: RevisionStatus, sequence: int | None = None, dep: str = ""
) -> Revision:
    seq = number if sequence is None else sequence
    return Revision("b", None, number, dep or str(number), f"c{number}", "", status, sequence=seq)


def test_previous_good_is_the_last_ready_revision_applied_before_the_current() -> None:
    history = [
        rev(1, "ready"),
        rev(2, "ready"),
        rev(3, "failed"),
        rev(4, "rolledBack"),
        rev(5, "applied"),
    ]
    good = previous_good(history, "5")
    assert good is not None and good.number == 2  # failed and rolled-back ones skipped
    assert previous_good(history, "2") == history[0]
    assert previous_good(history, "1") is None
    # the current id has no revision (its history write failed): the last ready one
    missing = previous_good(history, "unknown")
    assert missing is not None and missing.number == 2


def test_previous_good_follows_the_order_revisions_last_ran_in() -> None:
    # 1, 2, 3 deployed; rolled back to 1 (sequence 4); then 5 deployed
    history = [
        rev(1, "ready", 4),
        rev(2, "ready", 2),
        rev(3, "rolledBack", 3),
        rev(5, "applied", 5),
    ]
    good = previous_good(history, "5")
    assert good is not None and good.number == 1


def inventory(dep: str, history: int, state: str = "Ready") -> Inventory:
    return Inventory("b", [], [DeployedRevision("c1", dep, "t", state, "", history)], exists=True)


def test_history_work_is_due_only_when_the_inventory_changes_or_has_no_number() -> None:
    kept = inventory("d1", 3)
    assert not history_due(kept, None)  # the no-op sync
    assert history_due(kept, inventory("d2", 0))
    assert history_due(inventory("d1", 0), None)  # from before history was kept
    assert history_due(Inventory("b"), None)


def test_the_inventory_records_the_revision_number() -> None:
    old = inventory("d1", 0)
    written = with_history(old, None, 5)
    assert written is not None and written.current is not None and written.current.history == 5
    assert with_history(old, None, None) is None  # not kept: nothing to write
    assert with_history(inventory("d1", 5), None, 5) is None


def test_redeploy_means_another_id_ran_until_now() -> None:
    assert is_redeploy(inventory("d1", 1), "d2")
    assert not is_redeploy(inventory("d1", 1), "d1")
    assert is_redeploy(Inventory("b"), "d1")


def applied(ready: bool) -> Applied:
    return Applied(Owner("b"), "d" * 64, "c1", manifests(), BundleOptions(), ready)


def existing(status: RevisionStatus) -> tuple[Revision, Any]:
    payload = encode_payload(Owner("b"), "d" * 64, "c1", manifests(), BundleOptions())
    revision = revision_of(secret_of(Owner("b"), 1, status), Owner("b"))
    assert revision is not None
    return revision, payload


def test_a_drift_pass_only_moves_applied_to_ready() -> None:
    revision, payload = existing("applied")
    patch = _update(revision, applied(True), payload, redeploy=False, sequence=9)
    assert patch == {
        "metadata": {"labels": {"fleet-gitops.io/revision-status": "ready"}, "annotations": {}}
    }
    for status in ("ready", "failed", "rolledBack"):
        revision, payload = existing(status)  # type: ignore[arg-type]
        assert _update(revision, applied(True), payload, redeploy=False, sequence=9) == {}
    revision, payload = existing("ready")
    assert _update(revision, applied(False), payload, redeploy=False, sequence=9) == {}


def test_a_redeploy_starts_the_record_over_without_rewriting_the_same_payload() -> None:
    revision, payload = existing("rolledBack")
    patch = _update(revision, applied(True), payload, redeploy=True, sequence=9)
    assert "data" not in patch
    meta = patch["metadata"]
    assert meta["labels"] == {"fleet-gitops.io/revision-status": "ready"}
    assert meta["annotations"]["fleet-gitops.io/sequence"] == "9"
    assert meta["annotations"]["fleet-gitops.io/revision-reason"] is None


def test_other_manifests_at_the_same_id_rewrite_the_payload() -> None:
    revision, _ = existing("ready")
    changed = encode_payload(Owner("b"), "d" * 64, "c1", manifests()[:1], BundleOptions())
    patch = _update(revision, applied(True), changed, redeploy=False, sequence=9)
    assert decode_payload(base64.b64decode(patch["data"]["revision.json.gz"]))[0] == manifests()[:1]
    assert patch["metadata"]["annotations"]["fleet-gitops.io/revision-digest"] == changed.digest


@pytest.mark.parametrize(("raw", "limit"), [(None, 10), ("", 10), ("3", 3), ("2", 2)])
def test_the_history_limit_setting(raw: str | None, limit: int) -> None:
    env = {} if raw is None else {"FLEET_HISTORY_LIMIT": raw}
    assert Settings.from_env(env).history_limit == limit


@pytest.mark.parametrize("raw", ["1", "0", "-4", "ten", "2.5"])
def test_a_history_limit_below_two_or_not_a_number_is_refused(raw: str) -> None:
    with pytest.raises(UserError, match="FLEET_HISTORY_LIMIT must be a whole number"):
        Settings.from_env({"FLEET_HISTORY_LIMIT": raw})
