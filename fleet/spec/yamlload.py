"""Safe, bounded YAML loading that remembers where every key and list item came from.

Users fix mistakes by line number, so validation errors must say `fleet.yaml:12:`. PyYAML's
plain `safe_load` throws positions away; here the document is composed into nodes with
`BoundedLoader` (a `yaml.SafeLoader`, never the unsafe loader: no Python object tags),
turned into plain data, and a side table maps each location path (`("clusters", 0,
"labels")`) to its 1-based line.

Everything fleet parses as YAML comes from the repository or from a renderer run on it, so
it is untrusted input. PyYAML shares aliased nodes while composing, but every later stage
(validation, templating, JSON, hashing, apply) walks the data as if each alias were a copy:
a 340-byte "billion laughs" document is gigabytes by then. `BoundedLoader` therefore counts,
while it composes, how big the document is once aliases are expanded, and stops at the first
node that goes over a limit, with that node's line. The limits (README "Security"):

- `MAX_YAML_BYTES`: a file or a renderer's output larger than this is refused unread;
- `MAX_YAML_ALIASES`: alias uses (`*name`, `<<: *name`) in one stream;
- `MAX_YAML_ALIAS_EXPANSION`: what aliases may add, in nodes plus scalar characters, to one
  stream; what is written out in full costs nothing here, so no real file comes close;
- `MAX_YAML_DEPTH`: nesting; deeper documents would exhaust the Python stack later.

Also rejected here, because PyYAML silently accepts them: duplicate keys in one mapping (the
last one would win without a word) and recursive aliases (they would hang later stages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from fleet.errors import FleetError, Problem

Loc = tuple[str | int, ...]

MAX_YAML_BYTES = 8 * 1024 * 1024
MAX_YAML_ALIASES = 10_000
MAX_YAML_ALIAS_EXPANSION = 1_000_000
MAX_YAML_DEPTH = 100


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that stops composing as soon as a stream exceeds the YAML limits.

    Work is linear in the input: each node is composed once and its expanded size is the sum
    of its children's, computed when it is complete. `composed_nodes` says how far it got
    (tests use it to show a bomb is stopped early, not after the expansion).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.composed_nodes = 0
        self.aliases = 0
        self.alias_expansion = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> size with aliases expanded

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        self._sizes = {}  # anchors do not cross documents; ids may be reused after this
        return node

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is PyYAML's own error
                self._count_alias(target, event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise ComposerError(
                None,
                None,
                f"YAML nested deeper than {MAX_YAML_DEPTH} levels",
                self.peek_event().start_mark,  # type: ignore[no-untyped-call]
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self.composed_nodes += 1
            self._sizes[id(node)] = _node_size(node, self._sizes)
        return node

    def _count_alias(self, target: yaml.Node, mark: yaml.Mark) -> None:
        size = self._sizes.get(id(target))
        if size is None:  # its anchor is still being composed: the alias is inside it
            raise ComposerError(None, None, "recursive YAML alias is not supported", mark)
        self.aliases += 1
        self.alias_expansion += size
        if self.aliases > MAX_YAML_ALIASES:
            raise ComposerError(None, None, f"more than {MAX_YAML_ALIASES:,} YAML aliases", mark)
        if self.alias_expansion > MAX_YAML_ALIAS_EXPANSION:
            raise ComposerError(
                None,
                None,
                f"YAML aliases expand to more than {MAX_YAML_ALIAS_EXPANSION:,} nodes and "
                "characters (a YAML bomb?)",
                mark,
            )


def _refuse_binary(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """`!!binary` would be Python bytes: not JSON, not a string key; Kubernetes wants base64."""
    raise ConstructorError(
        None, None, "!!binary values are not supported (write the base64 text)", node.start_mark
    )


BoundedLoader.add_constructor("tag:yaml.org,2002:binary", _refuse_binary)


def _node_size(node: yaml.Node, sizes: Mapping[int, int]) -> int:
    """1 per node plus scalar characters, aliased children counted as full copies."""
    if isinstance(node, yaml.ScalarNode):
        return 1 + len(node.value)
    if isinstance(node, yaml.MappingNode):
        return 1 + sum(sizes.get(id(k), 1) + sizes.get(id(v), 1) for k, v in node.value)
    return 1 + sum(sizes.get(id(item), 1) for item in node.value)


def check_size(text: str, file: Path | str) -> None:
    """Refuse text over `MAX_YAML_BYTES` before any parsing (characters <= UTF-8 bytes)."""
    if len(text) > MAX_YAML_BYTES:
        raise FleetError(
            f"YAML larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB is not accepted",
            file=str(file),
        )


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
    duplicate keys, recursive aliases, over the YAML limits), never a PyYAML exception.
    """
    check_size(text, file)
    try:
        loader = BoundedLoader(text)  # the reader already refuses control characters
    except yaml.YAMLError as err:
        raise FleetError(problems=[yaml_error_problem(err, file)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None, file, {(): 1})
        problems: list[Problem] = []
        _check_duplicate_keys(node, file, problems)
        if problems:
            raise FleetError(problems=problems)
        data = loader.construct_document(node)
    except yaml.YAMLError as err:
        raise FleetError(problems=[yaml_error_problem(err, file)]) from None
    finally:
        loader.dispose()
    return YamlDocument(data, file, node_lines(node))


def load_yaml_stream(
    text: str, file: Path | str, loader_class: type[BoundedLoader] = BoundedLoader
) -> list[YamlDocument]:
    """Every document of a multi-document stream (None for empty ones), with lines.

    Same limits and errors as `load_yaml_text`; duplicate keys are left alone (the last one
    wins, as in Kubernetes' own decoder), since renderers' output is parsed here too.
    """
    check_size(text, file)
    try:
        loader = loader_class(text)
    except yaml.YAMLError as err:
        raise FleetError(problems=[yaml_error_problem(err, file)]) from None
    docs: list[YamlDocument] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                docs.append(YamlDocument(None, Path(file), {(): 1}))
                continue
            data = loader.construct_document(node)
            docs.append(YamlDocument(data, Path(file), node_lines(node)))
    except yaml.YAMLError as err:
        raise FleetError(problems=[yaml_error_problem(err, file)]) from None
    finally:
        loader.dispose()
    return docs


def load_yaml_file(path: Path) -> YamlDocument:
    """Read and parse `path` (UTF-8); unreadable files are FleetErrors naming the file."""
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            check_size(" " * (MAX_YAML_BYTES + 1), path)
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FleetError("not valid UTF-8 text", file=path) from None
    except OSError as err:
        raise FleetError(f"cannot read file: {err.strerror or err}", file=path) from None
    return load_yaml_text(text, path)


def _check_duplicate_keys(root: yaml.Node, file: Path, problems: list[Problem]) -> None:
    """Duplicate keys, each mapping node once (aliased subtrees are not walked again)."""
    pending, seen_nodes = [root], set()
    while pending:
        node = pending.pop()
        if id(node) in seen_nodes or isinstance(node, yaml.ScalarNode):
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != MERGE_TAG:
                    if key_node.value in keys:
                        line = key_node.start_mark.line + 1
                        problems.append(
                            Problem(f"duplicate key '{key_node.value}'", str(file), line)
                        )
                    keys.add(key_node.value)
                pending.extend((value_node, key_node))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(reversed(node.value))
    problems.sort(key=lambda p: p.line or 0)


MERGE_TAG = "tag:yaml.org,2002:merge"


def node_lines(root: yaml.Node) -> dict[Loc, int]:
    """Location path -> 1-based line for every key and sequence item under `root`.

    Aliased nodes are visited once: their lines are at the anchor, and re-walking shared
    subtrees would make a "billion laughs" document cost exponential time here.
    """
    lines: dict[Loc, int] = {(): root.start_mark.line + 1}
    visited: set[int] = set()
    pending: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while pending:
        node, loc = pending.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        children: list[tuple[yaml.Node, Loc, int]] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key: str | int = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                children.append((value_node, (*loc, key), key_node.start_mark.line + 1))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                children.append((item, (*loc, index), item.start_mark.line + 1))
        for _child, child_loc, line in children:
            lines.setdefault(child_loc, line)
        pending.extend((child, child_loc) for child, child_loc, _ in reversed(children))
    return lines
