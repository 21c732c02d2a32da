"""localfleet's argument parsing and binary lookup (no processes)."""

from __future__ import annotations

from pathlib import Path

import localfleet
import pytest


def test_cluster_argument_with_labels() -> None:
    assert localfleet.parse_cluster_arg("prod-eu:env=prod,region=eu") == (
        "prod-eu",
        {"env": "prod", "region": "eu"},
    )
    assert localfleet.parse_cluster_arg("solo") == ("solo", {})


@pytest.mark.parametrize("text", ["Prod:env=x", "a_b", ":env=x", "x:env"])
def test_bad_cluster_arguments(text: str) -> None:
    with pytest.raises(localfleet.LocalFleetError):
        localfleet.parse_cluster_arg(text)


def test_missing_binary_names_the_build_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(localfleet, "BIN", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.delenv("FLEET_KWOK", raising=False)
    with pytest.raises(localfleet.LocalFleetError, match=r"tests/testbin/build\.sh kwok"):
        localfleet.find_binary("kwok")


def test_kubebuilder_assets_are_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    monkeypatch.delenv("FLEET_ETCD", raising=False)
    assert localfleet.find_binary("etcd") == str(fake)
