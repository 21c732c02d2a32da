"""Issue 8 case 8 in the distributed mode: the work behind the tasks (`UnitWorker`), a real
cluster, Redis and Git. A drift check reports the hand-scaled Deployment Modified, the
planner sends the correctDrift bundle again, and the apply puts Git's replicas back."""

from __future__ import annotations

import time

from fleet.rollout.planner import plan
from fleet.runtime.worker import UnitJob
from fleet.states import BundleState
from tests.conftest import LocalFleet
from tests.e2e.engine_support import apps_api
from tests.e2e.sync_support import fleet_env
from tests.e2e.test_worker_unit import Bed, bed

__all__ = ["bed", "fleet_env"]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: example/app:1.0}]
"""


def test_a_drift_check_then_the_correcting_apply_puts_replicas_back(
    bed: Bed, local_fleet: LocalFleet
) -> None:
    web = f"web{bed.ns[3:]}"  # a bundle name of its own: the session's clusters are shared
    bundle = f"apps-{web}"
    bed.work.write(
        f"apps/{web}/fleet.yaml",
        f"defaultNamespace: {bed.ns}\ncorrectDrift: {{enabled: true}}\nwaitTimeoutSeconds: 30\n",
    )
    bed.work.write(f"apps/{web}/deploy.yaml", DEPLOYMENT)
    commit = bed.work.commit_and_push("a deployment with correctDrift")
    rev = bed.worker.loader.load(bed.work.remote_url, commit)
    unit = rev.by_key[(bundle, "dev-eu")]
    job = UnitJob(bed.fleet, bed.work.remote_url, commit, bundle, "dev-eu",
                  unit.deployment_id)  # fmt: skip
    assert bed.worker.apply(job).state == "Ready"
    record = bed.cache.actual(["dev-eu"])[(bundle, "dev-eu")]
    assert record.objects == 2  # Deployment + namespace: what the inventory lists, for
    # the mass-delete guard of `fleet serve`
    bed.worker.refresh(job)  # the same count from the inventories' metadata LIST
    listed = bed.cache.actual(["dev-eu"])[(bundle, "dev-eu")]
    assert (listed.by, listed.objects) == ("inventory", 2)

    apps = apps_api(local_fleet, "dev-eu")
    apps.patch_namespaced_deployment_scale(
        "web", bed.ns, {"spec": {"replicas": 3}}, field_manager="kubectl-scale"
    )
    drifted = bed.worker.check_drift(job)
    assert drifted.state == "Modified" and "/spec/replicas" in drifted.message
    cached = bed.cache.actual(["dev-eu"])
    assert cached[(bundle, "dev-eu")].state is BundleState.MODIFIED
    # what the scheduler's next tick decides from the cache
    decided = plan([unit], cached, rev.repo.definition.rollout, now=time.time())
    assert [(d.unit.bundle, d.reason) for d in decided.dispatch] == [(bundle, "correct drift")]

    fixed = bed.worker.apply(job)
    assert fixed.state == "Ready", fixed.message
    assert apps.read_namespaced_deployment("web", bed.ns).spec.replicas == 1
    assert bed.cache.actual(["dev-eu"])[(bundle, "dev-eu")].state is BundleState.READY
    assert bed.worker.check_drift(job).message == "no drift"
