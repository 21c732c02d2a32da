"""A commit with one malformed manifest in one bundle writes nothing to any cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.cli import main
from tests.conftest import LocalFleet
from tests.e2e.sync_support import demo_repo, deployed, fleet_env, suffix
from tests.support.servers import GitServer

__all__ = ["fleet_env"]


@pytest.mark.usefixtures("fleet_env")
def test_bad_manifest_in_one_bundle_touches_no_cluster(
    git_server: GitServer,
    tmp_path: Path,
    local_fleet: LocalFleet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sfx = suffix()
    tree = demo_repo(git_server, tmp_path / "repo", sfx)
    config = "examples/bundles/platform-config/configmap.yaml"
    text = (tree.path / config).read_text()
    tree.write(config, text.replace("metadata:\n", "metadata:\n  labels: [a]\n", 1))
    tree.commit_and_push("labels as a list")
    assert main(["sync", tree.remote_url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = [line for line in err.splitlines() if not line.startswith(("source ", "9 units"))]
    assert len(lines) == 1, err
    assert "configmap.yaml:" in lines[0] and "metadata.labels must be a mapping" in lines[0]
    for cluster in local_fleet.clusters:
        mine = [name for name in deployed(local_fleet, cluster) if name.endswith(sfx)]
        assert mine == [], (cluster, mine)
