"""The image loop of a real `fleet serve` (real Redis, git daemon, the htpasswd registry)
promoting a tag wave by wave: it reads the rollout records in Redis against the revision
of the scheduler's commit in force. The tasks go nowhere (no worker), so the records are
written here, as the tracker would: a failed canary holds the promotion (one
`image.promotionHeld`, however many passes), a passed one lets the next commit through."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.rollout import record as rec
from fleet.rollout.record import BundleRollout, WaveRecord, bundle_revisions
from fleet.runtime.rollout_store import RedisRolloutStore
from fleet.runtime.scheduler import SchedulerConfig
from fleet.runtime.serve import Server, start_server
from fleet.runtime.state_cache import connect_redis
from fleet.runtime.tasks import TaskArgs
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer
from tests.support.servers import GitServer, GitWorkTree, RedisServer, run_git
from tests.support.tls import TlsFiles

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
clusters:
  - {{name: canary-1, labels: {{tier: canary}}}}
  - {{name: eu-1, labels: {{region: eu}}}}
rollout:
  waves:
    - {{name: canary, clusters: [canary-1]}}
    - {{name: prod-eu, clusters: [eu-1]}}
registries: [{{name: bed, type: oci, host: '{host}', credential: bed}}]
imagePolicies:
  - {{name: web, image: '{host}/{name}/web', policy: {{semver: {{range: '^1'}}}},
     promotion: waves}}
imageUpdates:
  interval: 1s
  author: {{name: fleet images bot, email: images@fleet.invalid}}
  paths: [apps]
bundles:
  paths: [apps/*]
"""
FILES = {
    "canary": "apps/web/canary.yaml",
    "prod-eu": "apps/web/prod-eu.yaml",
}


class Recorder:
    def send(self, task: str, kwargs: TaskArgs, queue: str) -> str:
        return "task"


@dataclass
class Bed:
    server: Server
    work: GitWorkTree
    store: RedisRolloutStore

    def head(self) -> str:
        run_git("fetch", "--quiet", "origin", cwd=self.work.path)
        return run_git("rev-parse", "origin/main", cwd=self.work.path).strip()

    def touched(self, commit: str) -> list[str]:
        out = run_git("show", "--name-only", "--format=", commit, cwd=self.work.path)
        return sorted(line for line in out.splitlines() if line)

    def events(self, kind: str) -> list[dict[str, str]]:
        events = self.server.scheduler.events
        found = events.log.read() if events is not None else []
        return [
            {"message": e.event.message, "wave": e.event.wave, **e.event.details}
            for e in found
            if e.event.type.value == kind
        ]

    def in_force(self, commit: str) -> str:
        """Once the scheduler runs `commit`: the revision it gives bundle web."""
        for _ in range(300):
            revision = self.server.scheduler.revision
            desired = self.server.scheduler.desired
            if revision is not None and revision.sha == commit and desired is not None:
                return bundle_revisions(desired.units)["web"]
            time.sleep(0.1)
        raise AssertionError(f"commit {commit[:12]} never came in force")

    def canary(self, revision: str, verdict: str) -> None:
        found = BundleRollout("web", revision)
        found.waves["canary"] = WaveRecord("canary", verdict=verdict, message="error rate 9%")
        if verdict == "failed":
            found.outcome, found.failed_wave, found.message = rec.FAILED, "canary", "error rate"
        self.store.save([found])


def wait(check: object, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def bed(
    git_server: GitServer,
    redis_server: RedisServer,
    htpasswd_registry: RegistryServer,
    registry_tls: TlsFiles,
    tmp_path: Path,
    source_cache: Path,
) -> Iterator[tuple[Bed, OciLayout, RegistryServer, str]]:
    host = htpasswd_registry.host
    name = f"promo-serve-{uuid.uuid4().hex[:6]}"
    layout = OciLayout(tmp_path / "oci")
    layout.tag(layout.image(f"web {name}"), "web")
    work = git_server.create_repo(name, tmp_path / "work")
    work.write("fleet.yaml", DEFINITION.format(name=name, host=host))
    work.write("apps/web/fleet.yaml", "name: web\n")
    for wave, path in FILES.items():  # (which cluster gets which does not matter here)
        work.write(
            path,
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: web-{wave}}}\ndata:\n"
            f'  tag: 1.0.0 # {{"$imagepolicy": "web:tag", "$wave": "{wave}"}}\n',
        )
    first = work.commit_and_push("web 1.0.0")
    htpasswd_registry.push_image(layout.root, "web", f"{name}/web:1.0.0")
    user, password = next(iter(htpasswd_registry.users.items()))
    store = RedisRolloutStore(connect_redis(redis_server.url), name)
    server = start_server(
        git_server.url(name),
        branch="main",
        listen="127.0.0.1:0",
        redis_url=redis_server.url,
        env={
            "SSL_CERT_FILE": str(registry_tls.cert),
            "FLEET_REGISTRY_USERNAME_BED": user,
            "FLEET_REGISTRY_PASSWORD_BED": password,
        },
        dispatcher=Recorder(),
        config=SchedulerConfig(poll_interval=0.2),
        tick_interval=0.2,
    )
    try:
        found = Bed(server, work, store)
        found.in_force(first)
        yield found, layout, htpasswd_registry, name
    finally:
        server.stop()


def test_serve_holds_on_a_failed_canary_once_and_goes_on_when_it_passed(
    bed: tuple[Bed, OciLayout, RegistryServer, str],
) -> None:
    found, layout, registry, name = bed
    first = found.head()
    registry.push_image(layout.root, "web", f"{name}/web:1.1.0")
    wait(lambda: found.head() != first, "the canary commit")
    one = found.head()
    assert found.touched(one) == [FILES["canary"]]
    revision = found.in_force(one)

    found.canary(revision, "failed")
    wait(lambda: found.events("image.promotionHeld"), "image.promotionHeld")
    scans = found.server.scheduler.image_scans["ok"]
    wait(lambda: found.server.scheduler.image_scans["ok"] >= scans + 3, "three more passes")
    (held,) = found.events("image.promotionHeld")
    assert (held["policy"], held["tag"], held["wave"]) == ("web", "1.1.0", "prod-eu"), held
    assert "rollout failed at wave canary" in held["message"]
    assert found.head() == one  # held: nothing committed

    found.canary(revision, "passed")
    wait(lambda: found.head() != one, "the prod-eu commit")
    assert found.touched(found.head()) == [FILES["prod-eu"]]
