"""Object identity, owners, claims and the ownership verdicts (pure logic; the e2e tests in
tests/e2e/test_safe_changes.py show the same rules on real clusters)."""

from __future__ import annotations

from typing import Any

from fleet.engine.identity import Claims, Owner, key_of
from fleet.engine.inventory import Inventory, InventoryEntry
from fleet.engine.kube import Conflict, ObjectRef
from fleet.engine.labels import ANN_BUNDLE, ANN_FLEET, LABEL_BUNDLE, LABEL_FLEET
from fleet.engine.ownership import Claim, conflict_message, decide
from fleet.engine.prune import prune_candidates

REF = ObjectRef("v1", "ConfigMap", "shop", "settings")


def live(bundle: str | None, fleet: str | None = None, managers: tuple[str, ...] = ()) -> Any:
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if bundle:
        labels[LABEL_BUNDLE], annotations[ANN_BUNDLE] = bundle, bundle
    if fleet:
        labels[LABEL_FLEET], annotations[ANN_FLEET] = fleet, fleet
    return {
        "metadata": {
            "name": "settings",
            "labels": labels,
            "annotations": annotations,
            "managedFields": [{"manager": m} for m in managers],
        }
    }


def claims_of(*bundles: str) -> Claims:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
    return Claims.of((b, [manifest], "shop") for b in bundles)


def test_the_key_is_the_object_not_its_api_version() -> None:
    v1 = ObjectRef("autoscaling/v1", "HorizontalPodAutoscaler", "shop", "web")
    v2 = ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", "shop", "web")
    assert key_of(v1) == key_of(v2)
    old = Inventory("b", [InventoryEntry(v1, "h")], exists=True)
    assert prune_candidates(old, [v2]) == []
    other_group = ObjectRef("networking.k8s.io/v1", "HorizontalPodAutoscaler", "shop", "web")
    assert prune_candidates(old, [other_group]) == [InventoryEntry(v1, "h")]


def test_field_manager_names_fleet_and_bundle_and_fits_the_limit() -> None:
    assert Owner("web", "shop").field_manager == "fleet/shop/web"
    assert Owner("web").field_manager == "fleet/web"
    long = Owner("b" * 200, "f" * 200).field_manager
    assert len(long) <= 128 and long.startswith("fleet/")
    assert long != Owner("b" * 199 + "c", "f" * 200).field_manager


def test_owner_of_live_objects() -> None:
    me = Owner("web", "shop")
    assert me.owns(live("web", "shop"))
    assert me.owns(live("web"))  # written before fleets were on objects
    assert not me.owns(live("web", "blog"))
    assert not me.owns(live("api", "shop"))
    assert not me.owns(live(None))
    assert Owner.of_live(live("api", "shop")) == Owner("api", "shop")
    assert Owner.of_live(live(None)) is None


def test_verdicts() -> None:
    me = Owner("new", "shop")
    none: Any = lambda: None  # noqa: E731
    assert decide(REF, None, me, none).claim is Claim.CREATE
    assert decide(REF, live("new", "shop"), me, none).claim is Claim.OURS
    # another bundle that still renders it: a conflict naming both, the object, the owner
    verdict = decide(REF, live("old", "shop"), me, lambda: claims_of("old", "new"))
    assert verdict.claim is Claim.CONFLICT and not verdict.claim.may_write
    assert "ConfigMap shop/settings" in verdict.message
    assert "bundles old and new" in verdict.message and "old owns it" in verdict.message
    # without claims fleet cannot know: conflict, never a silent takeover
    assert decide(REF, live("old", "shop"), me, none).claim is Claim.CONFLICT
    # the old bundle no longer renders it: handed over
    handed = decide(REF, live("old", "shop"), me, lambda: claims_of("new"))
    assert handed.claim is Claim.HANDOVER and handed.claim.forced
    assert handed.previous == Owner("old", "shop")
    # another fleet's: never, whatever the claims say
    other = decide(REF, live("old", "blog"), me, lambda: claims_of("new"))
    assert other.claim is Claim.OTHER_FLEET and "fleet blog" in other.message
    # not fleet's: an error naming the managers and the opt-in, or adopted with it
    foreign = decide(REF, live(None, managers=("kubectl-create",)), me, none)
    assert foreign.claim is Claim.FOREIGN
    assert "kubectl-create" in foreign.message and "helm.takeOwnership" in foreign.message
    adopt = decide(REF, live(None), me, none, take_ownership=True)
    assert adopt.claim is Claim.ADOPT and adopt.claim.forced


def test_claims_only_asked_when_another_bundle_owns_it() -> None:
    asked: list[int] = []

    def claims() -> Claims:
        asked.append(1)
        return claims_of("new")

    me = Owner("new", "shop")
    decide(REF, None, me, claims)
    decide(REF, live("new", "shop"), me, claims)
    decide(REF, live(None), me, claims)
    assert asked == []
    decide(REF, live("old", "shop"), me, claims)
    assert asked == [1]


def test_claims_scope_and_namespaces() -> None:
    claims = Claims.of(
        [
            (
                "a",
                [
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "ClusterRole",
                        "metadata": {"name": "r", "namespace": "ignored"},
                    },
                ],
                "shop",
            ),
            (
                "b",
                [
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "s", "namespace": "pay"},
                    }
                ],
                "default",
            ),
        ]
    )
    assert claims.bundles(ObjectRef("v1", "ConfigMap", "shop", "x")) == {"a"}
    assert claims.bundles(ObjectRef("v1", "ConfigMap", "pay", "x")) == set()
    # cluster-scoped: the namespace a manifest carries means nothing
    assert claims.bundles(ObjectRef("rbac.authorization.k8s.io/v1", "ClusterRole", None, "r")) == {
        "a"
    }
    assert claims.bundles(ObjectRef("v1", "Namespace", None, "shop")) == {"a"}
    assert claims.others(ObjectRef("v1", "Secret", "pay", "s"), "a") == ["b"]
    assert "shop" in claims.namespaces and "pay" in claims.namespaces


def test_a_409_from_another_bundles_manager_names_both_bundles() -> None:
    err = Conflict(
        'c1: apply ConfigMap shop/settings: conflict with "fleet/shop/old" using v1: '
        ".metadata.labels.fleet-gitops.io/bundle"
    )
    message = conflict_message(REF, Owner("new", "shop"), err)
    assert "bundles old and new" in message and "ConfigMap shop/settings" in message
    plain = Conflict('c1: apply: conflict with "kubectl" using v1: .data.x')
    assert conflict_message(REF, Owner("new", "shop"), plain) == str(plain)
