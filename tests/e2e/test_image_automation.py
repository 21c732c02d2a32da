"""Image automation end to end, real parts only: the test bed's htpasswd registry
(distribution 2.8, images pushed with skopeo), git over `git daemon`, the three clusters.

A bundle runs `HOST/e2e-X/web:1.0.0 # {"$imagepolicy": "web"}` under a semver policy `^1`;
1.1.0 and 2.0.0 are pushed. `fleet images update` (first test) or `fleet serve` woken by
a distribution push notification on `/hooks/registry` (second test) commits 1.1.0 back to
the Git server with the configured author; `fleet sync` of that commit runs 1.1.0 on every
cluster, and `fleet images` shows it, behind nowhere. The registry password and the
webhook token appear in no output, log, event or /status."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.runtime.scheduler import SchedulerConfig
from fleet.runtime.serve import start_server
from fleet.runtime.tasks import TaskArgs
from tests.conftest import LocalFleet
from tests.e2e.engine_support import apps_api
from tests.e2e.sync_support import fleet_env, suffix
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer
from tests.support.servers import GitServer, GitWorkTree, RedisServer
from tests.support.tls import TlsFiles

__all__ = ["fleet_env"]

TOKEN = "e2e-registry-hook-token"
AUTHOR = "fleet images bot <images@fleet.invalid>"


@dataclass
class Bed:
    sfx: str
    tree: GitWorkTree
    registry: RegistryServer
    layout: OciLayout
    password: str
    fleet: LocalFleet
    digest: str  # of the one image pushed under every tag (the bundle pins digests)

    @property
    def image(self) -> str:
        return f"{self.registry.host}/e2e-{self.sfx}/web"

    def push(self, tag: str) -> None:
        self.registry.push_image(self.layout.root, "web", f"e2e-{self.sfx}/web:{tag}")

    def running(self) -> set[str]:
        images: set[str] = set()
        for cluster in self.fleet.clusters:
            found = apps_api(self.fleet, cluster).read_namespaced_deployment(
                "web", f"images-{self.sfx}"
            )
            pod = found.spec.template.spec
            assert pod is not None
            images.add(str(pod.containers[0].image))
        return images

    def remote_head(self) -> tuple[str, str]:
        """(author, deploy.yaml) of main's head on the Git server."""
        git = ["git", "-C", str(self.tree.path)]
        subprocess.run([*git, "fetch", "-q", "origin"], check=True, timeout=60)
        log = [*git, "log", "-1", "--format=%an <%ae>", "origin/main"]
        author = subprocess.run(log, check=True, capture_output=True, text=True).stdout.strip()
        show = [*git, "show", "origin/main:web/deploy.yaml"]
        return author, subprocess.run(show, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def bed(
    git_server: GitServer,
    local_fleet: LocalFleet,
    htpasswd_registry: RegistryServer,
    registry_tls: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Bed:
    sfx = suffix()
    layout = OciLayout(tmp_path / "layout")
    descriptor = layout.image(f"web {sfx}")
    layout.tag(descriptor, "web")
    user, password = next(iter(htpasswd_registry.users.items()))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    registry_tls.trust(monkeypatch)
    tree = git_server.create_repo(f"images-{sfx}", tmp_path / "repo")
    bed = Bed(sfx, tree, htpasswd_registry, layout, password, local_fleet, descriptor.digest)
    clusters = "".join(f"  - name: {name}\n" for name in local_fleet.clusters)
    tree.write(
        "fleet.yaml",
        f"apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: images-{sfx}\n"
        f"clusters:\n{clusters}bundles: {{paths: [web]}}\n"
        f"registries:\n  - {{name: bed, type: oci, host: '{htpasswd_registry.host}', "
        "credential: bed}\n"
        f"imagePolicies:\n  - {{name: web, image: '{bed.image}', "
        "policy: {semver: {range: '^1'}}}\n"
        "imageUpdates:\n  interval: 1h\n  branch: main\n"
        "  author: {name: fleet images bot, email: images@fleet.invalid}\n  paths: [web]\n",
    )
    tree.write(
        "web/fleet.yaml",
        f"name: web-{sfx}\ndefaultNamespace: images-{sfx}\nimages: {{pinDigests: true}}\n",
    )
    tree.write(
        "web/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n"
        "  selector: {matchLabels: {app: web}}\n  template:\n"
        "    metadata: {labels: {app: web}}\n    spec:\n      containers:\n"
        f'        - name: web\n          image: {bed.image}:1.0.0 # {{"$imagepolicy": "web"}}\n',
    )
    tree.commit_and_push("web 1.0.0")
    bed.push("1.0.0")
    return bed


def run(args: list[str], capsys: pytest.CaptureFixture[str], bed: Bed) -> tuple[int, str]:
    code = main(args)
    out, err = capsys.readouterr()
    assert bed.password not in out + err and TOKEN not in out + err
    return code, out + err


def sync_and_show(bed: Bed, capsys: pytest.CaptureFixture[str]) -> None:
    """`fleet sync` of the new commit, then `fleet images -o json` of it."""
    # the test bed runs no Deployment controller: applied, not Ready (--no-wait)
    _, out = run(["sync", bed.tree.remote_url, "--no-wait"], capsys, bed)
    assert "ErrApplied" not in out, out
    assert bed.running() == {f"{bed.image}:1.1.0@{bed.digest}"}
    code, out = run(["images", "show", bed.tree.remote_url, "-o", "json"], capsys, bed)
    assert code == 0, out
    (web,) = json.loads(out)["policies"]
    assert web["newest"]["tag"] == "1.1.0"
    rows = web["clusters"]
    assert {r["cluster"] for r in rows} == set(bed.fleet.clusters)
    assert all(r["tag"] == "1.1.0" and not r["behind"] for r in rows), rows
    assert {r["digest"] for r in rows} == {bed.digest}  # from the pin


@pytest.mark.usefixtures("fleet_env")
def test_images_update_commits_and_sync_rolls_it_out(
    bed: Bed, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = run(["sync", bed.tree.remote_url, "--no-wait"], capsys, bed)
    assert bed.running() == {f"{bed.image}:1.0.0@{bed.digest}"}
    code, out = run(["images", "show", bed.tree.remote_url], capsys, bed)
    assert code == 0 and "1.0.0" in out and "behind" not in out, out
    bed.push("1.1.0")
    bed.push("2.0.0")
    code, out = run(["images", "show", bed.tree.remote_url], capsys, bed)
    assert code == 0 and out.count("behind") == len(bed.fleet.clusters), out
    before = bed.remote_head()
    code, out = run(["images", "update", str(bed.tree.path), "--dry-run"], capsys, bed)
    assert code == 0 and f"-> {bed.image}:1.1.0" in out and "nothing committed" in out, out
    assert bed.remote_head() == before
    code, out = run(["images", "update", str(bed.tree.path)], capsys, bed)
    assert code == 0 and "committed " in out, out
    author, text = bed.remote_head()
    assert author == AUTHOR and f"image: {bed.image}:1.1.0 # " in text, text
    sync_and_show(bed, capsys)


class Recorder:
    def send(self, task: str, kwargs: TaskArgs, queue: str) -> str:
        return "task"


@pytest.mark.usefixtures("fleet_env")
def test_a_registry_push_notification_to_serve_commits_the_new_tag(
    bed: Bed,
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = start_server(
        bed.tree.remote_url,
        branch="main",
        listen="127.0.0.1:0",
        redis_url=redis_server.url,
        env={**os.environ, "FLEET_REGISTRY_WEBHOOK_TOKEN": TOKEN},
        dispatcher=Recorder(),
        config=SchedulerConfig(poll_interval=0.5),
        tick_interval=0.5,
    )
    try:
        for _ in range(100):
            if server.scheduler.desired is not None:
                break
            time.sleep(0.1)
        bed.push("1.1.0")
        bed.push("2.0.0")
        host = bed.registry.host
        envelope = {
            "events": [
                {
                    "action": "push",
                    "target": {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": "sha256:" + "1" * 64,
                        "repository": f"e2e-{bed.sfx}/web",
                        "tag": "1.1.0",
                    },
                    "request": {"host": host, "method": "PUT"},
                }
            ]
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/hooks/registry",
            data=json.dumps(envelope).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Content-Type": "application/vnd.docker.distribution.events.v1+json",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202
            assert json.loads(answer.read())["policies"] == ["web"]
        for _ in range(150):
            author, text = bed.remote_head()
            if "1.1.0" in text:
                break
            time.sleep(0.2)
        assert author == AUTHOR and f"image: {bed.image}:1.1.0 # " in text, text
        stream: list[str] = []
        for _ in range(100):  # the image.updated event, written by the leader's next tick
            events = server.scheduler.events
            if events is not None:
                stream = [json.dumps(e.event.to_json()) for e in events.log.read()]
            if any('"image.updated"' in line for line in stream):
                break
            time.sleep(0.1)
        assert any('"image.updated"' in line for line in stream), stream
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/status", timeout=10) as s:
            status = s.read().decode()
    finally:
        server.stop()
    shown = status + caplog.text + "\n".join(stream)
    assert bed.password not in shown and TOKEN not in shown
    sync_and_show(bed, capsys)


@pytest.mark.usefixtures("fleet_env")
def test_fleet_images_reads_an_unpinned_images_digest_from_its_running_pod(
    bed: Bed, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without digest pinning the digest a cluster runs is what its Pod reports: the
    kubelet's `imageID` (set here through the Pod's status subresource, as a kubelet
    does; kwok's fake node reports none). One cluster's Pod says it, the others show no
    digest rather than a guessed one."""
    from kubernetes import client, config

    bed.tree.write("web/fleet.yaml", f"name: web-{bed.sfx}\ndefaultNamespace: images-{bed.sfx}\n")
    bed.tree.commit_and_push("no pinning")
    code, out = run(["sync", bed.tree.remote_url, "--no-wait"], capsys, bed)
    assert "ErrApplied" not in out, out
    assert bed.running() == {f"{bed.image}:1.0.0"}
    namespace, chosen = f"images-{bed.sfx}", "prod-eu"
    api = client.CoreV1Api(
        config.new_client_from_config(config_file=str(bed.fleet.clusters[chosen].kubeconfig))
    )
    pod = None
    for _ in range(300):  # the controller-manager makes the Pod, kwok runs it
        pods = api.list_namespaced_pod(namespace).items
        if pods and pods[0].status.container_statuses:
            pod = pods[0]
            break
        time.sleep(0.2)
    assert pod is not None, "no running Pod of web in prod-eu"
    statuses = [
        {"name": s.name, "image": s.image, "imageID": f"{bed.image}@{bed.digest}",
         "ready": True, "restartCount": 0, "state": {"running": {}}}
        for s in pod.status.container_statuses
    ]  # fmt: skip
    api.patch_namespaced_pod_status(
        pod.metadata.name, namespace, {"status": {"containerStatuses": statuses}}
    )
    code, out = run(["images", "show", bed.tree.remote_url, "-o", "json"], capsys, bed)
    assert code == 0, out
    (web,) = json.loads(out)["policies"]
    digests = {r["cluster"]: r["digest"] for r in web["clusters"]}
    assert digests[chosen] == bed.digest, digests
    assert all(digests[c] in (None, "-", "") for c in digests if c != chosen), digests
