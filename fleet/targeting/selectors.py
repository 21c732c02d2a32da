"""Kubernetes label selectors, compiled once and matched fast.

Semantics follow Kubernetes' `LabelSelector`:

- `matchLabels` and `matchExpressions` are ANDed; every entry must hold.
- `In`: the label is present and its value is one of `values`.
- `NotIn`: the label is absent, or its value is not one of `values` (absent matches, as in
  Kubernetes).
- `Exists` / `DoesNotExist`: the key is / is not present (`values` must be empty).
- An empty selector (`{}`) matches every cluster, like an empty Kubernetes LabelSelector.
  A *missing* selector is a different thing: callers decide what "no selector" means (for a
  target or customization it means "this criterion is not used").

Targeting evaluates selectors once per (bundle, cluster, customization), i.e. hundreds of
thousands of times for a large fleet, so a selector is compiled into tuples and frozensets
and `matches` does nothing but dictionary look-ups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleet.spec.bundle_options import LabelSelector

_IN, _NOT_IN, _EXISTS, _DOES_NOT_EXIST = 0, 1, 2, 3
_OPERATORS = {"In": _IN, "NotIn": _NOT_IN, "Exists": _EXISTS, "DoesNotExist": _DOES_NOT_EXIST}


@dataclass(frozen=True, slots=True)
class CompiledSelector:
    """A label selector ready for fast matching; build it with `compile_selector`."""

    labels: tuple[tuple[str, str], ...]
    expressions: tuple[tuple[str, int, frozenset[str]], ...]

    @property
    def matches_everything(self) -> bool:
        return not self.labels and not self.expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when `labels` satisfy every matchLabels entry and every expression."""
        get = labels.get
        for key, value in self.labels:
            if get(key) != value:
                return False
        for key, op, values in self.expressions:
            actual = get(key)
            if op == _IN:
                if actual is None or actual not in values:
                    return False
            elif op == _NOT_IN:
                if actual is not None and actual in values:
                    return False
            elif op == _EXISTS:
                if actual is None:
                    return False
            elif actual is not None:  # DoesNotExist
                return False
        return True


MATCH_ALL = CompiledSelector((), ())


def compile_selector(selector: LabelSelector | None) -> CompiledSelector:
    """Compile a validated selector; None and `{}` both give a selector that matches all."""
    if selector is None:
        return MATCH_ALL
    return CompiledSelector(
        labels=tuple(sorted(selector.match_labels.items())),
        expressions=tuple(
            (req.key, _OPERATORS[req.operator], frozenset(req.values))
            for req in selector.match_expressions
        ),
    )


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Convenience for one-off checks; hot paths should keep a `CompiledSelector`."""
    return compile_selector(selector).matches(labels)
