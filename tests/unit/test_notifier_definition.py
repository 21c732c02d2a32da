"""The definition's `notifiers`: a type no plugin serves is a `file:line` error of
`fleet validate` and of every commit load, not a delivery failure later."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.cli import main

HEAD = "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: n\nclusters: [{name: c1}]\n"


def _repo(tmp_path: Path, notifiers: str) -> Path:
    (tmp_path / "fleet.yaml").write_text(HEAD + "notifiers:\n" + notifiers)
    return tmp_path


@pytest.mark.parametrize("render", [False, True])
def test_a_type_no_plugin_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], render: bool
) -> None:
    repo = _repo(tmp_path, "  - name: ops\n    type: slak\n    credential: ops\n")
    argv = ["validate", str(repo)] if render else ["validate", "--no-render", str(repo)]
    assert main(argv) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"{repo}/fleet.yaml:7: notifier 'ops': no notifier plugin serves type 'slak' "
        "(installed: alertmanager, github, gitlab, slack, webhook)"
    )


def test_every_built_in_type_validates(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        "".join(
            f"  - {{name: n-{kind}, type: {kind}, url: 'https://x.example'}}\n"
            for kind in ("webhook", "slack", "alertmanager", "github", "gitlab")
        ),
    )
    assert main(["validate", "--no-render", str(repo)]) == 0


def test_the_commented_example_in_fleet_example_yaml_is_valid() -> None:
    import yaml

    from fleet.plugin.manager import FleetPlugins
    from fleet.spec.definition import NotifierSpec

    text = (Path(__file__).parents[2] / "fleet.example.yaml").read_text()
    start = text.index("# notifiers:\n")
    block = []
    for line in text[start:].splitlines():
        if not line.startswith("#"):
            break
        block.append(line[2:])
    specs = [
        NotifierSpec.model_validate(raw) for raw in yaml.safe_load("\n".join(block))["notifiers"]
    ]
    served = FleetPlugins.load(entry_points=False).notifier_types()
    assert [s.type for s in specs] == ["slack", "webhook", "alertmanager", "github"]
    assert all(s.type in served for s in specs)
