"""`fleet validate` reports a URL from Git outside FLEET_ALLOWED_HOSTS at its file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleet.cli import main

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: test
clusters: [{name: canary}]
metricProviders:
  - name: prod
    address: https://prometheus.example.com
notifiers:
  - name: audit
    type: webhook
    url: https://audit.evil.example/fleet?token=s3cret
  - name: alerts
    type: alertmanager
    url: http://169.254.169.254:9093
rollout:
  waves:
    - name: canary
      clusters: [canary]
      gates:
        - type: http
          url: "https://web.internal.example/healthz"
        - type: http
          url: "https://{{cluster}}.apps.example.com/healthz"
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo/fleet.yaml").write_text(textwrap.dedent(DEFINITION))
    monkeypatch.chdir(tmp_path)
    return Path("repo")


def test_urls_outside_the_list_are_problems_at_their_lines(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_ALLOWED_HOSTS", "prometheus.example.com:443, *.apps.example.com")
    assert main(["validate", "--no-render", str(repo)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "repo/fleet.yaml:11: notifier 'audit': refused: audit.evil.example:443 is not in "
        "FLEET_ALLOWED_HOSTS",
        "repo/fleet.yaml:14: notifier 'alerts': refused: 169.254.169.254:9093 is a link-local "
        "address (169.254.169.254): always refused (FLEET_ALLOWED_HOSTS)",
        "repo/fleet.yaml:21: gate http: refused: web.internal.example:443 is not in "
        "FLEET_ALLOWED_HOSTS",
    ]
    assert "s3cret" not in err


def test_without_the_setting_only_always_refused_targets_are_problems(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEET_ALLOWED_HOSTS", raising=False)
    assert main(["validate", "--no-render", str(repo)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("repo/fleet.yaml:14: notifier 'alerts': refused: 169.254.169.254:9093")
