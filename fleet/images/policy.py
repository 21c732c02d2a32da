"""Which tag an image policy picks from a repository's tags (pure: no I/O).

The order of the steps is Flux's (image-reflector-controller):

1. tags any `exclusionList` regex matches are dropped (default `^.*\\.sig$`, signatures);
2. with `filterTags`, only tags its `pattern` matches (searched, Go's `FindString`
   semantics: anchor it yourself) are kept, each ordered by its `extract` value
   (`$name`, `${name}`, `$1`, expanded as Go's `Regexp.Expand`; default the tag itself);
3. the policy orders what is left: `semver` picks the highest version inside the range
   (`fleet.source.semver`; a pre-release only when the range names one), `numerical`
   parses each value as a number (values that are not numbers are skipped) and `asc`
   picks the highest, `alphabetical` sorts the values and `asc` picks the last; `desc`
   inverts both.

Ties between tags with the same ordering value are broken by the tag name (the last in
sort order wins), so a scan picks the same tag whatever order the registry lists them in.
At most `MAX_TAGS` tags are considered; a repository with more is an error (a policy must
not pick from a silently truncated list), as is a tag over 128 characters (the
distribution grammar's bound), which is skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import TypeVar

from fleet.errors import FleetError
from fleet.source.semver import SemverRange, parse_range, parse_tag_version
from fleet.spec.image_policies import TEMPLATE_REF, ImagePolicySpec, TagFilter

MAX_TAGS = 100_000
MAX_TAG_LENGTH = 128
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


def semver_range(spec: ImagePolicySpec) -> SemverRange | None:
    """The policy's semver range, None when it is not a semver policy; FleetError when the
    range does not parse."""
    if spec.policy.semver is None:
        return None
    found = parse_range(spec.policy.semver.range)
    if found is None:
        raise FleetError(
            f"image policy {spec.name}: {spec.policy.semver.range!r} is not a semver range"
        )
    return found


def expand(template: str, match: re.Match[str]) -> str:
    """`template` with `$name`/`${name}`/`$1` replaced by `match`'s groups (Go's Expand:
    an unmatched group is empty, `$$` is a `$`)."""

    def one(ref: re.Match[str]) -> str:
        if ref.group(3):
            return "$"
        name = ref.group(1) or ref.group(2)
        try:  # an unknown name or number raises IndexError
            value = match.group(int(name) if name.isdigit() else name)
        except IndexError:
            return ""
        return value or ""

    return TEMPLATE_REF.sub(one, template)


def filtered(spec: ImagePolicySpec, tags: Iterable[str]) -> list[tuple[str, str]]:
    """(ordering value, tag) of every tag the exclusion list and `filterTags` keep."""
    exclusions = [re.compile(p) for p in spec.exclusion_list]
    tag_filter: TagFilter | None = spec.filter_tags
    pattern = tag_filter.compiled() if tag_filter is not None else None
    kept: list[tuple[str, str]] = []
    for count, tag in enumerate(tags):
        if count >= MAX_TAGS:
            raise FleetError(
                f"image policy {spec.name}: {spec.image} has over {MAX_TAGS} tags; "
                "fleet does not pick from a truncated list"
            )
        if len(tag) > MAX_TAG_LENGTH or any(e.search(tag) for e in exclusions):
            continue
        if pattern is None:
            kept.append((tag, tag))
            continue
        match = pattern.search(tag)
        if match is None:
            continue
        extract = tag_filter.extract if tag_filter is not None else None
        kept.append((expand(extract, match) if extract else tag, tag))
    return kept


def select_tag(spec: ImagePolicySpec, tags: Iterable[str]) -> str | None:
    """The tag `spec` picks from `tags`, or None when no tag qualifies."""
    candidates = filtered(spec, tags)
    kind = spec.policy.kind
    if kind == "semver":
        return _semver(spec, candidates)
    if kind == "numerical":
        assert spec.policy.numerical is not None
        return _ordered(_numbers(candidates), spec.policy.numerical.order)
    assert spec.policy.alphabetical is not None
    return _ordered(candidates, spec.policy.alphabetical.order)


def _semver(spec: ImagePolicySpec, candidates: Sequence[tuple[str, str]]) -> str | None:
    wanted = semver_range(spec)
    assert wanted is not None
    versions = []
    for value, tag in candidates:
        version = parse_tag_version(value)
        if version is not None and wanted.matches(version):
            versions.append((version, tag))
    if not versions:
        return None
    return max(versions, key=lambda item: (item[0], item[1]))[1]


def _numbers(candidates: Sequence[tuple[str, str]]) -> list[tuple[float, str]]:
    found = []
    for value, tag in candidates:
        if _NUMBER.fullmatch(value):  # not float()'s "1_000", "inf" or "nan"
            number = float(value)
            if math.isfinite(number):
                found.append((number, tag))
    return found


K = TypeVar("K", float, str)


def _ordered(candidates: Sequence[tuple[K, str]], order: str) -> str | None:
    if not candidates:
        return None
    ranked = sorted(candidates)
    if order == "asc":
        return ranked[-1][1]
    lowest = ranked[0][0]
    # desc: the lowest value; among equal values still the last tag name, as for asc
    return max(tag for value, tag in ranked if value == lowest)
