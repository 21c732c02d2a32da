"""`fleet sync`, `fleet diff`, `fleet status` through the command line, on real clusters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.cli import main
from tests.conftest import LocalFleet
from tests.e2e.engine_support import core_api
from tests.e2e.sync_support import demo_repo, fleet_env, suffix
from tests.support.servers import GitServer

__all__ = ["fleet_env"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("fleet_env")
def test_diff_sync_status_round_trip(
    git_server: GitServer,
    tmp_path: Path,
    local_fleet: LocalFleet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sfx = suffix()
    tree = demo_repo(git_server, tmp_path / "repo", sfx)
    tree.commit_and_push("demo")
    url = tree.remote_url

    code, out, _ = run(capsys, "diff", url, "--exit-code")
    assert code == 1
    assert "=== cluster prod-us" in out and "+++" in out

    code, out, err = run(capsys, "sync", url, "-o", "json")
    assert code == 0, out + err
    data = json.loads(out)
    assert data["state"] == "Ready" and len(data["units"]) == 9 and data["writes"] > 0
    assert "syncing" in err  # progress lines go to stderr, plain on a pipe

    code, out, _ = run(capsys, "diff", url, "--exit-code")
    assert code == 0, out
    assert "no changes" in out

    code, out, _ = run(capsys, "sync", url)
    assert code == 0
    assert out.splitlines()[0].split() == [
        "CLUSTER",
        "BUNDLE",
        "STATE",
        "DEPLOYMENT",
        "COMMIT",
        "MESSAGE",
    ]
    assert "0 writes" in out.splitlines()[-1]

    core = core_api(local_fleet, "dev-eu")
    core.patch_namespaced_config_map("web-config", f"web-{sfx}", {"data": {"greeting": "hi"}})
    code, out, _ = run(capsys, "status", url, "-o", "json")
    assert code == 1
    data = json.loads(out)
    assert data["clusters"]["dev-eu"]["state"] == "Modified"
    assert data["bundles"][f"web-{sfx}"]["message"] == "Modified(1) [dev-eu]"
    code, out, _ = run(capsys, "status", url, "--cluster", "prod-us")
    assert code == 0 and "dev-eu" not in out

    # dry run: the hand edit shows in the diff for a sync of dev-eu? web has no correctDrift:
    # sync leaves it, so diff reports nothing to change
    code, out, _ = run(capsys, "diff", url, "--exit-code", "--cluster", "dev-eu")
    assert code == 0


@pytest.mark.usefixtures("fleet_env")
def test_a_broken_commit_is_one_line_with_file_and_line(
    git_server: GitServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = demo_repo(git_server, tmp_path / "repo", suffix())
    tree.write("examples/bundles/platform-config/configmap.yaml", "kind: ConfigMap\n  bad: [\n")
    tree.commit_and_push("broken yaml")
    code, out, err = run(capsys, "sync", tree.remote_url)
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if not line.startswith(("source ", "9 units"))]
    assert len(lines) == 1 and "configmap.yaml:" in lines[0], err
    code, _, err = run(capsys, "diff", tree.remote_url, "--exit-code")
    assert code == 2 and "configmap.yaml:" in err


def test_user_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "sync", str(tmp_path / "nowhere"))
    assert (
        code == 1
        and err.strip()
        == f"error: repository not found: {tmp_path / 'nowhere'} (a directory or a Git URL)"
    )
    code, _, err = run(capsys, "sync", ".", "-o", "yaml")
    assert code == 1 and "unknown output format" in err
    for command in ("sync", "diff", "status"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "--cluster" in out
