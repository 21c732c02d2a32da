"""Semver ranges for tag refs (`>=1.2.0 <2`, `~1.4`, `^1.2`, `1.x`, `>=1 <2 || 3.x`).

The syntax is the one Flux (Masterminds/semver) and npm users write, evaluated with the
`semver` package's `Version` ordering:

- comparators `=`, `>`, `>=`, `<`, `<=` with full or partial versions; a partial version is
  padded with zeros, except `>1.2` means `>=1.3.0` and `<=1.2` means `<1.3.0`;
- `~1.4` -> `>=1.4.0 <1.5.0` (`~1` -> `<2.0.0`); `^1.2.3` -> `<2.0.0`, `^0.2` -> `<0.3.0`;
- `1.4`, `1.4.x`, `1.*`, `*` -> everything in that prefix;
- space or comma separated comparators must all hold; `||` separates alternatives.

Tags may carry a leading `v`. Pre-releases match only when a comparator of the range names a
pre-release itself (npm and Masterminds do the same), so `>=1.0.0` never picks `2.0.0-rc.1`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from semver import Version

_PARTIAL = re.compile(
    r"^v?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*]))?(?:\.(?P<patch>\d+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
_COMPARATOR = re.compile(r"^(?P<op>>=|<=|>|<|=|~|\^)?\s*(?P<version>\S+)$")
_OPS: dict[str, Callable[[Version, Version], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "=": operator.eq,
}


@dataclass(frozen=True)
class Comparator:
    op: str
    version: Version

    def holds(self, candidate: Version) -> bool:
        return _OPS[self.op](candidate, self.version)


@dataclass(frozen=True)
class SemverRange:
    """Alternatives (`||`), each a conjunction of comparators."""

    text: str
    alternatives: tuple[tuple[Comparator, ...], ...]

    @property
    def allows_prerelease(self) -> bool:
        return any(c.version.prerelease for alt in self.alternatives for c in alt)

    def matches(self, candidate: Version) -> bool:
        if candidate.prerelease and not self.allows_prerelease:
            return False
        return any(all(c.holds(candidate) for c in alt) for alt in self.alternatives)

    def best(self, tags: Iterable[str]) -> str | None:
        """The tag with the highest version in the range (ties: the longer name, e.g. `v`)."""
        found: list[tuple[Version, str]] = []
        for tag in tags:
            version = parse_tag_version(tag)
            if version is not None and self.matches(version):
                found.append((version, tag))
        if not found:
            return None
        return max(found, key=lambda item: (item[0], len(item[1]), item[1]))[1]


def parse_tag_version(tag: str) -> Version | None:
    """The full semver of a tag name (`v1.2.3`, `1.2.3-rc.1`), or None if it is not one."""
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    if not Version.is_valid(text):
        return None
    return Version.parse(text)


def parse_range(text: str) -> SemverRange | None:
    """The range written in `text`, or None if `text` is not a semver range at all."""
    alternatives: list[tuple[Comparator, ...]] = []
    for alternative in text.split("||"):
        # `>= 1.2` is one comparator: glue an operator to the version after it.
        glued = re.sub(r"(>=|<=|>|<|=|~|\^)\s+", r"\1", alternative.replace(",", " "))
        words = glued.split()
        if not words:
            return None
        comparators: list[Comparator] = []
        for word in words:
            parsed = _parse_comparator(word)
            if parsed is None:
                return None
            comparators.extend(parsed)
        alternatives.append(tuple(comparators))
    return SemverRange(text, tuple(alternatives))


def _parse_comparator(word: str) -> list[Comparator] | None:
    match = _COMPARATOR.match(word)
    if not match:
        return None
    op = match["op"] or ""
    partial = _PARTIAL.match(match["version"])
    if not partial:
        return None
    numbers: list[int] = []
    for part in (partial["major"], partial["minor"], partial["patch"]):
        if part is None or not part.isdigit():
            break
        numbers.append(int(part))
    pre = partial["pre"]
    if pre and len(numbers) < 3:
        return None
    if not numbers:  # `*`, `x`: anything (a lower bound of 0.0.0 says so)
        return [Comparator(">=", Version(0, 0, 0))]
    major, minor, patch = numbers + [0] * (3 - len(numbers))
    low = Version(major, minor, patch, prerelease=pre)
    exact = len(numbers) == 3
    next_up = _bump(numbers)
    if op in ("", "=") and exact:
        return [Comparator("=", low)]
    if op in ("", "="):
        return [Comparator(">=", low), Comparator("<", next_up)]
    if op == "~":
        upper = _bump(numbers[:2]) if len(numbers) >= 2 else next_up
        return [Comparator(">=", low), Comparator("<", upper)]
    if op == "^":
        return [Comparator(">=", low), Comparator("<", _caret_upper(numbers))]
    if op == ">" and not exact:
        return [Comparator(">=", next_up)]
    if op == "<=" and not exact:
        return [Comparator("<", next_up)]
    return [Comparator(op, low)]


def _bump(numbers: list[int]) -> Version:
    """The first version after every version that starts with `numbers`."""
    bumped = [*numbers[:-1], numbers[-1] + 1]
    major, minor, patch = bumped + [0] * (3 - len(bumped))
    return Version(major, minor, patch)


def _caret_upper(numbers: list[int]) -> Version:
    """`^` allows changes that keep the left-most non-zero part (npm's rule)."""
    padded = numbers + [0] * (3 - len(numbers))
    for index, value in enumerate(padded[: len(numbers)]):
        if value != 0 or index == len(numbers) - 1:
            return _bump(padded[: index + 1])
    return _bump(numbers)
