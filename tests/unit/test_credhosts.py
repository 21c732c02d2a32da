"""The operator's credential bindings (`FLEET_<KIND>_HOSTS_<NAME>`, fleet.credhosts) and
their check when a commit loads (fleet.spec.credential_hosts)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fleet import credhosts
from fleet.credhosts import GATE, METRICS, REGISTRY, CredentialRefused
from fleet.errors import FleetError, UserError
from fleet.registry.credentials import credential_from_env
from fleet.spec.credential_hosts import check_credential_hosts
from fleet.spec.loader import load_repository

SECRET = "s3cret-pass"
ENV = {
    "FLEET_REGISTRY_USERNAME_INTERNAL": "deployer",
    "FLEET_REGISTRY_PASSWORD_INTERNAL": SECRET,
    "FLEET_REGISTRY_HOSTS_INTERNAL": "registry.internal:5000, *.mirror.internal, 10.1.0.0/16",
}


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("registry.internal", 5000, True),
        ("REGISTRY.internal.", 5000, True),  # case and a trailing dot are one name
        ("registry.internal", 443, False),  # the entry names its port
        ("eu.mirror.internal", 443, True),  # a glob, any port
        ("mirror.internal.evil.com", 443, False),
        ("10.1.2.3", 443, True),  # an address in a network entry
        ("10.2.0.1", 443, False),
        ("evil.example.com", 5000, False),
    ],
)
def test_a_bound_credential_goes_only_to_the_listed_hosts(
    host: str, port: int, allowed: bool
) -> None:
    reason = credhosts.refusal(REGISTRY, "internal", host, port, ENV)
    assert (reason is None) is allowed
    if reason is not None:
        assert reason.startswith("registry credential 'internal' is not bound to ")
        assert host in reason and "FLEET_REGISTRY_HOSTS_INTERNAL" in reason
        assert SECRET not in reason and "\n" not in reason


def test_a_name_is_matched_as_a_name_never_by_what_it_resolves_to() -> None:
    # 'localhost' resolves into no listed network, and the check never resolves at all
    env = {"FLEET_REGISTRY_HOSTS_X": "127.0.0.0/8"}
    assert credhosts.refusal(REGISTRY, "x", "localhost", 443, env) is not None
    assert credhosts.refusal(REGISTRY, "x", "127.0.0.1", 443, env) is None


def test_credential_from_env_refuses_another_host_before_reading_the_secret() -> None:
    assert credential_from_env("internal", ENV, host="registry.internal:5000").password == SECRET
    with pytest.raises(CredentialRefused) as refused:
        credential_from_env("internal", ENV, host="evil.example.com")
    assert "evil.example.com:443" in str(refused.value) and SECRET not in str(refused.value)


def test_unbound_keeps_working_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    env = {k: v for k, v in ENV.items() if "HOSTS" not in k}
    env |= {"FLEET_REGISTRY_USERNAME_UNBOUND_ONE": "u", "FLEET_REGISTRY_PASSWORD_UNBOUND_ONE": "p"}
    credhosts._warned.discard(("FLEET_REGISTRY_", "UNBOUND_ONE"))
    with caplog.at_level(logging.WARNING, logger="fleet.credhosts"):
        for _ in range(3):
            assert credhosts.refusal(REGISTRY, "unbound-one", "anywhere.example", 443, env) is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "FLEET_REGISTRY_HOSTS_UNBOUND_ONE" in warnings[0]


def test_a_credential_whose_secret_is_not_set_is_not_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing to leak, nothing to say (`fleet validate` of a repository on a laptop)."""
    credhosts._warned.discard(("FLEET_METRICS_", "ABSENT"))
    with caplog.at_level(logging.WARNING, logger="fleet.credhosts"):
        assert credhosts.refusal(METRICS, "absent", "prom.example", 443, {}) is None
    assert not caplog.records
    credhosts._warned.discard(("FLEET_METRICS_", "ABSENT"))
    with caplog.at_level(logging.WARNING, logger="fleet.credhosts"):
        assert (
            credhosts.refusal(METRICS, "absent", "prom.example", 443, {"FLEET_METRICS_ABSENT": "t"})
            is None
        )
    assert len(caplog.records) == 1


def test_a_malformed_binding_names_the_variable_and_entry() -> None:
    with pytest.raises(UserError, match=r"FLEET_GATE_HOSTS_SMOKE: 'a b' is not a host"):
        credhosts.refusal(GATE, "smoke", "x.example", 443, {"FLEET_GATE_HOSTS_SMOKE": "ok, a b"})


def test_urls_use_their_scheme_default_port_and_odd_urls_are_refused_when_bound() -> None:
    env = {"FLEET_METRICS_HOSTS_PROM": "prometheus.monitoring:9090, grafana.example"}
    ok = ("http://prometheus.monitoring:9090/x", "https://grafana.example/api")
    for url in ok:
        assert credhosts.url_refusal(METRICS, "prom", url, env) is None
    assert credhosts.url_refusal(METRICS, "prom", "http://prometheus.monitoring/", env)
    assert credhosts.url_refusal(METRICS, "prom", "ftp://grafana.example/", env)
    assert credhosts.url_refusal(METRICS, "other", "ftp://anything/", env) is None  # unbound
    # a templated host passes a glob only: each rendered URL is checked again at run time
    glob = {"FLEET_GATE_HOSTS_SMOKE": "*.apps.example.com"}
    templated = "https://{{cluster}}.apps.example.com/"
    assert credhosts.url_refusal(GATE, "smoke", templated, glob) is None


def test_metrics_and_gate_names_that_would_read_a_binding_are_reserved() -> None:
    env = {"FLEET_GATE_HOSTS_X": "a.example"}
    reason = credhosts.refusal(GATE, "hosts-x", "a.example", 443, env)
    assert reason is not None and "reserved" in reason
    assert credhosts.refusal(REGISTRY, "hosts-x", "a.example", 443, {}) is None


DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: test
clusters:
  - name: a
registries:
  - name: internal
    type: oci
    host: evil.example.com:5000
    credential: internal
  - name: hub
    type: dockerhub
    credential: hub
metricProviders:
  - name: prom
    address: https://attacker.example/
    credential: prom
rollout:
  waves:
    - name: canary
      clusters: [a]
      gates:
        - type: http
          url: https://attacker.example/smoke
          credential: smoke
"""


def test_a_commit_sending_bound_credentials_elsewhere_is_refused_at_file_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "fleet.yaml").write_text(DEFINITION)
    repo = load_repository(tmp_path)
    env = {
        **ENV,
        "FLEET_REGISTRY_HOSTS_HUB": "docker.io",
        "FLEET_METRICS_HOSTS_PROM": "prometheus.monitoring:9090",
        "FLEET_GATE_HOSTS_SMOKE": "smoke.example",
    }
    with pytest.raises(FleetError) as raised:
        check_credential_hosts(repo, env)
    lines = [str(p) for p in raised.value.problems]
    assert len(lines) == 3, lines  # the dockerhub entry goes to docker.io: bound there
    assert lines[0].endswith(
        "fleet.yaml:9: registry 'internal': registry credential 'internal' is not bound to "
        "evil.example.com:5000 (FLEET_REGISTRY_HOSTS_INTERNAL)"
    ), lines[0]
    assert ":16: metric provider 'prom'" in lines[1] and "attacker.example:443" in lines[1]
    assert ":24: gate http" in lines[2] and "FLEET_GATE_HOSTS_SMOKE" in lines[2]
    assert all(SECRET not in line for line in lines)
    check_credential_hosts(repo, {})  # unbound: today's behaviour (and a warning)


def test_fleet_validate_reports_a_redirected_credential_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleet.cli import main

    (tmp_path / "fleet.yaml").write_text(DEFINITION.split("metricProviders:")[0])
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    assert main(["validate", "--no-render", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "fleet.yaml:9: registry 'internal': registry credential 'internal' is not bound to "
        "evil.example.com:5000 (FLEET_REGISTRY_HOSTS_INTERNAL)"
    ), err
    assert len(err.splitlines()) == 1 and SECRET not in err and "Traceback" not in err
    monkeypatch.delenv("FLEET_REGISTRY_HOSTS_INTERNAL")
    assert main(["validate", "--no-render", str(tmp_path)]) == 0  # unbound: a warning only
