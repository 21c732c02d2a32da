"""Pull secrets (`images.pullSecrets`): the option, the Docker config made from the
runtime's credential, the Secret body and its salted hash, and the post-render transform
that lists the Secret's name (and only its name) in every pod spec."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fleet.desired import DOCKER_HUB_AUTH, check_pull_secrets, pull_secrets_of
from fleet.engine.identity import Owner
from fleet.engine.labels import ANN_HASH, ANN_PULL_SALT
from fleet.engine.pull_secrets import DATA_KEY, SECRET_TYPE, PullSecret, salted_hash, secret_body
from fleet.errors import FleetError, UserError
from fleet.render.images import attach_pull_secrets
from fleet.spec.bundle_options import BundleOptions, ImageOptions
from fleet.spec.definition import RegistrySpec
from fleet.spec.loader import load_repository

ENV = {"FLEET_REGISTRY_USERNAME_BED": "robot", "FLEET_REGISTRY_PASSWORD_BED": "s3cret-pw"}
SPECS = [
    RegistrySpec(name="bed", type="oci", host="registry.example:5000", credential="bed"),
    RegistrySpec(name="hub", type="dockerhub", credential="bed"),
]


def options(*entries: dict[str, Any]) -> BundleOptions:
    return BundleOptions.model_validate({"images": {"pullSecrets": list(entries)}})


def test_the_docker_config_holds_the_credential_for_the_registry_host() -> None:
    [secret] = pull_secrets_of(options({"registry": "bed"}), SPECS, ENV)
    assert secret.name == "fleet-pull-bed"
    auths = json.loads(secret.config)["auths"]
    assert list(auths) == ["registry.example:5000"]
    assert base64.b64decode(auths["registry.example:5000"]["auth"]) == b"robot:s3cret-pw"
    assert "s3cret-pw" not in repr(secret)


def test_docker_hub_credentials_go_under_docker_hubs_key() -> None:
    [secret] = pull_secrets_of(options({"registry": "hub", "name": "hub-pull"}), SPECS, ENV)
    assert secret.name == "hub-pull"
    assert list(json.loads(secret.config)["auths"]) == [DOCKER_HUB_AUTH]


def test_an_unset_credential_names_the_variables() -> None:
    with pytest.raises(UserError, match="FLEET_REGISTRY_PASSWORD_BED"):
        pull_secrets_of(options({"registry": "bed"}), SPECS, {})


def test_no_pull_secrets_asked_is_none_made() -> None:
    assert pull_secrets_of(BundleOptions(), SPECS, ENV) == []


def test_a_bad_secret_name_or_one_given_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a valid Secret name"):
        ImageOptions.model_validate({"pullSecrets": [{"registry": "bed", "name": "Bad_Name"}]})
    with pytest.raises(ValidationError, match="given twice"):
        ImageOptions.model_validate(
            {"pullSecrets": [{"registry": "bed"}, {"registry": "x", "name": "fleet-pull-bed"}]}
        )


def test_the_secret_body_is_a_dockerconfigjson_secret_with_a_salted_hash() -> None:
    secret = PullSecret("fleet-pull-bed", b'{"auths": {}}')
    owner = Owner("web", "fleet-a")
    digest = salted_hash(secret, "salt-1")
    body = secret_body(secret, "apps", owner, "salt-1", digest)
    assert body["type"] == SECRET_TYPE == "kubernetes.io/dockerconfigjson"
    assert base64.b64decode(body["data"][DATA_KEY]) == secret.config
    meta = body["metadata"]
    assert (meta["name"], meta["namespace"]) == ("fleet-pull-bed", "apps")
    assert owner.labels().items() <= meta["labels"].items()
    assert (
        meta["annotations"][ANN_HASH] == digest and meta["annotations"][ANN_PULL_SALT] == "salt-1"
    )


def test_the_hash_changes_with_the_credential_and_the_salt() -> None:
    one, other = PullSecret("s", b"config one"), PullSecret("s", b"config two")
    assert salted_hash(one, "a") == salted_hash(one, "a")
    assert salted_hash(one, "a") != salted_hash(other, "a")
    assert salted_hash(one, "a") != salted_hash(one, "b")


def _deployment(pull: list[dict[str, str]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "web", "image": "web:1"}]}
    if pull is not None:
        spec["imagePullSecrets"] = pull
    return {"kind": "Deployment", "spec": {"template": {"spec": spec}}}


def test_attach_lists_the_names_in_every_pod_spec_once() -> None:
    cronjob: dict[str, Any] = {
        "kind": "CronJob",
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
    }
    configmap: dict[str, Any] = {"kind": "ConfigMap", "data": {"a": "b"}}
    kept = _deployment([{"name": "theirs"}, {"name": "fleet-pull-bed"}])
    manifests = [_deployment(), cronjob, configmap, kept]
    assert attach_pull_secrets(manifests, ["fleet-pull-bed"]) == 2
    assert manifests[0]["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "fleet-pull-bed"}
    ]
    cron_spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert cron_spec["imagePullSecrets"] == [{"name": "fleet-pull-bed"}]
    assert configmap == {"kind": "ConfigMap", "data": {"a": "b"}}
    assert kept["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "theirs"},
        {"name": "fleet-pull-bed"},
    ]
    assert attach_pull_secrets(manifests, ["fleet-pull-bed"]) == 0  # idempotent


def test_a_registry_unknown_or_without_credential_is_refused_at_the_bundle(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "fleet.yaml").write_text(
        "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: t\nclusters:\n  - name: a\n"
        "bundles: {paths: [web]}\nregistries:\n  - {name: bed, type: oci, host: r.example}\n"
    )
    (tmp_path / "web" / "fleet.yaml").write_text(
        "name: web\nimages: {pullSecrets: [{registry: bed}, {registry: nope}]}\n"
    )
    (tmp_path / "web" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    )
    with pytest.raises(FleetError) as raised:
        check_pull_secrets(load_repository(tmp_path))
    problems = [str(p) for p in raised.value.problems]
    assert len(problems) == 2
    assert "registry 'bed' has no credential" in problems[0]
    assert "registry 'nope' is not in the definition's registries" in problems[1]
    assert all("web/fleet.yaml" in p for p in problems)
