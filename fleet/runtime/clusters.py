"""Reaching the clusters of a run: credentials, retries with backoff, what each one runs.

`ClusterLink` wraps one `ClusterConnection` for the embedded orchestrator: it resolves the
credential from the environment (never from Git), retries a call that found the cluster
unreachable a few times with exponential backoff, and after that marks the cluster down
for the rest of the run, so its units are reported and the other clusters go on.

Ownership of inventories. Several fleets (repositories) may deploy to one cluster, and the
engine's tests deploy bundles without any fleet, so "a bundle the cluster runs that my Git
does not name" is only a removal when this fleet deployed it. After a successful sync the
orchestrator stamps the bundle's inventory ConfigMap with `fleet-gitops.io/fleet: NAME`
(and `fleet-gitops.io/keep-resources`, so a bundle that left Git is removed the way its
last revision asked). The stamp is a JSON merge patch, written only when it differs from
what the LIST showed, so a no-op sync still writes nothing; `fleet.engine.unit`'s
server-side applies of the inventory leave it alone (another field manager owns it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from fleet.engine.apply import ANN_BUNDLE, ANN_DEPLOYMENT, PREFIX
from fleet.engine.inventory import (
    ANN_COMMIT,
    ANN_STATE,
    INVENTORY_NAMESPACE,
    LABEL_INVENTORY,
    inventory_name,
)
from fleet.engine.kube import ClusterConnection, ClusterUnreachable, KubeError, NotFound
from fleet.errors import FleetError
from fleet.runtime.credentials import resolve_kubeconfig
from fleet.spec.definition import ClusterSpec
from fleet.states import BundleState

log = logging.getLogger(__name__)

ANN_FLEET = f"{PREFIX}/fleet"
ANN_KEEP = f"{PREFIX}/keep-resources"
STAMP_MANAGER = "fleet-owner"
MERGE_PATCH = "application/merge-patch+json"

T = TypeVar("T")


@dataclass(frozen=True)
class DeployedBundle:
    """One inventory as the metadata LIST shows it."""

    bundle: str
    deployment_id: str
    commit: str
    state: BundleState
    fleet: str | None
    keep_resources: bool


def parse_state(text: str) -> BundleState:
    """An inventory's state annotation; unknown or empty -> NotReady (look again)."""
    try:
        return BundleState(text)
    except ValueError:
        return BundleState.NOT_READY


@dataclass
class ClusterLink:
    """One cluster of a run: its connection, or why it cannot be reached."""

    spec: ClusterSpec
    conn: ClusterConnection | None = None
    down: str | None = None  # the unreachable error, once retries are exhausted
    retries: int = 3
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def writes(self) -> int:
        return self.conn.writes if self.conn is not None else 0

    def connect(self, env: Mapping[str, str]) -> None:
        """Resolve the credential and load the kubeconfig; a missing file is a user error."""
        location = resolve_kubeconfig(self.spec, env)
        if not location.path.is_file():
            raise FleetError(
                f"cluster '{self.name}': kubeconfig {location.path} not found "
                "(credentials are resolved from the environment, see fleet.runtime.credentials)"
            )
        self.conn = ClusterConnection.from_kubeconfig(
            location.path, location.context, name=self.name
        )

    def call(self, what: str, fn: Callable[[ClusterConnection], T]) -> T:
        """`fn(conn)`, retried with backoff while the cluster is unreachable.

        Raises ClusterUnreachable (and marks the link down) when every attempt failed.
        """
        if self.down is not None:
            raise ClusterUnreachable(self.down)
        assert self.conn is not None, "connect() first"
        for attempt in range(self.retries + 1):
            try:
                return fn(self.conn)
            except ClusterUnreachable as err:
                if attempt == self.retries:
                    self.down = str(err).replace("; will retry with backoff", "")
                    raise ClusterUnreachable(self.down) from None
                delay = min(self.backoff * 2**attempt, err.retry_after)
                self._say(f"{self.name}: {what}: unreachable, retry {attempt + 1}/"
                          f"{self.retries} in {delay:.1f}s")  # fmt: skip
                self.sleep(delay)
        raise AssertionError("unreachable")

    def _say(self, line: str) -> None:
        log.warning("%s", line)
        if self.log is not None:
            self.log(line)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def read_deployed(conn: ClusterConnection) -> dict[str, DeployedBundle]:
    """bundle -> what the cluster runs, from one metadata-only LIST of the inventories.

    The same LIST as `fleet.engine.inventory.list_deployed`, also reading the ownership stamp.
    """
    res = conn.resource("v1", "ConfigMap")
    found: dict[str, DeployedBundle] = {}
    for cm in conn.list_objects(
        res, INVENTORY_NAMESPACE, label_selector=f"{LABEL_INVENTORY}=true", metadata_only=True
    ):
        ann = cm.get("metadata", {}).get("annotations") or {}
        bundle = ann.get(ANN_BUNDLE)
        if not bundle:
            continue
        found[bundle] = DeployedBundle(
            bundle,
            ann.get(ANN_DEPLOYMENT, ""),
            ann.get(ANN_COMMIT, ""),
            parse_state(ann.get(ANN_STATE, "")),
            ann.get(ANN_FLEET) or None,
            ann.get(ANN_KEEP) == "true",
        )
    return found


def stamp_owner(conn: ClusterConnection, bundle: str, fleet: str, keep_resources: bool) -> bool:
    """Mark the bundle's inventory as deployed by `fleet`; False when it has no inventory."""
    res = conn.resource("v1", "ConfigMap")
    patch = {
        "metadata": {
            "annotations": {ANN_FLEET: fleet, ANN_KEEP: "true" if keep_resources else "false"}
        }
    }
    try:
        conn.request(
            "PATCH",
            res.object_path(INVENTORY_NAMESPACE, inventory_name(bundle)),
            query=[("fieldManager", STAMP_MANAGER)],
            body=patch,
            content_type=MERGE_PATCH,
            what=f"stamp inventory of bundle {bundle}",
        )
    except NotFound:
        return False
    except ClusterUnreachable:
        raise
    except KubeError as err:
        log.warning("%s; the bundle will not be removed automatically if it leaves Git", err)
        return False
    return True
