"""A definition's `kubeconfig.path` is untrusted: never expanded, confined to FLEET_KUBECONFIG_DIR.

Before, `path: /x/${FLEET_GIT_TOKEN}` was expanded against the worker's environment and the
"not found" error printed the result: the token in `fleet sync`'s output, the worker's log,
Redis and `/status`. These tests set a token in the environment and look for it in every
answer; the distributed path (`/status` of `fleet serve`) is in
tests/integration/test_kubeconfig_status.py.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.errors import FleetError
from fleet.runtime.clusters import ClusterLink
from fleet.runtime.credentials import resolve_kubeconfig
from fleet.spec.loader import load_repository

TOKEN = "ghp_NeverShowMe0123456789abcdefABCDEF"

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: leak
clusters:
  - name: edge
    kubeconfig:
      path: {path}
bundles:
  paths: [apps/*]
"""
PATH_LINE = 7  # the line of `path:` above


def make_repo(root: Path, path: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "fleet.yaml").write_text(DEFINITION.format(path=path))
    app = root / "apps" / "cfg"
    app.mkdir(parents=True, exist_ok=True)
    (app / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n")
    return root


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The token in the environment, and an operator kubeconfig directory."""
    kube = tmp_path / "operator-kube"
    kube.mkdir()
    monkeypatch.setenv("FLEET_GIT_TOKEN", TOKEN)
    monkeypatch.setenv("FLEET_KUBECONFIG_DIR", str(kube))
    return kube


@pytest.mark.parametrize("command", ["validate", "sync", "status", "diff"])
@pytest.mark.parametrize("path", ["/x/${FLEET_GIT_TOKEN}", "$FLEET_GIT_TOKEN", "~/${HOME}"])
def test_a_variable_in_the_path_is_a_definition_error_without_its_value(
    command: str,
    path: str,
    secret_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    repo = make_repo(tmp_path / "repo", f'"{path}"')
    code = main([command, str(repo)])
    out, err = capsys.readouterr()
    assert code != 0
    assert TOKEN not in out + err + caplog.text
    assert os.environ["HOME"] not in out + err
    problems = [line for line in err.splitlines() if "kubeconfig.path" in line]
    assert len(problems) == 1, err
    assert f"fleet.yaml:{PATH_LINE}:" in problems[0]
    assert "Traceback" not in err


def test_a_path_outside_the_directory_is_refused_with_file_and_line(
    secret_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # /proc/self/environ: loading it as a kubeconfig could quote the environment in an error
    repo = make_repo(tmp_path / "repo", "/proc/self/environ")
    code = main(["sync", str(repo)])
    out, err = capsys.readouterr()
    assert code == 1
    assert TOKEN not in out + err
    assert (
        f"fleet.yaml:{PATH_LINE}: cluster 'edge': kubeconfig.path '/proc/self/environ' "
        "is outside FLEET_KUBECONFIG_DIR" in err
    )
    assert "Traceback" not in err


@pytest.mark.parametrize("path", ["../outside.kubeconfig", "/etc/hostname", "sub/../../x"])
def test_paths_that_leave_the_directory_are_refused(
    path: str, secret_env: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside.kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    repo = load_repository(make_repo(tmp_path / "repo", f'"{path}"'))
    with pytest.raises(FleetError) as info:
        resolve_kubeconfig(repo.clusters[0], os.environ)
    message = str(info.value)
    assert message.startswith(f"{repo.definition_file}:{PATH_LINE}: cluster 'edge': ")
    assert "outside FLEET_KUBECONFIG_DIR" in message and len(message.splitlines()) == 1


def test_a_symlink_out_of_the_directory_is_refused(secret_env: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "admin.kubeconfig"
    outside.parent.mkdir()
    outside.write_text("apiVersion: v1\nkind: Config\n")
    (secret_env / "edge.kubeconfig").symlink_to(outside)
    (secret_env / "dir-link").symlink_to(outside.parent, target_is_directory=True)
    for path in ("edge.kubeconfig", "dir-link/admin.kubeconfig"):
        repo = load_repository(make_repo(tmp_path / "repo", path))
        with pytest.raises(FleetError, match="outside FLEET_KUBECONFIG_DIR"):
            resolve_kubeconfig(repo.clusters[0], os.environ)


def test_a_path_inside_the_directory_resolves(secret_env: Path, tmp_path: Path) -> None:
    (secret_env / "edge.kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    (secret_env / "teams").mkdir()
    (secret_env / "teams" / "a.kubeconfig").symlink_to(secret_env / "edge.kubeconfig")
    real = secret_env.resolve() / "edge.kubeconfig"
    for path in ("edge.kubeconfig", str(secret_env / "edge.kubeconfig"), "teams/a.kubeconfig"):
        repo = load_repository(make_repo(tmp_path / "repo", path))
        assert resolve_kubeconfig(repo.clusters[0], os.environ).path == real


def test_not_found_and_unloadable_name_the_path_as_written(
    secret_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = load_repository(make_repo(tmp_path / "repo", "missing.kubeconfig"))
    link = ClusterLink(repo.clusters[0])
    with pytest.raises(FleetError) as info:
        link.connect(os.environ)
    assert str(info.value) == (
        f"{repo.definition_file}:{PATH_LINE}: cluster 'edge': kubeconfig kubeconfig.path "
        "'missing.kubeconfig' in FLEET_KUBECONFIG_DIR not found (credentials are resolved "
        "from the environment, see fleet.runtime.credentials)"
    )
    # a file that is no kubeconfig: one line, and nothing of its content
    (secret_env / "notes").write_text(f"token: [{TOKEN}\n")
    repo = load_repository(make_repo(tmp_path / "repo", "notes"))
    with pytest.raises(FleetError) as info:
        ClusterLink(repo.clusters[0]).connect(os.environ)
    assert TOKEN not in str(info.value) and len(str(info.value).splitlines()) == 1
    assert "cannot load kubeconfig kubeconfig.path 'notes'" in str(info.value)


def test_operator_variables_are_shown_as_written(tmp_path: Path) -> None:
    repo = load_repository(make_repo(tmp_path / "repo", "x"))
    spec = repo.clusters[0].model_copy(update={"kubeconfig": None})
    env = {"FLEET_KUBECONFIG_EDGE": "$SECRET_DIR/edge", "SECRET_DIR": "/very/secret"}
    with pytest.raises(FleetError) as info:
        ClusterLink(spec).connect(env)
    assert "$SECRET_DIR/edge (FLEET_KUBECONFIG_EDGE) not found" in str(info.value)
    assert "/very/secret" not in str(info.value)
