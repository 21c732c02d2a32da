"""A dependsOn cycle is an invalid commit: `fleet validate` and `fleet sync` reject it with
the bundle's fleet.yaml and line, before any cluster is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.cli import main

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: cycle
clusters:
  - name: nowhere
    kubeconfig: {path: /nonexistent/kubeconfig}
bundles:
  paths: [bundles/*]
"""


def make_repo(root: Path) -> None:
    (root / "fleet.yaml").write_text(DEFINITION)
    for name, other in (("db", "app"), ("app", "db")):
        bundle = root / "bundles" / name
        bundle.mkdir(parents=True)
        (bundle / "fleet.yaml").write_text(f"name: {name}\ndependsOn:\n  - name: {other}\n")
        (bundle / "cm.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
        )


@pytest.mark.parametrize("command", ["validate", "sync"])
def test_dependency_cycle_is_rejected(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_repo(tmp_path)
    code = main([command, str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    problems = [line for line in err if "dependsOn" in line]  # sync also prints progress
    assert len(problems) == 1, err
    assert "dependsOn cycle on cluster nowhere" in problems[0]
    assert "fleet.yaml:2:" in problems[0]
