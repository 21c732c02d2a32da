"""The fleet-wide image scan against the test bed's real registries (distribution 2.8,
htpasswd and token auth): images pushed with skopeo, tags listed once per repository
(counted on the wire by a transport wrapping the real HTTPS one), digests as the registry
answers them, a stopped registry an error for its own policies only."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet.config import Settings
from fleet.images.scan import scan_policies
from fleet.plugin import FleetPlugins
from fleet.registry.access import Registries
from fleet.registry.client import RegistryClient
from fleet.spec.definition import FleetDefinition
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer, running_registry
from tests.support.tls import TlsFiles


class Counting(httpx.BaseTransport):
    """The real HTTPS transport, with every request's method and path written down."""

    def __init__(self, tls: TlsFiles) -> None:
        self.inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=str(tls.cert)))
        self.seen: list[tuple[str, str, str]] = []  # (method, host:port, path)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        where = f"{request.url.host}:{request.url.port}"
        self.seen.append((request.method, where, request.url.path))
        return self.inner.handle_request(request)

    def tag_listings(self, host: str, repository: str) -> int:
        path = f"/v2/{repository}/tags/list"
        return sum(1 for m, h, p in self.seen if (m, h, p) == ("GET", host, path))


def _push(registry: RegistryServer, base: Path) -> str:
    layout = OciLayout(base / f"scan-{registry.auth}")
    one, two = layout.image("one"), layout.image("two")
    layout.tag(one, "one")
    layout.tag(two, "two")
    for tag in ("1.0.0", "1.2.0-rc.1", "2.0.0", "sha256-0123abcd.sig"):
        registry.push_image(layout.root, "one", f"scan/web:{tag}")
    registry.push_image(layout.root, "two", "scan/web:1.1.0")
    return two.digest


def _definition(hosts: dict[str, str], policies: list[dict[str, Any]]) -> FleetDefinition:
    return FleetDefinition.model_validate(
        {
            "apiVersion": "fleet-gitops.io/v1alpha1",
            "kind": "Fleet",
            "name": "scan",
            "registries": [
                {"name": name, "type": "oci", "host": host, "credential": "bed"}
                for name, host in hosts.items()
            ],
            "imagePolicies": policies,
        }
    )


def _registries(
    definition: FleetDefinition, registry: RegistryServer, tls: TlsFiles, transport: Counting
) -> Registries:
    user, password = next(iter(registry.users.items()))
    env = {
        "SSL_CERT_FILE": str(tls.cert),
        "FLEET_REGISTRY_USERNAME_BED": user,
        "FLEET_REGISTRY_PASSWORD_BED": password,
    }
    return Registries(
        definition.registries,
        FleetPlugins.load(entry_points=False),
        settings=Settings(env=env),
        transport=transport,
    )


@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_scan_once_per_repository_and_a_stopped_registry_alone(
    auth: str, request: pytest.FixtureRequest, registry_tls: TlsFiles, tmp_path: Path
) -> None:
    registry: RegistryServer = request.getfixturevalue(f"{auth}_registry")
    digest = _push(registry, tmp_path)
    with running_registry(tmp_path / "gone", registry_tls, "htpasswd") as gone:
        gone_host = gone.host  # started, then stopped below: nothing listens there any more
    image = f"{registry.host}/scan/web"
    definition = _definition(
        {"bed": registry.host, "gone": gone_host},
        [
            {"name": "web", "image": image, "policy": {"semver": {"range": "^1"}}, "digest": True},
            {"name": "web-latest", "image": image, "policy": {"semver": {"range": ">=1"}}},
            {"name": "sigs", "image": image, "policy": {"alphabetical": {}}, "exclusionList": []},
            {"name": "alpha", "image": image, "policy": {"alphabetical": {"order": "asc"}}},
            {"name": "down", "image": f"{gone_host}/scan/web", "policy": {"numerical": {}}},
        ],
    )
    transport = Counting(registry_tls)
    registries = _registries(definition, registry, registry_tls, transport)
    try:
        result = scan_policies(definition, registries)
    finally:
        registries.close()
    assert set(result.choices) == {"web", "web-latest", "sigs", "alpha"}
    web = result.choices["web"]
    assert (web.tag, web.repository, web.digest) == ("1.1.0", image, digest)
    assert result.choices["web-latest"] == result.choices["web-latest"].__class__(
        "web-latest", image, "2.0.0", None
    )
    assert result.choices["sigs"].tag == "sha256-0123abcd.sig"
    assert result.choices["alpha"].tag == "2.0.0"  # the .sig is excluded by default
    # five policies, four on one repository: that repository's tags were listed once
    # (a first anonymous GET answered 401, then the authorised one: at most two requests)
    assert 1 <= transport.tag_listings(registry.host, "scan/web") <= 2
    # the digest is the registry's own answer for the tag
    with RegistryClient(
        registry.host,
        credential=registries.credential(registry.host),
        settings=registries.settings,
    ) as direct:
        assert direct.head_manifest("scan/web", "1.1.0").digest == digest
    assert list(result.errors) == ["down"]
    assert gone_host in result.errors["down"] and "\n" not in result.errors["down"]
    assert next(iter(registry.users.values())) not in result.errors["down"]


def test_second_scan_lists_again_but_once(
    htpasswd_registry: RegistryServer, registry_tls: TlsFiles, tmp_path: Path
) -> None:
    """Each scan lists each repository once: a second scan is a second listing, not more."""
    _push(htpasswd_registry, tmp_path)
    image = f"{htpasswd_registry.host}/scan/web"
    definition = _definition(
        {"bed": htpasswd_registry.host},
        [
            {"name": f"p{i}", "image": image, "policy": {"semver": {"range": "^1"}}}
            for i in range(5)
        ],
    )
    transport = Counting(registry_tls)
    registries = _registries(definition, htpasswd_registry, registry_tls, transport)
    try:
        first = scan_policies(definition, registries)
        before = transport.tag_listings(htpasswd_registry.host, "scan/web")
        second = scan_policies(definition, registries, only={"p0"})
    finally:
        registries.close()
    assert first.ok and second.ok and set(second.choices) == {"p0"}
    assert (
        transport.tag_listings(htpasswd_registry.host, "scan/web") == before + 1
    )  # Basic is sent from the start now


def test_unserved_host_is_never_contacted(
    htpasswd_registry: RegistryServer, registry_tls: TlsFiles
) -> None:
    definition = _definition(
        {"bed": htpasswd_registry.host},
        [{"name": "other", "image": "elsewhere.example:5000/x", "policy": {"numerical": {}}}],
    )
    transport = Counting(registry_tls)
    registries = _registries(definition, htpasswd_registry, registry_tls, transport)
    result = scan_policies(definition, registries)
    assert transport.seen == [] and not result.choices
    assert "not served by any entry" in result.errors["other"]


def test_cli_images_scan(
    htpasswd_registry: RegistryServer, registry_tls: TlsFiles, tmp_path: Path
) -> None:
    digest = _push(htpasswd_registry, tmp_path)
    host = htpasswd_registry.host
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "fleet.yaml").write_text(
        "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: scan\n"
        f"registries: [{{name: bed, type: oci, host: '{host}', credential: bed}}]\n"
        "imagePolicies:\n"
        f"  - {{name: web, image: '{host}/scan/web', policy: {{semver: {{range: '^1'}}}}, "
        "digest: true}\n"
        f"  - {{name: none, image: '{host}/scan/web', policy: {{semver: {{range: '^9'}}}}}}\n"
    )
    user, password = next(iter(htpasswd_registry.users.items()))
    env = {
        **os.environ,
        "SSL_CERT_FILE": str(registry_tls.cert),
        "FLEET_REGISTRY_USERNAME_BED": user,
        "FLEET_REGISTRY_PASSWORD_BED": password,
    }
    done = subprocess.run(
        [sys.executable, "-m", "fleet", "images", "scan", str(tmp_path / "repo"), "-o", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    rows = {row["policy"]: row for row in json.loads(done.stdout)}
    assert (rows["web"]["tag"], rows["web"]["digest"], rows["web"]["error"]) == (
        "1.1.0",
        digest,
        None,
    )
    assert rows["none"]["tag"] is None and "no tag of" in rows["none"]["error"]
    assert password not in done.stdout + done.stderr
    table = subprocess.run(
        [sys.executable, "-m", "fleet", "images", "scan", str(tmp_path / "repo")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert table.returncode == 1 and "POLICY" in table.stdout and "1.1.0" in table.stdout
    # every policy picked a tag: exit 0
    definition = tmp_path / "repo" / "fleet.yaml"
    definition.write_text(definition.read_text().split("  - {name: none")[0])
    good = subprocess.run(
        [sys.executable, "-m", "fleet", "images", "scan", str(tmp_path / "repo")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert "1.1.0" in good.stdout and digest in good.stdout
