"""Safe YAML loading that remembers where every key and list item came from.

Users fix mistakes by line number, so validation errors must say `fleet.yaml:12:`. PyYAML's
plain `safe_load` throws positions away; here the document is composed into nodes with
`yaml.SafeLoader` (never the unsafe loader: no Python object tags), turned into plain data,
and a side table maps each location path (`("clusters", 0, "labels")`) to its 1-based line.

Also rejected here, because PyYAML silently accepts them: duplicate keys in one mapping (the
last one would win without a word) and recursive aliases (they would hang later stages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import FleetError, Problem

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    """Plain data of one YAML document plus the line of every key and sequence item."""

    data: Any
    file: Path
    lines: Mapping[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """Line of `loc`, or of its closest ancestor that has one (1 for the document)."""
        for end in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return self.lines.get((), 1)


def yaml_error_problem(err: yaml.YAMLError, file: Path | str) -> Problem:
    """`path:line: message` from a PyYAML error, using its mark when it has one."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None)
    context = getattr(err, "context", None)
    text = " ".join(str(part) for part in (context, problem) if part) or str(err)
    line = mark.line + 1 if mark is not None else None
    return Problem(f"invalid YAML: {text}", str(file), line)


def load_yaml_text(text: str, file: Path) -> YamlDocument:
    """Parse one YAML document from `text`; `file` is only used in messages.

    An empty document is `None`. Raises FleetError (malformed YAML, more than one document,
    duplicate keys, recursive aliases), never a PyYAML exception.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None, file, {(): 1})
        problems: list[Problem] = []
        _check_node(node, file, problems, ancestors=set())
        if problems:
            raise FleetError(problems=problems)
        data = loader.construct_document(node)
    except yaml.YAMLError as err:
        raise FleetError(problems=[yaml_error_problem(err, file)]) from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {(): node.start_mark.line + 1}
    _record_lines(node, (), lines, visited=set())
    return YamlDocument(data, file, lines)


def load_yaml_file(path: Path) -> YamlDocument:
    """Read and parse `path` (UTF-8); unreadable files are FleetErrors naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FleetError("not valid UTF-8 text", file=path) from None
    except OSError as err:
        raise FleetError(f"cannot read file: {err.strerror or err}", file=path) from None
    return load_yaml_text(text, path)


def _check_node(node: yaml.Node, file: Path, problems: list[Problem], ancestors: set[int]) -> None:
    """Reject duplicate keys and recursive aliases before constructing any data."""
    if id(node) in ancestors:
        problems.append(
            Problem("recursive YAML alias is not supported", str(file), node.start_mark.line + 1)
        )
        return
    if isinstance(node, yaml.ScalarNode):
        return
    ancestors = ancestors | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    problems.append(
                        Problem(
                            f"duplicate key '{key_node.value}'",
                            str(file),
                            key_node.start_mark.line + 1,
                        )
                    )
                seen.add(key_node.value)
            _check_node(key_node, file, problems, ancestors)
            _check_node(value_node, file, problems, ancestors)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_node(item, file, problems, ancestors)


def _record_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], visited: set[int]) -> None:
    # Aliased nodes are visited once: their lines are at the anchor, and re-walking shared
    # subtrees would make a "billion laughs" document cost exponential time here.
    if id(node) in visited:
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key: str | int = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            child = (*loc, key)
            lines.setdefault(child, key_node.start_mark.line + 1)
            _record_lines(value_node, child, lines, visited)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            lines.setdefault(child, item.start_mark.line + 1)
            _record_lines(item, child, lines, visited)
