"""Acceptance of the embedded `fleet sync`: three real clusters, a real git daemon.

One scenario, in file order, on the demo repository (fleet.example.yaml + examples/, names
made unique): first sync, a values change, a pruned object, drift, a removed bundle, a
broken commit. dependsOn has its own small repository.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fleet.engine import Action
from fleet.errors import FleetError
from fleet.runtime.embedded import SyncReport, sync_fleet
from fleet.runtime.live_status import fleet_status
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.engine_support import apps_api, core_api
from tests.e2e.sync_support import demo_repo, deployed, suffix
from tests.support.servers import GitServer, GitWorkTree

CLUSTERS = ("dev-eu", "prod-eu", "prod-us")


@dataclass
class Scenario:
    tree: GitWorkTree
    sfx: str
    first: SyncReport
    commit: str

    def name(self, base: str) -> str:
        return f"{base}-{self.sfx}"

    def sync(self, **kwargs: object) -> SyncReport:
        lines: list[str] = []
        report = sync_fleet(self.tree.remote_url, progress=lines.append, **kwargs)  # type: ignore[arg-type]
        report.progress = lines  # type: ignore[attr-defined]
        return report


@pytest.fixture(scope="module")
def scenario(
    local_fleet: LocalFleet, git_server: GitServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEET_CREDENTIALS_DIR", str(local_fleet.dir))
        mp.setenv("FLEET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        sfx = suffix()
        tree = demo_repo(git_server, tmp_path_factory.mktemp("work") / "repo", sfx)
        commit = tree.commit_and_push("the demo fleet")
        first = sync_fleet(tree.remote_url)
        yield Scenario(tree, sfx, first, commit)


def test_first_sync_puts_each_bundle_where_its_targets_select(
    scenario: Scenario, local_fleet: LocalFleet
) -> None:
    report, n = scenario.first, scenario.name
    assert report.ok, report.status.units
    assert report.commit == scenario.commit
    assert {(u.bundle, u.cluster) for u in report.status.units} == {
        (n(b), c) for b in ("web", "guestbook", "platform-config") for c in CLUSTERS
    }
    assert all(u.state is BundleState.READY for u in report.status.units)
    assert report.renders < len(report.status.units)  # prod-eu and prod-us share renders
    for cluster in CLUSTERS:
        prod = cluster.startswith("prod")
        apps, core = apps_api(local_fleet, cluster), core_api(local_fleet, cluster)
        web = apps.read_namespaced_deployment("web", n("web"))
        assert web.spec.replicas == (3 if prod else 1)
        config = core.read_namespaced_config_map("web-config", n("web")).data
        assert config["region"] == cluster.split("-")[1]  # ${ .ClusterLabels.region }
        assert config["greeting"] == f"hello from {cluster}"
        guestbook = apps.read_namespaced_deployment("guestbook", n("guestbook"))
        assert guestbook.spec.replicas == (3 if prod else 1)  # kustomize overlays/prod
        assert guestbook.metadata.labels["env"] == ("prod" if prod else "dev")
        platform = core.read_namespaced_config_map("platform-config", n("platform"))
        assert platform.data["logLevel"] == ("warn" if prod else "debug")  # yaml overlay
        runs = deployed(local_fleet, cluster)
        assert runs[n("web")].commit == scenario.commit
        assert runs[n("web")].fleet == f"sync-{scenario.sfx}"


def test_a_second_sync_with_nothing_changed_writes_nothing(scenario: Scenario) -> None:
    report = scenario.sync()
    assert report.ok and report.writes == 0
    # guestbook has correctDrift: it is checked for drift; nothing else is touched
    assert {k[0] for k in report.results} == {scenario.name("guestbook")}


def test_a_values_change_reapplies_only_the_affected_units(
    scenario: Scenario, local_fleet: LocalFleet
) -> None:
    n = scenario.name
    before = {
        c: apps_api(local_fleet, c).read_namespaced_deployment("web", n("web")).metadata
        for c in CLUSTERS
    }
    ids = {(u.bundle, u.cluster): u.deployment_id for u in scenario.first.status.units}
    scenario.tree.write(
        "examples/bundles/web/values-prod.yaml",
        yaml.safe_dump({"resources": {"requests": {"cpu": "200m", "memory": "64Mi"}}}),
    )
    scenario.commit = scenario.tree.commit_and_push("more cpu on prod")
    report = scenario.sync()
    assert report.ok
    # re-applied: an object created or configured (a drift pass of guestbook, which has
    # correctDrift, may refresh its inventory's health record: that is not a re-apply)
    applied = (Action.CREATED, Action.CONFIGURED, Action.CORRECTED)
    written = {k for k, r in report.results.items() if any(o.action in applied for o in r.objects)}
    detail = {
        k: (r.message, [(str(o.ref), o.action.value) for o in r.objects if o.action in applied])
        for k, r in report.results.items()
        if r.writes
    }
    assert written == {(n("web"), "prod-eu"), (n("web"), "prod-us")}, detail
    after = {(u.bundle, u.cluster): u.deployment_id for u in report.status.units}
    changed = {k for k in after if after[k] != ids[k]}
    assert changed == written
    for cluster in CLUSTERS:
        live = apps_api(local_fleet, cluster).read_namespaced_deployment("web", n("web"))
        if cluster == "dev-eu":
            assert live.metadata.resource_version == before[cluster].resource_version
        else:
            cpu = live.spec.template.spec.containers[0].resources.requests["cpu"]
            assert cpu == "200m"


def test_an_object_removed_from_git_is_pruned(scenario: Scenario, local_fleet: LocalFleet) -> None:
    n = scenario.name
    base = scenario.tree.path / "examples/bundles/guestbook/base"
    (base / "service.yaml").unlink()
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    kustomization["resources"] = ["deployment.yaml"]
    (base / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    scenario.commit = scenario.tree.commit_and_push("no guestbook service")
    assert core_api(local_fleet, "prod-us").read_namespaced_service("guestbook", n("guestbook"))
    report = scenario.sync()
    assert report.ok
    for cluster in CLUSTERS:
        pruned = report.results[(n("guestbook"), cluster)].pruned
        assert [str(ref) for ref in pruned] == [f"Service {n('guestbook')}/guestbook"]
        services = core_api(local_fleet, cluster).list_namespaced_service(n("guestbook")).items
        assert [s.metadata.name for s in services] == []


def test_hand_edits_are_reported_modified_and_corrected_with_correct_drift(
    scenario: Scenario, local_fleet: LocalFleet
) -> None:
    n = scenario.name
    apps, core = apps_api(local_fleet, "prod-eu"), core_api(local_fleet, "prod-eu")
    apps.patch_namespaced_deployment("guestbook", n("guestbook"), {"spec": {"replicas": 5}})
    core.patch_namespaced_config_map("platform-config", n("platform"), {"data": {"tier": "x"}})
    status = fleet_status(scenario.tree.remote_url)
    states = {(u.bundle, u.cluster): u for u in status.units}
    assert states[(n("guestbook"), "prod-eu")].state is BundleState.MODIFIED
    assert "/spec/replicas" in states[(n("guestbook"), "prod-eu")].message
    assert states[(n("platform-config"), "prod-eu")].state is BundleState.MODIFIED
    assert states[(n("web"), "prod-eu")].state is BundleState.READY
    assert status.clusters()["prod-eu"] is BundleState.MODIFIED
    assert status.clusters()["dev-eu"] is BundleState.READY

    report = scenario.sync()
    corrected = report.results[(n("guestbook"), "prod-eu")]
    assert corrected.writes >= 1 and [d.ref.name for d in corrected.drift] == ["guestbook"]
    assert apps.read_namespaced_deployment("guestbook", n("guestbook")).spec.replicas == 3
    # platform-config has no correctDrift: the edit stays and is still reported
    assert core.read_namespaced_config_map("platform-config", n("platform")).data["tier"] == "x"
    status = fleet_status(scenario.tree.remote_url)
    states = {(u.bundle, u.cluster): u.state for u in status.units}
    assert states[(n("guestbook"), "prod-eu")] is BundleState.READY
    assert states[(n("platform-config"), "prod-eu")] is BundleState.MODIFIED
    core.patch_namespaced_config_map(
        "platform-config", n("platform"), {"data": {"tier": "premium"}}
    )


def test_a_broken_commit_is_applied_nowhere(scenario: Scenario, local_fleet: LocalFleet) -> None:
    n = scenario.name
    before = {c: deployed(local_fleet, c) for c in CLUSTERS}
    template = scenario.tree.path / "examples/bundles/web/chart/templates/deployment.yaml"
    original = template.read_text()
    template.write_text(original.replace("{{ .Values.replicaCount }}", "{{ .Values.replicaCount"))
    scenario.tree.write(
        "examples/bundles/guestbook/overlays/prod/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: guestbook}\nspec: {replicas: 2}\n",
    )
    scenario.tree.commit_and_push("broken chart")
    with pytest.raises(FleetError) as caught:
        scenario.sync()
    message = str(caught.value)
    assert "deployment.yaml" in message and ":" in message, message
    assert len(message.splitlines()) == 1  # reported once, not once per cluster
    for cluster in CLUSTERS:
        assert deployed(local_fleet, cluster) == before[cluster]  # same ids, commits, states
        live = apps_api(local_fleet, cluster).read_namespaced_deployment(
            "guestbook", n("guestbook")
        )
        assert live.spec.replicas == (3 if cluster != "dev-eu" else 1)
    template.write_text(original)
    (scenario.tree.path / "examples/bundles/guestbook/overlays/prod/replicas.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: guestbook}\nspec: {replicas: 3}\n"
    )
    scenario.commit = scenario.tree.commit_and_push("fixed")


def test_a_bundle_removed_from_git_is_removed_from_its_clusters(
    scenario: Scenario, local_fleet: LocalFleet
) -> None:
    n = scenario.name
    definition = yaml.safe_load((scenario.tree.path / "fleet.yaml").read_text())
    definition["bundles"]["inline"] = []
    scenario.tree.write("fleet.yaml", yaml.safe_dump(definition, sort_keys=False))
    shutil.rmtree(scenario.tree.path / "examples/bundles/platform-config")
    scenario.commit = scenario.tree.commit_and_push("no platform-config")
    report = scenario.sync()
    assert report.ok, report.status.units
    assert {k for k in report.removed} == {(n("platform-config"), c) for c in CLUSTERS}
    assert all(r.state is BundleState.READY for r in report.removed.values())
    for cluster in CLUSTERS:
        assert n("platform-config") not in deployed(local_fleet, cluster)
        maps = core_api(local_fleet, cluster).list_namespaced_config_map(n("platform")).items
        assert "platform-config" not in [m.metadata.name for m in maps]
    # bundles of other fleets (other tests, the demo) on the same clusters are never touched
    again = scenario.sync()
    assert again.removed == {} and again.writes == 0


def test_depends_on_applies_the_dependent_after_its_dependency_is_ready(
    local_fleet: LocalFleet, git_server: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_CREDENTIALS_DIR", str(local_fleet.dir))
    sfx = suffix()
    tree = git_server.create_repo(f"deps-{sfx}", tmp_path / "repo")
    tree.write(
        "fleet.yaml",
        yaml.safe_dump(
            {
                "apiVersion": "fleet-gitops.io/v1alpha1",
                "kind": "Fleet",
                "name": f"deps-{sfx}",
                "clusters": [{"name": "dev-eu", "labels": {"env": "dev"}}],
                "bundles": {"paths": ["bundles/*"]},
            }
        ),
    )
    deployment = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: db}\nspec:\n  replicas: 1\n"
        "  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n"
        "    spec: {containers: [{name: db, image: example/db:1}]}\n"
    )
    tree.write(
        "bundles/app/fleet.yaml",
        f"name: app-{sfx}\ndefaultNamespace: deps-{sfx}\ndependsOn:\n  - name: db-{sfx}\n",
    )
    tree.write("bundles/app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n")
    tree.write("bundles/db/fleet.yaml", f"name: db-{sfx}\ndefaultNamespace: deps-{sfx}\n")
    tree.write("bundles/db/deployment.yaml", deployment)
    tree.commit_and_push("app depends on db")
    lines: list[str] = []
    report = sync_fleet(tree.path, progress=lines.append)
    assert report.ok, report.status.units
    order = [line.split(":")[0] for line in lines if ": Ready:" in line]
    assert order == [f"dev-eu/db-{sfx}", f"dev-eu/app-{sfx}"]
    # the dependent was dispatched only after the dependency reported Ready
    started = next(i for i, line in enumerate(lines) if f"app-{sfx}: syncing" in line)
    ready = next(i for i, line in enumerate(lines) if f"db-{sfx}: Ready" in line)
    assert ready < started
    db = apps_api(local_fleet).read_namespaced_deployment("db", f"deps-{sfx}")
    app = core_api(local_fleet).read_namespaced_config_map("app", f"deps-{sfx}")
    assert db.status.ready_replicas == 1
    assert app.metadata.creation_timestamp >= db.metadata.creation_timestamp
