"""Image pull Secrets a unit needs, made at apply time from a credential the runtime holds.

A bundle's `images.pullSecrets` (`fleet.spec.bundle_options.PullSecretOption`) asks for a
`kubernetes.io/dockerconfigjson` Secret in every namespace its objects use. The credential
is the worker's (its environment), so the Secret is never a rendered manifest: not in the
render cache, the plans, the diffs, the revision history or the events. The runtime hands
the engine `PullSecret`s (name and Docker config), and `apply_pull_secrets` makes them
between the bundle's cluster-scoped objects (its Namespaces) and its namespaced ones, so a
Pod never starts before the Secret it pulls with.

The no-op path reads metadata only: one metadata LIST of the owner's Secrets per
namespace. Each Secret carries `applied-hash`, a sha256 of its content salted with a random
value kept in its own `pull-secret-salt` annotation. So a changed credential is seen
(the hash differs) without reading the data, and the inventory (a ConfigMap anyone with
`view` on fleet-system reads) records a hash nobody can test password guesses against
without reading the Secret itself. Its inventory entries are marked (`PULL_HASH_PREFIX`), so
a sync that is given no pull secrets at all (a rollback: the history holds no credential)
keeps them, while a sync that is given the list prunes the ones no longer wanted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet.engine.apply import Action, ObjectResult
from fleet.engine.identity import Owner
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, KubeError, ObjectRef
from fleet.engine.labels import ANN_HASH, ANN_PULL_SALT, LABEL_MANAGED_BY, MANAGED_BY
from fleet.manifest import Manifest
from fleet.states import BundleState

log = logging.getLogger(__name__)

SECRET_TYPE = "kubernetes.io/dockerconfigjson"
DATA_KEY = ".dockerconfigjson"
PULL_HASH_PREFIX = "pull:"  # inventory entries of pull secrets


@dataclass(frozen=True)
class PullSecret:
    """One pull Secret to make: its name and the Docker config file it holds."""

    name: str
    config: bytes = field(repr=False)


def salted_hash(secret: PullSecret, salt: str) -> str:
    """What `applied-hash` says of a pull Secret made with `salt` (never the bare sha256 of
    the credential: that would let anyone reading the inventory test guesses)."""
    digest = hashlib.sha256()
    for part in (salt.encode(), secret.name.encode(), SECRET_TYPE.encode(), secret.config):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def secret_body(
    secret: PullSecret, namespace: str, owner: Owner, salt: str, digest: str
) -> dict[str, Any]:
    """The Secret as applied: the owner's labels, the salted hash, the config in `data`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": secret.name,
            "namespace": namespace,
            "labels": {**owner.labels(), LABEL_MANAGED_BY: MANAGED_BY},
            "annotations": {**owner.annotations(), ANN_HASH: digest, ANN_PULL_SALT: salt},
        },
        "data": {DATA_KEY: base64.b64encode(secret.config).decode()},
    }


def _annotations(obj: Manifest) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("annotations") or {})


def apply_pull_secrets(
    conn: ClusterConnection,
    owner: Owner,
    wanted: Sequence[PullSecret],
    namespaces: Iterable[str],
    *,
    dry_run: bool = False,
) -> list[ObjectResult]:
    """Make each wanted Secret in each namespace (metadata LISTs; a write only where one is
    missing or its credential changed). A Secret of that name that is not this owner's is
    left alone and reported (ErrApplied). Results never hold the live Secret."""
    results: list[ObjectResult] = []
    if not wanted:
        return results
    res = conn.resource("v1", "Secret")
    for namespace in sorted(set(namespaces)):
        mine = {
            str(o["metadata"]["name"]): o
            for o in conn.list_objects(
                res, namespace, label_selector=owner.selector, metadata_only=True
            )
        }
        others: set[str] | None = None
        for secret in wanted:
            ref = ObjectRef("v1", "Secret", namespace, secret.name)
            live = mine.get(secret.name)
            if live is None:
                if others is None:
                    listed = conn.list_objects(res, namespace, metadata_only=True)
                    others = {str(o["metadata"]["name"]) for o in listed}
                if secret.name in others:
                    message = f"{ref} exists and is not {owner}'s: the pull secret is not made"
                    log.warning("%s: %s", conn.name, message)
                    results.append(
                        ObjectResult(ref, Action.FAILED, BundleState.ERR_APPLIED, message)
                    )
                    continue
            results.append(_apply_one(conn, owner, secret, ref, live, dry_run=dry_run))
    return results


def _apply_one(
    conn: ClusterConnection,
    owner: Owner,
    secret: PullSecret,
    ref: ObjectRef,
    live: Manifest | None,
    *,
    dry_run: bool,
) -> ObjectResult:
    known = _annotations(live) if live is not None else {}
    salt = known.get(ANN_PULL_SALT) or secrets.token_hex(16)
    digest = salted_hash(secret, salt)
    recorded = PULL_HASH_PREFIX + digest
    if live is not None and known.get(ANN_HASH) == digest:
        return ObjectResult(ref, Action.UNCHANGED, hash=recorded)
    action = Action.CONFIGURED if live is not None else Action.CREATED
    if dry_run:
        return ObjectResult(ref, action, message="pull secret (values not shown)", hash=recorded)
    assert ref.namespace is not None
    body = secret_body(secret, ref.namespace, owner, salt, digest)
    try:
        conn.apply(body, force=True, field_manager=owner.field_manager)
    except ClusterUnreachable:
        raise
    except KubeError as err:
        # the server's message names the object, never the data it was sent
        return ObjectResult(ref, Action.FAILED, BundleState.ERR_APPLIED, str(err), error=err)
    log.info("%s: %s pull secret %s", conn.name, action.value, ref)
    return ObjectResult(ref, action, hash=recorded)
