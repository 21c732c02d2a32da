"""Rancher Fleet's helm values templating: `${ .ClusterLabels.env }` and friends.

Rancher Fleet pre-processes helm values with Go templates delimited by `${ }` (so they do
not clash with Helm's `{{ }}`), evaluated per target cluster. fleet implements a safe,
documented subset, evaluated in Python (no code execution, no file or network access):

Context (what `.X` may name):
  `.ClusterName`, `.ClusterLabels.<key>`, `.ClusterAnnotations.<key>`, `.ClusterNamespace`
  (fleet has no per-cluster namespace: always `fleet-default`, as in Rancher's default) and
  `.ClusterValues` (always empty here). `.` is the whole context.
Syntax:
  field chains (`.ClusterLabels.env`), string literals ("..." or `...`), integers, true,
  false, function calls (`get .ClusterLabels "env"`), pipes (`x | upper`, the piped value is
  the last argument, as in Go) and parentheses.
Functions:
  get MAP KEY ("" when missing), index MAP KEY..., default DEFAULT VALUE, quote, squote,
  upper, lower, title, trim, trimPrefix PREFIX S, trimSuffix SUFFIX S, replace OLD NEW S,
  trunc N S, toString, toJson, hasKey MAP KEY, required MSG VALUE, cat A B...
Missing keys:
  like Rancher (`missingkey=error`), `.ClusterLabels.nope` is an error when the label is
  absent; use `get .ClusterLabels "nope"` or `default` to make it optional.
Types:
  a string that is exactly one `${ ... }` takes the value's type: a label "3" becomes the
  integer 3, "true"/"false" booleans (Rancher re-parses templated YAML the same way); use
  `quote` to keep a string. Inside a longer string the value is inserted as text.
Keys of mappings are templated too. `helm.disablePreProcess: true` turns all of this off.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.spec.cluster import ClusterContext
from fleet.spec.validation import did_you_mean

_ACTION = re.compile(r"\$\{(.*?)\}", re.DOTALL)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
      | (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
      | (?P<number>-?\d+)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[|()])
    )""",
    re.VERBOSE,
)
_INT = re.compile(r"^-?(0|[1-9]\d*)$")
_FLOAT = re.compile(r"^-?\d+\.\d+$")
DEFAULT_CLUSTER_NAMESPACE = "fleet-default"


class TemplateError(Exception):
    """A template that cannot be parsed or evaluated; `path` is where in the values."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _empty(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == "" or value in ({}, [])


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _required(msg: Any, value: Any) -> Any:
    if _empty(value):
        raise TemplateError(_text(msg))
    return value


def _index(mapping: Any, *keys: Any) -> Any:
    for key in keys:
        mapping = mapping.get(key, "") if isinstance(mapping, Mapping) else ""
    return mapping


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "get": lambda m, k: m.get(k, "") if isinstance(m, Mapping) else "",
    "index": _index,
    "hasKey": lambda m, k: isinstance(m, Mapping) and k in m,
    "default": lambda d, *v: d if not v or _empty(v[0]) else v[0],
    "quote": lambda *v: " ".join(json.dumps(_text(x)) for x in v),
    "squote": lambda *v: " ".join(f"'{_text(x)}'" for x in v),
    "upper": lambda s: _text(s).upper(),
    "lower": lambda s: _text(s).lower(),
    "title": lambda s: _text(s).title(),
    "trim": lambda s: _text(s).strip(),
    "trimPrefix": lambda p, s: _text(s).removeprefix(_text(p)),
    "trimSuffix": lambda p, s: _text(s).removesuffix(_text(p)),
    "replace": lambda old, new, s: _text(s).replace(_text(old), _text(new)),
    "trunc": lambda n, s: _text(s)[:n] if n >= 0 else _text(s)[n:],
    "toString": _text,
    "toJson": lambda v: json.dumps(v, sort_keys=True),
    "required": _required,
    "cat": lambda *v: " ".join(_text(x) for x in v if x is not None),
}


@dataclass(frozen=True)
class _Node:
    kind: str  # field | literal | call | pipe
    value: Any
    args: tuple[_Node, ...] = ()


def build_context(
    name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
    namespace: str = DEFAULT_CLUSTER_NAMESPACE,
) -> dict[str, Any]:
    """The template context of one cluster (Rancher's names)."""
    return {
        "ClusterName": name,
        "ClusterLabels": dict(labels),
        "ClusterAnnotations": dict(annotations or {}),
        "ClusterNamespace": namespace,
        "ClusterValues": {},
    }


def template_context(cluster: ClusterContext) -> dict[str, Any]:
    """`build_context` for a ClusterContext (annotations when it is a TargetCluster).

    Renderers use this to template the *contents* of `helm.valuesFiles` the way Rancher
    does (targeting templates the inline `helm.values` itself).
    """
    annotations = getattr(cluster, "annotations", None)
    return build_context(cluster.name, cluster.labels, annotations if annotations else None)


def has_template(value: Any) -> bool:
    """Does any string (or key) in a values tree contain `${`?"""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, Mapping):
        return any(has_template(k) or has_template(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


def render_values(values: Any, context: Mapping[str, Any], path: tuple[str | int, ...] = ()) -> Any:
    """A copy of `values` with every `${ }` evaluated; raises TemplateError with its path."""
    if isinstance(values, str):
        if "${" not in values:
            return values
        try:
            return render_string(values, context)
        except TemplateError as err:
            raise TemplateError(err.message, path) from None
    if isinstance(values, Mapping):
        return {
            (_render_key(k, context, path) if isinstance(k, str) else k): render_values(
                v, context, (*path, k)
            )
            for k, v in values.items()
        }
    if isinstance(values, list):
        return [render_values(v, context, (*path, i)) for i, v in enumerate(values)]
    return values


def _render_key(key: str, context: Mapping[str, Any], path: tuple[str | int, ...]) -> str:
    """A templated key is always text: `${ .ClusterLabels.port }` gives "8080", not 8080.

    Helm values (and the JSON fleet hashes them as) only have string keys; keeping the
    value's type here, as for values, would mix int and str keys in one mapping.
    """
    rendered = render_values(key, context, path)
    return rendered if isinstance(rendered, str) else _text(rendered)


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one string; a string that is a single action keeps the value's type."""
    parts = _compile(text)
    if len(parts) == 1 and isinstance(parts[0], _Node):
        return _retype(_eval(parts[0], context))
    return "".join(p if isinstance(p, str) else _text(_eval(p, context)) for p in parts)


@dataclass(frozen=True)
class TemplateUses:
    """Which parts of the cluster context a set of templates reads (None = all of it).

    Targeting keys its per-cluster cache on `key(...)`, so a template that reads only the
    `region` label is evaluated once per region, not once per cluster.
    """

    name: bool = False
    labels: frozenset[str] | None = frozenset()
    annotations: frozenset[str] | None = frozenset()

    def key(
        self, name: str, labels: Mapping[str, str], annotations: Mapping[str, str]
    ) -> tuple[Any, ...]:
        return (
            name if self.name else None,
            tuple(sorted(labels.items()))
            if self.labels is None
            else tuple(labels.get(k) for k in sorted(self.labels)),
            tuple(sorted(annotations.items()))
            if self.annotations is None
            else tuple(annotations.get(k) for k in sorted(self.annotations)),
        )


EVERYTHING = TemplateUses(True, None, None)


def template_uses(values: Any) -> TemplateUses:
    """What the templates in a values tree read; syntax errors raise TemplateError."""
    name, labels, annotations = False, set[str](), set[str]()
    all_labels = all_annotations = False
    stack: list[Any] = [values]
    nodes: list[_Node] = []
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "${" in value:
                nodes.extend(p for p in _compile(value) if isinstance(p, _Node))
        elif isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    while nodes:
        node = nodes.pop()
        nodes.extend(node.args)
        if node.kind != "field":
            continue
        path = node.value
        if not path:
            return EVERYTHING
        if path[0] == "ClusterName":
            name = True
        elif path[0] == "ClusterLabels":
            if len(path) > 1:
                labels.add(path[1])
            else:
                all_labels = True
        elif path[0] == "ClusterAnnotations":
            if len(path) > 1:
                annotations.add(path[1])
            else:
                all_annotations = True
    return TemplateUses(
        name,
        None if all_labels else frozenset(labels),
        None if all_annotations else frozenset(annotations),
    )


def check_template(text: str) -> None:
    """Parse only (unknown functions, syntax); raises TemplateError."""
    _compile(text)


def _retype(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            return value
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    return {"true": True, "false": False, "null": None}.get(value, value)


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> tuple[str | _Node, ...]:
    parts: list[str | _Node] = []
    pos = 0
    for match in _ACTION.finditer(text):
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        parts.append(_parse(match.group(1)))
        pos = match.end()
    if "${" in text[pos:]:
        raise TemplateError("unterminated '${' (missing '}')")
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(p for p in parts if p != "")


def _tokens(source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    source = source.rstrip()
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"cannot parse template near {source[pos:].strip()!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _parse(source: str) -> _Node:
    tokens = _tokens(source)
    if not tokens:
        raise TemplateError("empty template action '${ }'")
    node, rest = _pipeline(tokens)
    if rest:
        raise TemplateError(f"unexpected {rest[0][1]!r} in template")
    return node


def _pipeline(tokens: list[tuple[str, str]]) -> tuple[_Node, list[tuple[str, str]]]:
    node, tokens = _command(tokens)
    while tokens and tokens[0] == ("punct", "|"):
        nxt, tokens = _command(tokens[1:])
        if nxt.kind != "call":
            raise TemplateError("only a function can follow '|'")
        node = _Node("call", nxt.value, (*nxt.args, node))
    return node, tokens


def _command(tokens: list[tuple[str, str]]) -> tuple[_Node, list[tuple[str, str]]]:
    if not tokens:
        raise TemplateError("missing value in template")
    kind, text = tokens[0]
    if kind == "ident" and text not in ("true", "false", "nil"):
        if text not in FUNCTIONS:
            raise TemplateError(
                f"unknown template function '{text}'" + did_you_mean(text, FUNCTIONS)
            )
        args: list[_Node] = []
        tokens = tokens[1:]
        while tokens and tokens[0] not in (("punct", "|"), ("punct", ")")):
            arg, tokens = _operand(tokens)
            args.append(arg)
        return _Node("call", text, tuple(args)), tokens
    node, tokens = _operand(tokens)
    if tokens and tokens[0] not in (("punct", "|"), ("punct", ")")):
        raise TemplateError(f"unexpected {tokens[0][1]!r} after a value (missing a function?)")
    return node, tokens


def _operand(tokens: list[tuple[str, str]]) -> tuple[_Node, list[tuple[str, str]]]:
    kind, text = tokens[0]
    rest = tokens[1:]
    if kind == "field":
        return _Node("field", tuple(p for p in text.split(".") if p)), rest
    if kind == "string":
        value = text[1:-1] if text.startswith("`") else json.loads(text)
        return _Node("literal", value), rest
    if kind == "number":
        return _Node("literal", int(text)), rest
    if kind == "ident" and text in ("true", "false", "nil"):
        return _Node("literal", {"true": True, "false": False, "nil": None}[text]), rest
    if kind == "ident":  # a function in argument position is called without arguments
        if text not in FUNCTIONS:
            raise TemplateError(
                f"unknown template function '{text}'" + did_you_mean(text, FUNCTIONS)
            )
        return _Node("call", text, ()), rest
    if text == "(":
        node, rest = _pipeline(rest)
        if not rest or rest[0] != ("punct", ")"):
            raise TemplateError("missing ')' in template")
        return node, rest[1:]
    raise TemplateError(f"unexpected {text!r} in template")


def _eval(node: _Node, context: Mapping[str, Any]) -> Any:
    if node.kind == "literal":
        return node.value
    if node.kind == "field":
        value: Any = context
        for depth, key in enumerate(node.value):
            if not isinstance(value, Mapping) or key not in value:
                where = "." + ".".join(node.value[:depth]) if depth else "the context"
                raise TemplateError(f"map has no entry for key '{key}' in {where}")
            value = value[key]
        return value
    args = [_eval(arg, context) for arg in node.args]
    try:
        return FUNCTIONS[node.value](*args)
    except TemplateError:
        raise
    except (TypeError, ValueError, AttributeError) as err:
        raise TemplateError(f"{node.value}: {err}") from None
