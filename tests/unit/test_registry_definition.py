"""The definition's `registries`: a type no plugin serves and a host named twice are
`file:line` errors of `fleet validate`, before any registry is asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.cli import main

HEAD = "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: r\nclusters: [{name: c1}]\n"


def _repo(tmp_path: Path, registries: str) -> Path:
    (tmp_path / "fleet.yaml").write_text(HEAD + "registries:\n" + registries)
    return tmp_path


def test_a_type_no_plugin_serves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = _repo(tmp_path, "  - name: art\n    type: artifactory\n    host: art.example\n")
    assert main(["validate", "--no-render", str(repo)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"{repo}/fleet.yaml:7: registry 'art': no registry plugin serves type 'artifactory'"
    )


def test_one_host_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = _repo(
        tmp_path,
        "  - {name: a, type: oci, host: reg.example}\n"
        "  - {name: b, type: oci, url: 'https://REG.example/v2'}\n",
    )
    assert main(["validate", "--no-render", str(repo)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"{repo}/fleet.yaml:7: registry host 'reg.example' is already served by registries[0]"
    )


def test_every_built_in_type_validates(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "  - {name: a, type: oci, host: reg.example}\n"
        "  - {name: b, type: dockerhub}\n"
        "  - {name: c, type: ghcr, host: ghcr.io}\n"
        "  - {name: d, type: quay, host: quay.io, credential: robot}\n",
    )
    assert main(["validate", "--no-render", str(repo)]) == 0
