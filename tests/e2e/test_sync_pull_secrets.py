"""`fleet sync` with `images.pullSecrets`: a dockerconfigjson Secret made from the test
bed registry's credential (given to fleet in the environment, as workers get it) in the
bundle's namespace on every cluster, listed in the Deployment's `imagePullSecrets`; the
credential in no output, `--events` line, Kubernetes Event, inventory or history object;
a second sync writes nothing to it, a new credential updates it, and a bundle that no
longer asks prunes it."""

from __future__ import annotations

import base64
import gzip
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from fleet.cli import main
from tests.conftest import LocalFleet
from tests.e2e.engine_support import apps_api, core_api
from tests.e2e.sync_support import fleet_env, suffix
from tests.support.registry import RegistryServer
from tests.support.servers import GitServer

__all__ = ["fleet_env"]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "IMAGE"}]
"""


def _texts(obj: Any) -> list[str]:
    """An API object as text, with every data value also base64-decoded (and gunzipped)."""
    found = [json.dumps(obj, default=str)]
    for value in ((obj.get("data") or {}) | (obj.get("binaryData") or {})).values():
        try:
            raw = base64.b64decode(value)
        except ValueError:
            continue
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        found.append(raw.decode(errors="replace"))
    return found


@pytest.mark.usefixtures("fleet_env")
def test_sync_makes_a_pull_secret_and_never_shows_its_credential(
    git_server: GitServer,
    local_fleet: LocalFleet,
    htpasswd_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = htpasswd_registry
    sfx = suffix()
    user, password = next(iter(registry.users.items()))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    fleet_name, bundle, ns = f"pull-{sfx}", f"web-{sfx}", f"pull-{sfx}"
    tree = git_server.create_repo(f"pull-{sfx}", tmp_path / "repo")
    clusters = "".join(f"  - name: {name}\n" for name in local_fleet.clusters)
    tree.write(
        "fleet.yaml",
        f"apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: {fleet_name}\n"
        f"clusters:\n{clusters}bundles: {{paths: [web]}}\n"
        f"registries:\n  - {{name: bed, type: oci, host: '{registry.host}', credential: bed}}\n",
    )
    tree.write(
        "web/fleet.yaml",
        f"name: {bundle}\ndefaultNamespace: {ns}\nimages: {{pullSecrets: [{{registry: bed}}]}}\n",
    )
    tree.write("web/deploy.yaml", DEPLOYMENT.replace("IMAGE", f"{registry.host}/e2e/web:1.0"))
    tree.commit_and_push("a Deployment pulling from a private registry")
    events = tmp_path / "events.jsonl"

    def sync() -> str:
        main(["sync", tree.remote_url, "--no-wait", "--events", str(events)])
        out, err = capsys.readouterr()
        assert "ErrApplied" not in out + err, out + err
        return out + err

    def rolled_out() -> None:
        """The Deployment's status as its controller (the test bed runs none) would write
        it once the Pods run: later syncs find the unit Ready."""
        for cluster in local_fleet.clusters:
            apps = apps_api(local_fleet, cluster)
            generation = apps.read_namespaced_deployment("web", ns).metadata.generation
            status = {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
                      "readyReplicas": 1, "availableReplicas": 1,
                      "conditions": [{"type": "Available", "status": "True"},
                                     {"type": "Progressing", "status": "True",
                                      "reason": "NewReplicaSetAvailable"}]}  # fmt: skip
            apps.patch_namespaced_deployment_status("web", ns, {"status": status})

    def secrets_live() -> list[dict[str, Any]]:
        found = []
        for cluster in local_fleet.clusters:
            api = core_api(local_fleet, cluster)
            secret = api.read_namespaced_secret("fleet-pull-bed", ns)
            found.append(api.api_client.sanitize_for_serialization(secret))
        return found

    def auth_of(secret: dict[str, Any]) -> bytes:
        assert secret["type"] == "kubernetes.io/dockerconfigjson"
        config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
        return base64.b64decode(config["auths"][registry.host]["auth"])

    def nowhere(credential: str, output: str) -> None:
        token = base64.b64encode(f"{user}:{credential}".encode()).decode()
        texts = [output, events.read_text()]
        capsys.readouterr()
        main(["status", tree.remote_url])
        texts.append("".join(capsys.readouterr()))
        for cluster in local_fleet.clusters:
            api = core_api(local_fleet, cluster)
            sanitize = api.api_client.sanitize_for_serialization
            listed = api.list_namespaced_event("fleet-system")
            texts += [json.dumps(sanitize(e), default=str) for e in listed.items]
            selector = f"fleet-gitops.io/fleet={fleet_name}"
            for found in (
                api.list_namespaced_config_map("fleet-system", label_selector=selector).items
                + api.list_namespaced_secret("fleet-system", label_selector=selector).items
            ):
                texts += _texts(sanitize(found))
        for text in texts:
            assert credential not in text and token not in text

    first = sync()
    live = secrets_live()
    assert {auth_of(s) for s in live} == {f"{user}:{password}".encode()}
    for cluster in local_fleet.clusters:
        deployment = apps_api(local_fleet, cluster).read_namespaced_deployment("web", ns)
        assert [p.name for p in deployment.spec.template.spec.image_pull_secrets] == [
            "fleet-pull-bed"
        ]
    nowhere(password, first)
    rolled_out()

    # the same again: the Secret is not written (its metadata said it holds this credential)
    sync()
    assert [s["metadata"]["resourceVersion"] for s in secrets_live()] == [
        s["metadata"]["resourceVersion"] for s in live
    ]

    # a new credential in the environment: the Secrets hold it after the next sync
    rotated = f"rotated-{secrets.token_hex(8)}"
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", rotated)
    later = sync()
    assert {auth_of(s) for s in secrets_live()} == {f"{user}:{rotated}".encode()}
    nowhere(rotated, later)

    # the bundle stops asking: its pull Secrets are pruned with the rest of what left it
    tree.write("web/fleet.yaml", f"name: {bundle}\ndefaultNamespace: {ns}\n")
    tree.commit_and_push("no pull secret")
    sync()
    for cluster in local_fleet.clusters:
        names = [
            s.metadata.name for s in core_api(local_fleet, cluster).list_namespaced_secret(ns).items
        ]
        assert "fleet-pull-bed" not in names
