"""Credential bindings against the real htpasswd registry and a recording HTTPS server.

A definition from Git names a registry `host` and a `credential`. With the operator's
FLEET_REGISTRY_HOSTS_<NAME> the credential reaches the bound registry, and a commit that
points it at another server (here: one on the same address that records every
`Authorization` header) is refused when it loads and when a client would ask, before
that server sees any request. Without the binding the same commit does send the
password there, which is what the binding closes. A registry on a link-local address is
refused by fleet.net like any request fleet sends.
"""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.credhosts import CredentialRefused
from fleet.desired import fleet_units
from fleet.errors import FleetError
from fleet.plugin import FleetPlugins
from fleet.registry.access import Registries
from fleet.registry.client import RegistryClient
from fleet.spec.definition import RegistrySpec
from fleet.spec.loader import load_repository
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer
from tests.support.tls import TlsFiles, https_server

HEADER = "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: credbind\n"


class Recorder:
    """Answers 401 `Basic` to everything (so a client sends its credential) and keeps
    every request's `Authorization` header (None when there was none)."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.seen.append(self.headers.get("Authorization"))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="x"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.handler = Handler


@pytest.fixture
def recorder(registry_tls: TlsFiles) -> Iterator[tuple[Recorder, str]]:
    found = Recorder()
    with https_server(found.handler, registry_tls) as url:
        yield found, url.removeprefix("https://")


@pytest.fixture
def bed(
    htpasswd_registry: RegistryServer, registry_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> RegistryServer:
    user, password = next(iter(htpasswd_registry.users.items()))
    monkeypatch.setenv("SSL_CERT_FILE", str(registry_tls.cert))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_INTERNAL", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_INTERNAL", password)
    monkeypatch.setenv("FLEET_REGISTRY_HOSTS_INTERNAL", htpasswd_registry.host)
    return htpasswd_registry


def registries(host: str) -> Registries:
    spec = RegistrySpec(name="internal", type="oci", host=host, credential="internal")
    return Registries([spec], FleetPlugins.load(entry_points=False))


def repo_with_registry(root: Path, host: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "fleet.yaml").write_text(
        HEADER + "clusters:\n  - name: a\nregistries:\n"
        f"  - name: internal\n    type: oci\n    host: '{host}'\n    credential: internal\n"
    )
    return root


def test_the_credential_reaches_the_bound_registry(bed: RegistryServer, tmp_path: Path) -> None:
    layout = OciLayout(tmp_path / "layout")
    image = layout.image("bound")
    layout.tag(image, "bound")
    bed.push_image(layout.root, "bound", "credbind/web:1.0")
    found = registries(bed.host)
    try:
        client, reference = found.resolve(f"{bed.host}/credbind/web:1.0")
        assert client.credential is not None  # the registry refuses anonymous reads
        assert client.head_manifest(reference.repository, "1.0").digest == image.digest
    finally:
        found.close()
    repo = load_repository(repo_with_registry(tmp_path / "repo", bed.host))
    fleet_units(repo, FleetPlugins.load(entry_points=False))  # loads: the host is bound


def test_a_commit_pointing_the_credential_elsewhere_is_refused_before_any_request(
    bed: RegistryServer, recorder: tuple[Recorder, str], tmp_path: Path
) -> None:
    server, other = recorder
    password = next(iter(bed.users.values()))
    repo = load_repository(repo_with_registry(tmp_path / "repo", other))
    with pytest.raises(FleetError) as raised:
        fleet_units(repo, FleetPlugins.load(entry_points=False))
    message = str(raised.value)
    assert "fleet.yaml:9: registry 'internal': registry credential 'internal' is not bound" in (
        message
    )
    assert other in message and "FLEET_REGISTRY_HOSTS_INTERNAL" in message
    assert password not in message and "\n" not in message

    found = registries(other)  # what a scan or a render would ask, past the load check
    try:
        with pytest.raises(CredentialRefused):
            found.resolve(f"{other}/credbind/web:1.0")[0].tags("credbind/web")
    finally:
        found.close()
    assert server.seen == []


def test_without_the_binding_the_same_commit_sends_the_password_there(
    bed: RegistryServer,
    recorder: tuple[Recorder, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hole the binding closes (and proof that the recorder would see it)."""
    server, other = recorder
    monkeypatch.delenv("FLEET_REGISTRY_HOSTS_INTERNAL")
    found = registries(other)
    try:
        with pytest.raises(FleetError):
            found.resolve(f"{other}/credbind/web:1.0")[0].tags("credbind/web")
    finally:
        found.close()
    assert server.seen[0] is None and server.seen[1] is not None  # anonymous, then Basic
    assert server.seen[1].startswith("Basic ")


def test_a_registry_on_a_link_local_address_is_refused(
    registry_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(registry_tls.cert))
    attempts: list[str] = []
    client = RegistryClient("169.254.169.254")
    client._http.event_hooks["request"].append(lambda r: attempts.append(str(r.url)))
    with client, pytest.raises(FleetError) as raised:
        client.tags("latest/meta-data")
    assert "link-local address" in str(raised.value) and "FLEET_ALLOWED_HOSTS" in str(raised.value)
    assert attempts == []  # refused by the first hook: no connection was opened


def test_registry_requests_follow_the_allow_list(
    bed: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_ALLOWED_HOSTS", "registry.example.com")
    found = registries(bed.host)
    try:
        with pytest.raises(FleetError, match="is not in FLEET_ALLOWED_HOSTS"):
            found.resolve(f"{bed.host}/credbind/web:1.0")[0].tags("credbind/web")
    finally:
        found.close()


def test_a_gate_credential_goes_only_to_its_bound_host(
    recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet.plugin import GateSpec, GateTarget
    from tests.support.gates import wave_context

    server, other = recorder
    env = {"FLEET_GATE_SMOKE": "token-123", "FLEET_GATE_HOSTS_SMOKE": "smoke.example.com"}
    spec = GateSpec(type="http", name="smoke", url=f"https://{other}/x", credential="smoke")
    gate = FleetPlugins.load(entry_points=False).gate(spec, {})
    assert gate is not None
    answer = gate.check(wave_context(GateTarget("canary"), env=env))
    assert "gate credential 'smoke' is not bound to" in answer.message, answer.message
    assert server.seen == []


def test_an_alertmanager_token_goes_only_to_the_operators_url() -> None:
    """The notifier's secret went as `Authorization: Bearer` to the definition's `url`
    (from Git) when FLEET_NOTIFIER_<CREDENTIAL>_URL was unset; now it is a failed
    delivery and nothing is sent, and with the operator's URL the token arrives."""
    from fleet.events.alerts import group
    from fleet.events.model import Event, EventType, NotifierTarget
    from tests.support.notify_servers import Receiver

    receiver = Receiver()
    receiver.start()
    try:
        event = Event(EventType.UNIT_FAILED, "failed", fleet="f", bundle="web", cluster="a")
        [note] = group([event])
        opts = {"credentialEnv": "FLEET_NOTIFIER_ALERTS"}
        plugins = FleetPlugins.load(entry_points=False)
        from_git = NotifierTarget("alerts", "alertmanager", url=receiver.url, secret="tok-1",
                                  options=opts, backoff=0.01)  # fmt: skip
        delivery = plugins.notify(from_git, note)
        assert delivery is not None and not delivery.ok
        assert "FLEET_NOTIFIER_ALERTS_URL" in delivery.message
        assert "tok-1" not in delivery.message and receiver.requests == []
        operator = NotifierTarget("alerts", "alertmanager", url="https://elsewhere.invalid",
                                  secret="tok-1", api_url=receiver.url, options=opts,
                                  backoff=0.01)  # fmt: skip
        delivery = plugins.notify(operator, note)
        assert delivery is not None and delivery.ok, delivery
        assert [r.headers.get("authorization") for r in receiver.requests] == ["Bearer tok-1"]
    finally:
        receiver.stop()
