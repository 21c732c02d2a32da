"""YAML bombs and other hostile YAML: one-line errors with file and line, after bounded work.

A repository is untrusted input (README "Security"). Every loader fleet has (the root
definition, bundle fleet.yaml files, values files, manifests, kustomizations, renderers'
output) goes through `fleet.spec.yamlload.BoundedLoader`; these tests feed each of them a
"billion laughs" document and check where the error points. Wall-clock time is not asserted
(the machine is shared); the loader's own counters show it stopped early instead.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.desired import load_desired
from fleet.errors import FleetError
from fleet.plugin.manager import FleetPlugins
from fleet.render.manifests import load_manifests, parse_yaml_documents
from fleet.render.pipeline import RenderCache
from fleet.spec import yamlload
from fleet.spec.yamlload import (
    MAX_YAML_ALIAS_EXPANSION,
    MAX_YAML_ALIASES,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    BoundedLoader,
    load_yaml_file,
    load_yaml_text,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
HEADER = "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: test\n"
BOMB_MESSAGE = f"YAML aliases expand to more than {MAX_YAML_ALIAS_EXPANSION:,} nodes"


def bomb(levels: int = 9, *, indent: str = "", first_line: int = 1) -> tuple[str, int]:
    """A billion-laughs block and the line of the first alias that crosses the limit.

    Level i is a list of nine aliases to level i-1, so it expands to 9**i copies of "lol".
    """
    lines = [f"{indent}l0: &l0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"{indent}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    size, level = 5, 0  # expanded size of l0: the list node (1) plus "lol" (1 + 3)
    expansion = 0
    while True:  # find the level where the running alias expansion first goes over
        level += 1
        for _ in range(9):
            expansion += size
            if expansion > MAX_YAML_ALIAS_EXPANSION:
                return "\n".join(lines) + "\n", first_line + level
        size = 1 + 9 * size


def example_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "fleet.example.yaml", repo / "fleet.yaml")
    shutil.copytree(ROOT / "examples", repo / "examples")
    return repo


def validate_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """`fleet validate` on `repo`: exit 1, nothing on stdout, exactly one stderr line."""
    assert main(["validate", str(repo)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    return line


def test_bomb_size_is_what_the_issue_describes() -> None:
    text, _ = bomb(6)
    assert len(text) < 400  # the ~340-byte fleet.yaml of the issue, ninefold per level


def test_definition_bomb_is_one_line_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line = bomb(indent="  ", first_line=5)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "fleet.yaml").write_text(HEADER + "junk:\n" + text)
    error = validate_error(repo, capsys)
    assert error.startswith(f"{repo / 'fleet.yaml'}:{line}: invalid YAML: {BOMB_MESSAGE}")


def test_bundle_fleet_yaml_bomb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = example_repo(tmp_path)
    bundle_file = repo / "examples/bundles/web/fleet.yaml"
    original = bundle_file.read_text()
    text, line = bomb(indent="  ", first_line=original.count("\n") + 2)
    bundle_file.write_text(original + "labels:\n" + text)
    error = validate_error(repo, capsys)
    assert error.startswith(f"{bundle_file}:{line}: invalid YAML: {BOMB_MESSAGE}")


def test_values_file_bomb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = example_repo(tmp_path)
    values = repo / "examples/bundles/web/values-prod.yaml"
    text, line = bomb()
    values.write_text(text)
    error = validate_error(repo, capsys)
    assert error.startswith(f"{values}:{line}: invalid YAML: {BOMB_MESSAGE}")


def test_values_file_bomb_at_render_time() -> None:
    """The helm renderer parses values files itself, through the same bounded parser."""
    text, line = bomb()
    with pytest.raises(FleetError) as info:
        parse_yaml_documents(text, file="values.yaml")
    assert str(info.value).startswith(f"values.yaml:{line}: invalid YAML: {BOMB_MESSAGE}")


def test_manifest_bomb_through_load_desired(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "fleet.yaml").write_text(HEADER + "clusters: [{name: a}]\nbundles:\n  paths: [app]\n")
    text, line = bomb(indent="  ", first_line=5)
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata:\n" + text
    (repo / "app/cm.yaml").write_text(manifest)
    with pytest.raises(FleetError) as info:
        load_desired(repo, "c", FleetPlugins.load(), cache=RenderCache(directory=None))
    (problem,) = info.value.problems
    assert (problem.file, problem.line) == ("app/cm.yaml", line)
    assert problem.message.startswith(f"invalid YAML: {BOMB_MESSAGE}")


def test_renderer_output_bomb() -> None:
    """helm/kustomize output is parsed with load_manifests: bounded the same way."""
    text, line = bomb(indent="  ", first_line=5)
    output = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata:\n" + text
    with pytest.raises(FleetError) as info:
        load_manifests(output, file="helm template web")
    assert str(info.value).startswith(f"helm template web:{line}: invalid YAML: {BOMB_MESSAGE}")


def test_kustomization_bomb_is_left_to_the_renderer(tmp_path: Path) -> None:
    """kustomize_refs reads kustomizations through load_yaml_file: a bomb ends quickly."""
    from fleet.spec.kustomize_refs import external_kustomize_refs

    text, _ = bomb(30)
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\nx:\n" + text)
    assert external_kustomize_refs([tmp_path], tmp_path, tmp_path, []) == []


@pytest.mark.parametrize("levels", [9, 30, 200])
def test_loader_stops_after_bounded_work(levels: int) -> None:
    """However deep the bomb, composing stops within a few levels past the limit."""
    text, line = bomb(levels)
    loader = BoundedLoader(text)
    with pytest.raises(yaml_error()) as info:
        loader.get_single_node()
    loader.dispose()
    assert info.value.problem_mark.line + 1 == line
    # each level is one list node plus its nine aliases; 9**9 would be reached otherwise
    assert loader.composed_nodes < 40
    assert loader.alias_expansion <= MAX_YAML_ALIAS_EXPANSION + 9**7 * 4


def yaml_error() -> type[Exception]:
    import yaml

    return yaml.YAMLError


def test_long_scalar_bomb_counts_characters() -> None:
    """Few nodes, long strings: expansion counts the characters aliases copy."""
    long = "x" * 10_000
    text = f"a: &a {long}\nb: [" + ", ".join(["*a"] * 200) + "]\n"
    with pytest.raises(FleetError) as info:
        load_yaml_text(text, Path("values.yaml"))
    assert BOMB_MESSAGE in str(info.value)
    assert str(info.value).startswith("values.yaml:2:")


def test_alias_count_limit() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * (MAX_YAML_ALIASES + 1)) + "]\n"
    with pytest.raises(FleetError) as info:
        load_yaml_text(text, Path("f.yaml"))
    assert str(info.value) == (
        f"f.yaml:2: invalid YAML: more than {MAX_YAML_ALIASES:,} YAML aliases"
    )


def test_recursive_alias_is_an_error_with_its_line() -> None:
    with pytest.raises(FleetError) as info:
        load_yaml_text("a: 1\nb: &b\n  - c\n  - *b\n", Path("f.yaml"))
    assert str(info.value) == "f.yaml:4: invalid YAML: recursive YAML alias is not supported"


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_deep_nesting_is_an_error_not_a_recursion_error(opener: str) -> None:
    if opener == "- ":
        text = "".join("  " * i + "-\n" for i in range(MAX_YAML_DEPTH + 50))
    else:
        text = opener * (MAX_YAML_DEPTH * 20)
    for parse in (
        lambda: load_yaml_text(text, Path("f.yaml")),
        lambda: parse_yaml_documents(text, file="f.yaml"),
    ):
        with pytest.raises(FleetError) as info:
            parse()
        assert f"nested deeper than {MAX_YAML_DEPTH} levels" in str(info.value)
        assert str(info.value).startswith("f.yaml:")


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "fleet.yaml"
    with big.open("wb") as handle:  # sparse: costs no disk
        handle.truncate(MAX_YAML_BYTES + 1)
    with pytest.raises(FleetError) as info:
        load_yaml_file(big)
    assert str(info.value) == (
        f"{big}: YAML larger than {MAX_YAML_BYTES // 2**20} MiB is not accepted"
    )
    with pytest.raises(FleetError, match="larger than"):
        parse_yaml_documents("a: b\n" * (MAX_YAML_BYTES // 5 + 1), file="out")


def test_ordinary_aliases_and_merge_keys_still_work() -> None:
    text = textwrap.dedent(
        """\
        defaults: &defaults {replicas: 2, image: web}
        dev:
          <<: *defaults
          replicas: 1
        prod: *defaults
        """
    )
    doc = load_yaml_text(text, Path("values.yaml"))
    assert doc.data["dev"] == {"replicas": 1, "image": "web"}
    assert doc.data["prod"] == {"replicas": 2, "image": "web"}
    assert doc.line_of(("prod",)) == 5
    (manifest,) = load_manifests(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: &d {x: y}\nz: *d\n", file="f"
    )
    assert manifest["z"] == {"x": "y"}


def test_limits_are_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Security", 1)[1].split("\n## ", 1)[0]
    for name in (
        "MAX_YAML_BYTES",
        "MAX_YAML_ALIASES",
        "MAX_YAML_ALIAS_EXPANSION",
        "MAX_YAML_DEPTH",
    ):
        assert name in section, name
        assert f"{getattr(yamlload, name):,}" in section, name


@pytest.mark.parametrize("text", ["\x00a: b\n", "a: \x07\n", "a: b\n\x1b"])
def test_control_characters_are_an_error_not_a_reader_crash(text: str) -> None:
    """Found by the fuzz harness: PyYAML's reader raised from the loader's constructor."""
    for parse in (
        lambda: load_yaml_text(text, Path("f.yaml")),
        lambda: parse_yaml_documents(text, file="f.yaml"),
    ):
        with pytest.raises(FleetError) as info:
            parse()
        assert str(info.value).startswith("f.yaml:")
        assert "special characters are not allowed" in str(info.value)


def test_binary_values_are_an_error() -> None:
    """Found by the fuzz harness: a `!!binary` key was bytes, and JSON hashing crashed."""
    for parse in (
        lambda: load_yaml_text("a: 1\n? !!binary aGk=\n: x\n", Path("f.yaml")),
        lambda: parse_yaml_documents("a: 1\n? !!binary aGk=\n: x\n", file="f.yaml"),
    ):
        with pytest.raises(FleetError, match=r"^f\.yaml:2: invalid YAML: !!binary values"):
            parse()
