"""A new image tag promoted wave by wave by `fleet serve`, real parts only: the test bed's
htpasswd registry (tags pushed with skopeo), git over `git daemon`, Redis, `fleet serve`
and one `fleet worker` per region, the three test clusters.

Waves: `canary` (dev-eu, behind an `approval` gate, so the test decides when it passes:
nothing here depends on how fast anything is), `prod-eu` (prod-eu, a 1s bake), then the
rest (prod-us). The bundle `web` holds a marker per wave in the overlay of that wave's
targetCustomization and one without `$wave` in its base Deployment. When 1.1.0 is pushed,
serve's first commit touches the canary overlay only: dev-eu runs 1.1.0 while prod-eu and
prod-us still run 1.0.0, and no second commit comes while canary waits for its approval.
Once approved, the next commit touches prod-eu's overlay only, and after that wave passed
the base: in the end every cluster runs 1.1.0."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from fleet.cli import main
from fleet.runtime.rollout_store import RedisRolloutStore
from fleet.runtime.state_cache import connect_redis
from tests.conftest import LocalFleet
from tests.e2e.dist_support import Distributed, distributed, wait_until
from tests.e2e.engine_support import apps_api
from tests.e2e.three_region_support import definition, redis_db, start_three_regions
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer
from tests.support.servers import GitServer, GitWorkTree, RedisServer, run_git
from tests.support.tls import TlsFiles

REDIS_DB = 9  # this module's own database
FILES = {
    "canary": "apps/web/overlays/canary/deploy_patch.yaml",
    "prod-eu": "apps/web/overlays/prod-eu/deploy_patch.yaml",
    "rest": "apps/web/deploy.yaml",
}
WAVE_OF = {"dev-eu": "canary", "prod-eu": "prod-eu", "prod-us": "rest"}


@dataclass
class Bed:
    sfx: str
    tree: GitWorkTree
    registry: RegistryServer
    layout: OciLayout
    fleet: LocalFleet
    redis: str
    dist: Distributed | None = None

    @property
    def image(self) -> str:
        return f"{self.registry.host}/wave-{self.sfx}/web"

    @property
    def ns(self) -> str:
        return f"wave-{self.sfx}"

    @property
    def store(self) -> RedisRolloutStore:
        return RedisRolloutStore(connect_redis(self.redis), f"wave-{self.sfx}")

    def push(self, tag: str) -> None:
        self.registry.push_image(self.layout.root, "web", f"wave-{self.sfx}/web:{tag}")

    def running(self) -> dict[str, str | None]:
        """cluster -> the tag its Deployment `web` runs (None: not there yet)."""
        out: dict[str, str | None] = {}
        for cluster in WAVE_OF:
            try:
                found = apps_api(self.fleet, cluster).read_namespaced_deployment("web", self.ns)
            except ApiException:  # not created yet
                out[cluster] = None
                continue
            pod = found.spec.template.spec
            image = str(pod.containers[0].image) if pod is not None else ""
            out[cluster] = image.rsplit(":", 1)[1] if image.startswith(self.image) else None
        return out

    def head(self) -> str:
        run_git("fetch", "--quiet", "origin", cwd=self.tree.path)
        return run_git("rev-parse", "origin/main", cwd=self.tree.path).strip()

    def touched(self, commit: str) -> list[str]:
        out = run_git("show", "--name-only", "--format=", commit, cwd=self.tree.path)
        return sorted(line for line in out.splitlines() if line)

    def markers(self) -> dict[str, str]:
        """group -> the tag main's head gives its marker."""
        self.head()
        out = {}
        for group, path in FILES.items():
            text = run_git("show", f"origin/main:{path}", cwd=self.tree.path)
            line = next(x for x in text.splitlines() if "$imagepolicy" in x)
            out[group] = line.split(f"{self.image}:", 1)[1].split()[0]
        return out

    def approve_canary(self, capsys: pytest.CaptureFixture[str]) -> bool:
        """Approve canary for the revision whose canary waits on its approval (True: done)."""
        found = self.store.records().get("web")
        wave = found.waves.get("canary") if found is not None else None
        if found is None or wave is None or wave.ready_at is None or wave.verdict != "pending":
            return False
        control = self.store.controls().get("web")
        if control is not None and control.approves(found.revision, "canary"):
            return False
        args = ["rollout", "approve", "web", "--wave", "canary", "--repo", str(self.tree.path)]
        code = main([*args, "--redis", self.redis])
        out, err = capsys.readouterr()
        assert code in (0, None), out + err
        return True


def marker(image: str, wave: str | None) -> str:
    extra = f', "$wave": "{wave}"' if wave else ""
    return f'{image}:1.0.0 # {{"$imagepolicy": "web"{extra}}}'


def deployment(ns: str, image_marker: str, full: bool) -> str:
    head = f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\n"
    if not full:  # an overlay: a strategic merge patch of the container's image
        return head + (
            "spec:\n  template:\n    spec:\n      containers:\n        - name: web\n"
            f"          image: {image_marker}\n"
        )
    return head + (
        "spec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n"
        "    metadata: {labels: {app: web}}\n    spec:\n      containers:\n"
        f"        - name: web\n          image: {image_marker}\n"
    )


@pytest.fixture
def bed(
    git_server: GitServer,
    local_fleet: LocalFleet,
    htpasswd_registry: RegistryServer,
    registry_tls: TlsFiles,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Bed]:
    sfx = uuid.uuid4().hex[:6]
    layout = OciLayout(tmp_path / "layout")
    layout.tag(layout.image(f"web {sfx}"), "web")
    user, password = next(iter(htpasswd_registry.users.items()))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLEET_CREDENTIALS_DIR", str(local_fleet.dir))  # `fleet images show`
    registry_tls.trust(monkeypatch)
    url = redis_db(redis_server, REDIS_DB)
    connect_redis(url).flushdb()
    tree = git_server.create_repo(f"wave-{sfx}", tmp_path / "repo")
    bed = Bed(sfx, tree, htpasswd_registry, layout, local_fleet, url)
    extra = (
        "rollout:\n  waves:\n"
        "    - {name: canary, clusters: [dev-eu], gates: [{name: ok, type: approval}]}\n"
        "    - {name: prod-eu, clusters: [prod-eu], bake: 1s}\n"
        f"registries:\n  - {{name: bed, type: oci, host: '{htpasswd_registry.host}', "
        "credential: bed}\n"
        f"imagePolicies:\n  - name: web\n    image: '{bed.image}'\n"
        "    policy: {semver: {range: '^1'}}\n    promotion: waves\n"
        "imageUpdates:\n  interval: 2s\n  branch: main\n"
        "  author: {name: fleet images bot, email: images@fleet.invalid}\n  paths: [apps]\n"
    )
    tree.write("fleet.yaml", definition(f"wave-{sfx}", extra))
    tree.write(
        "apps/web/fleet.yaml",
        f"name: web\ndefaultNamespace: {bed.ns}\ntargetCustomizations:\n"
        "  - {name: canary, clusterName: dev-eu, yaml: {overlays: [canary]}}\n"
        "  - {name: prod-eu, clusterName: prod-eu, yaml: {overlays: [prod-eu]}}\n",
    )
    tree.write(FILES["rest"], deployment(bed.ns, marker(bed.image, None), True))
    for wave in ("canary", "prod-eu"):
        tree.write(FILES[wave], deployment(bed.ns, marker(bed.image, wave), False))
    bed.push("1.0.0")
    with distributed(tree.remote_url, tmp_path / "logs", url, local_fleet.dir) as dist:
        bed.dist = dist
        yield bed


def test_serve_commits_a_new_tag_one_wave_at_a_time(
    bed: Bed, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = bed.dist
    assert dist is not None
    first = bed.tree.commit_and_push("web 1.0.0")
    start_three_regions(dist, "--poll-interval", "1")
    # the first rollout waits for canary's approval too
    wait_until(lambda: bed.approve_canary(capsys), 240, "canary waiting for approval", dist)
    dist.wait_converged(first, timeout=240)
    assert bed.running() == {c: "1.0.0" for c in WAVE_OF}
    assert bed.head() == first  # 1.0.0 is what every marker says: nothing to commit

    bed.push("1.1.0")
    wait_until(lambda: bed.head() != first, 240, "serve's first image commit", dist)
    one = bed.head()
    assert bed.touched(one) == [FILES["canary"]]
    message = run_git("log", "-1", "--format=%B", one, cwd=bed.tree.path)
    assert "web 1.1.0 -> wave canary (bundle web)" in message
    wait_until(lambda: bed.running()["dev-eu"] == "1.1.0", 240, "dev-eu on 1.1.0", dist)
    # canary waits for its approval: prod runs 1.0.0, and no second commit is made
    wait_until(lambda: _canary_ready(bed), 240, "canary Ready, waiting for approval", dist)
    assert bed.running() == {"dev-eu": "1.1.0", "prod-eu": "1.0.0", "prod-us": "1.0.0"}
    assert bed.head() == one and bed.markers()["prod-eu"] == "1.0.0"
    code = main(["images", "show", bed.tree.remote_url, "--redis", bed.redis])
    out = "".join(capsys.readouterr())
    assert code in (0, None), out
    assert "promotion: web 1.1.0 in bundle web: waiting before wave prod-eu: wave canary" in out
    assert out.count("behind") == 2, out  # prod-eu and prod-us

    assert bed.approve_canary(capsys)
    wait_until(lambda: bed.head() != one, 240, "the prod-eu commit", dist)
    two = bed.head()
    assert bed.touched(two) == [FILES["prod-eu"]]
    assert bed.markers() == {"canary": "1.1.0", "prod-eu": "1.1.0", "rest": "1.0.0"}

    def every_cluster_on_the_new_tag() -> bool:
        bed.approve_canary(capsys)  # each new revision's canary waits for it again
        return bed.running() == {c: "1.1.0" for c in WAVE_OF}

    wait_until(every_cluster_on_the_new_tag, 400, "every cluster on 1.1.0", dist)
    three = bed.head()
    assert bed.touched(three) == [FILES["rest"]]
    assert run_git("rev-list", "--count", f"{first}..{three}", cwd=bed.tree.path).strip() == "3"


def _canary_ready(bed: Bed) -> bool:
    """Canary's wave of main's revision is Ready and waits on its approval gate."""
    found = bed.store.records().get("web")
    wave = found.waves.get("canary") if found is not None else None
    if found is None or wave is None or wave.ready_at is None:
        return False
    return found.commit == bed.head() and wave.verdict == "pending"
