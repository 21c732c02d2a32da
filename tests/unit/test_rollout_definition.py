"""Windows, freezes and partitions in the definition: bad values are file:line problems."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.spec.loader import load_repository

HEADER = "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: test\n"


def problems(root: Path, body: str) -> list[str]:
    (root / "fleet.yaml").write_text(HEADER + textwrap.dedent(body))
    with pytest.raises(FleetError) as info:
        load_repository(root)
    return [str(p) for p in info.value.problems]


def test_a_bad_cron_schedule_is_a_file_line_problem(tmp_path: Path) -> None:
    (message,) = problems(
        tmp_path,
        """\
        rollout:
          windows:
            - schedule: "0 25 * * *"
              duration: 1h
        """,
    )
    assert message.startswith(f"{tmp_path / 'fleet.yaml'}:6: rollout.windows[0].schedule:")
    assert "hour: 25 is outside 0-23" in message


def test_a_bad_freeze_end_is_a_file_line_problem(tmp_path: Path) -> None:
    (message,) = problems(
        tmp_path,
        """\
        rollout:
          freezes:
            - reason: release
              until: next tuesday
        """,
    )
    assert ":7: rollout.freezes[0].until:" in message and "ISO 8601" in message


def test_windows_and_freezes_name_defined_groups_and_clusters(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        clusters:
          - name: prod-1
        groups:
          - name: prod
            selector: {}
        rollout:
          windows:
            - group: prd
              schedule: "0 2 * * *"
              duration: 1h
          freezes:
            - clusters: [prod-1, prod-9]
        """,
    )
    file = tmp_path / "fleet.yaml"
    assert f"{file}:11: undefined group 'prd'; did you mean 'prod'?" in found
    assert f"{file}:15: undefined cluster 'prod-9'" in found
    assert len(found) == 2


def test_a_partition_max_unavailable_is_checked(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(HEADER + "bundles:\n  paths: [{glob: apps/*}]\n")
    app = tmp_path / "apps" / "web"
    app.mkdir(parents=True)
    (app / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (app / "fleet.yaml").write_text(
        "rolloutStrategy:\n  partitions:\n    - clusterName: a\n      maxUnavailable: 150%\n"
    )
    with pytest.raises(FleetError) as info:
        load_repository(tmp_path)
    (message,) = [str(p) for p in info.value.problems]
    assert ":4: rolloutStrategy.partitions[0].maxUnavailable:" in message
