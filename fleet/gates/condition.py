"""`successCondition`: a small, safe expression over a measured value, never `eval()`.

Argo Rollouts writes conditions as `result[0] < 0.05`; Flagger users think in thresholds.
A gate's condition comes from Git, so it is parsed here by a recursive-descent parser into
a tiny tree that can only compare numbers: no names but `result`, no calls but `isNaN` and
`isInf`, no attribute access, no arithmetic. It is parsed when the gate is built (a commit
is loaded), so a syntax error is reported at the file and line of `successCondition`.

Grammar (`and`/`&&`, `or`/`||`, `not`/`!` are the same operators):

    condition  := or
    or         := and (("or" | "||") and)*
    and        := not (("and" | "&&") not)*
    not        := ("not" | "!") not | comparison
    comparison := number_expr (("<" | "<=" | ">" | ">=" | "==" | "!=") number_expr)?
    primary    := NUMBER | "result" | "result[0]" | "isNaN(result)" | "isInf(result)"
                | "true" | "false" | "-" primary | "(" or ")"

A comparison needs two numbers; `and`, `or`, `not` need truth values; the whole condition
must be a truth value. Comparisons follow IEEE 754 (NaN compares false, except `!=`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

_TOKEN = re.compile(
    r"""(?:
        (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<op><=|>=|==|!=|&&|\|\||[<>()!\[\]-])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_ALIASES = {"&&": "and", "||": "or", "!": "not"}
_MAX_LENGTH = 500

Kind = Literal["number", "truth"]


class ConditionError(ValueError):
    """The condition does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class _Node:
    kind: Kind
    evaluate: Callable[[float], float | bool]


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition: `holds(value)` says whether `value` satisfies it."""

    text: str
    uses_nan: bool  # mentions isNaN(result): it decides NaN itself
    _root: _Node

    def holds(self, result: float) -> bool:
        return bool(self._root.evaluate(result))

    def __str__(self) -> str:
        return self.text


def parse_condition(text: str) -> Condition:
    """Parse `text`; ConditionError with a one-line reason when it is not a condition."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("expected a condition like 'result < 0.05'")
    if len(text) > _MAX_LENGTH:
        raise ConditionError(f"longer than {_MAX_LENGTH} characters")
    parser = _Parser(_tokenize(text))
    root = parser.parse_or()
    if parser.peek() is not None:
        raise ConditionError(f"unexpected {parser.peek()!r}")
    if root.kind != "truth":
        raise ConditionError("the condition compares nothing (try 'result < 0.05')")
    return Condition(text.strip(), parser.uses_nan, root)


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return tokens
        match = _TOKEN.match(text, position)
        if match is None:
            hint = " (use == to compare)" if text[position] == "=" else ""
            raise ConditionError(
                f"unexpected character {text[position]!r} at column {position + 1}{hint}"
            )
        token = match.group("number") or match.group("op") or match.group("word") or ""
        tokens.append(_ALIASES.get(token, token))
        position = match.end()


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.index = 0
        self.uses_nan = False

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None:
            raise ConditionError(
                f"expected {expected!r} at the end" if expected else "the condition ends too early"
            )
        if expected is not None and token != expected:
            raise ConditionError(f"expected {expected!r}, found {token!r}")
        self.index += 1
        return token

    def parse_or(self) -> _Node:
        left = self.parse_and()
        while self.peek() == "or":
            self.take()
            left = _logic(left, self.parse_and(), "or")
        return left

    def parse_and(self) -> _Node:
        left = self.parse_not()
        while self.peek() == "and":
            self.take()
            left = _logic(left, self.parse_not(), "and")
        return left

    def parse_not(self) -> _Node:
        if self.peek() == "not":
            self.take()
            inner = _truth(self.parse_not(), "not")
            return _Node("truth", lambda r: not inner.evaluate(r))
        left = self.parse_primary()
        operator = self.peek()
        if operator not in _COMPARISONS:
            return left
        self.take()
        right = self.parse_primary()
        compare = _COMPARISONS[operator]
        a, b = _number(left, operator), _number(right, operator)
        return _Node("truth", lambda r: compare(float(a.evaluate(r)), float(b.evaluate(r))))

    def parse_primary(self) -> _Node:
        token = self.take()
        if token == "(":
            inner = self.parse_or()
            self.take(")")
            return inner
        if token == "-":
            operand = _number(self.parse_primary(), "-")
            return _Node("number", lambda r: -float(operand.evaluate(r)))
        if token[0].isdigit() or token[0] == ".":
            value = float(token)
            return _Node("number", lambda r: value)
        if token == "result":
            if self.peek() == "[":  # Argo's `result[0]`: the first (only) sample
                self.take("[")
                self.take("0")
                self.take("]")
            return _Node("number", lambda r: r)
        if token in ("true", "false"):
            constant = token == "true"
            return _Node("truth", lambda r: constant)
        if token in ("isNaN", "isInf"):
            self.take("(")
            argument = _number(self.parse_or(), token)
            self.take(")")
            if token == "isNaN":
                self.uses_nan = True
                return _Node("truth", lambda r: math.isnan(float(argument.evaluate(r))))
            return _Node("truth", lambda r: math.isinf(float(argument.evaluate(r))))
        if token[0].isalpha() or token[0] == "_":
            raise ConditionError(
                f"unknown name {token!r} (only result, isNaN(), isInf(), true, false)"
            )
        raise ConditionError(f"unexpected {token!r}")


def _number(node: _Node, where: str) -> _Node:
    if node.kind != "number":
        raise ConditionError(f"{where!r} needs a number, not a comparison")
    return node


def _truth(node: _Node, where: str) -> _Node:
    if node.kind != "truth":
        raise ConditionError(f"{where!r} needs a comparison, not a number")
    return node


def _logic(left: _Node, right: _Node, operator: str) -> _Node:
    a, b = _truth(left, operator), _truth(right, operator)
    if operator == "and":
        return _Node("truth", lambda r: bool(a.evaluate(r)) and bool(b.evaluate(r)))
    return _Node("truth", lambda r: bool(a.evaluate(r)) or bool(b.evaluate(r)))
