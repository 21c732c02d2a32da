"""Five real clusters for the progressive-delivery tests: a canary, two in eu, two in us.

Three are the session's test fleet (prod-eu, dev-eu, prod-us); two more (`canary` and
`us-2`) are started for the module by the test bed (`tests/testbin/localfleet.py`) and
stopped after it. The fleet definition names them `canary-<sfx>`, `eu-1-<sfx>`, ... so the
exporter's per-cluster error rates of two tests never mix; credentials come from a
directory of `<name>.kubeconfig` copies (FLEET_CREDENTIALS_DIR).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.engine.kube import ClusterConnection, ObjectRef
from tests.conftest import LocalFleet
from tests.support.exporter import Exporter
from tests.support.prometheus import PrometheusServer
from tests.support.servers import GitServer, GitWorkTree

EXTRA = [("canary", {"tier": "canary"}), ("us-2", {"region": "us"})]
# logical name -> (test-bed cluster, labels in the definition)
LAYOUT = {
    "canary": ("canary", {"tier": "canary", "region": "eu"}),
    "eu-1": ("prod-eu", {"region": "eu"}),
    "eu-2": ("dev-eu", {"region": "eu"}),
    "us-1": ("prod-us", {"region": "us"}),
    "us-2": ("us-2", {"region": "us"}),
}
ORDER = ["canary", "eu-1", "eu-2", "us-1", "us-2"]
ERROR_RATE = (
    'sum(rate(http_requests_total{cluster="{{cluster}}",code=~"5.."}[5s]))'
    ' / sum(rate(http_requests_total{cluster="{{cluster}}"}[5s]))'
)


@pytest.fixture(scope="module")
def five_clusters(
    local_fleet: LocalFleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    """test-bed cluster name -> kubeconfig, for the five clusters of LAYOUT."""
    import localfleet

    extra_dir = tmp_path_factory.mktemp("five")
    try:
        state = localfleet.up(extra_dir, EXTRA)
    except localfleet.LocalFleetError as err:
        pytest.fail(f"the extra clusters did not start: {err}", pytrace=False)
    try:
        found = {n: c.kubeconfig for n, c in local_fleet.clusters.items()}
        found.update({n: Path(str(s["kubeconfig"])) for n, s in state.items()})
        yield found
    finally:
        localfleet.down(extra_dir)


@dataclass
class ProgressiveFleet:
    tree: GitWorkTree
    sfx: str
    kubeconfigs: dict[str, Path]  # logical name (with sfx) -> kubeconfig
    exporter: Exporter
    conns: dict[str, ClusterConnection] = field(default_factory=dict)

    def name(self, logical: str) -> str:
        return f"{logical}-{self.sfx}"

    @property
    def names(self) -> list[str]:
        return [self.name(n) for n in ORDER]

    @property
    def ns(self) -> str:
        return f"shop-{self.sfx}"

    def conn(self, cluster: str) -> ClusterConnection:
        if cluster not in self.conns:
            self.conns[cluster] = ClusterConnection.from_kubeconfig(
                self.kubeconfigs[cluster], name=cluster
            )
        return self.conns[cluster]

    def write(self, path: str, *docs: dict[str, Any]) -> None:
        self.tree.write(path, yaml.safe_dump_all(docs, sort_keys=False))

    def write_definition(self, rollout: dict[str, Any], **extra: Any) -> None:
        clusters = [{"name": self.name(n), "labels": LAYOUT[n][1]} for n in ORDER]
        doc = {
            "apiVersion": "fleet-gitops.io/v1alpha1",
            "kind": "Fleet",
            "name": f"prog-{self.sfx}",
            "clusters": clusters,
            "bundles": {"paths": ["apps/*"]},
            "rollout": rollout,
            **extra,
        }
        self.write("fleet.yaml", doc)

    def app(self, version: str, *, ready: bool = True) -> None:
        """The bundle `apps-web`: a ConfigMap and a Deployment that say `version`; with
        `ready=False` the Deployment's pods can never be scheduled (never Ready)."""
        labels = {"app": "web"}
        pod: dict[str, Any] = {
            "containers": [{"name": "web", "image": f"example.invalid/web:{version}"}]
        }
        if not ready:
            pod["nodeSelector"] = {"fleet-test/no-such-node": "true"}
        self.write("apps/web/fleet.yaml", {"defaultNamespace": self.ns})
        self.write(
            "apps/web/app.yaml",
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "web-config", "namespace": self.ns},
             "data": {"version": version}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": self.ns},
             "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels, "annotations": {"v": version}},
                                   "spec": pod}}},
        )  # fmt: skip

    def commit(self, message: str) -> str:
        return self.tree.commit_and_push(message)

    def live(self, cluster: str, kind: str, name: str) -> dict[str, Any] | None:
        api = "v1" if kind == "ConfigMap" else "apps/v1"
        return self.conn(cluster).get(ObjectRef(api, kind, self.ns, name))

    def version(self, cluster: str) -> str | None:
        found = self.live(cluster, "ConfigMap", "web-config")
        return None if found is None else str((found.get("data") or {}).get("version"))

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


def new_progressive(
    git_server: GitServer,
    five: dict[str, Path],
    exporter: Exporter,
    prometheus: PrometheusServer,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> ProgressiveFleet:
    sfx = uuid.uuid4().hex[:6]
    tree = git_server.create_repo(f"prog-{sfx}", work / "repo")
    creds = work / "credentials"
    creds.mkdir()
    kubeconfigs: dict[str, Path] = {}
    for logical, (bed, _) in LAYOUT.items():
        target = creds / f"{logical}-{sfx}.kubeconfig"
        shutil.copy(five[bed], target)
        kubeconfigs[f"{logical}-{sfx}"] = target
    monkeypatch.setenv("FLEET_CREDENTIALS_DIR", str(creds))
    monkeypatch.setenv("FLEET_CACHE_DIR", str(work / "cache"))
    found = ProgressiveFleet(tree, sfx, kubeconfigs, exporter)
    for name in found.names:
        exporter.set(name, error_rate=0.0)
    for name in found.names:
        prometheus.wait_scraped(name, times=3)
    return found


def wait_error_rate(
    prometheus: PrometheusServer, cluster: str, low: float, high: float, timeout: float = 60
) -> float:
    """Until the gate's query gives a value in [low, high] for `cluster` (the exporter's
    new error share has filled the rate window)."""
    promql = ERROR_RATE.replace("{{cluster}}", cluster)
    deadline = time.monotonic() + timeout
    while True:
        found = prometheus.query(promql)
        value = float(found[0]["value"][1]) if found else None
        if value is not None and low <= value <= high:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"error rate of {cluster} stayed {value}, not in [{low}, {high}]")
        time.sleep(0.3)


def prometheus_gate(prometheus: PrometheusServer, **params: Any) -> dict[str, Any]:
    gate = {
        "name": "error-rate",
        "type": "prometheus",
        "query": ERROR_RATE,
        "interval": "1s",
        "count": 3,
        "thresholdRange": {"max": 0.05},
    }
    return {**gate, **params}
