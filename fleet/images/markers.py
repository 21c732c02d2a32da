"""Setter markers in bundle files: find them, and rewrite the scalar each one sits on.

A marker is a YAML line comment that names an image policy, as in Flux (without the
namespace, since a fleet's policies live in one definition):

    image: reg:5000/team/web:1.0.0 # {"$imagepolicy": "web"}         repository:tag
    tag: 1.0.0 # {"$imagepolicy": "web:tag"}                         the tag only
    newName: reg:5000/team/web # {"$imagepolicy": "web:name"}        the repository only
    digest: sha256:... # {"$imagepolicy": "web:digest"}              the digest only

Why line based and not a YAML round trip: the files belong to people (comments, key
order, quoting, indentation, blank lines, CRLF), and a commit that re-serialises a file
buries the one-line change a reviewer wants to see. So only the scalar's characters
change: the key, the spacing, the quotes and the comment stay byte for byte. The price is
that only simple shapes are understood: `key: value`, `- value`, `- key: value`, quoted
('single', "double") or plain, and one-line flow collections whose last scalar carries the
marker (`{name: web, image: reg/web:1.0} # {...}`). Anything else with a marker (an
anchor, a tag, a multi-line scalar, an escape sequence) is reported, never guessed at.

A marker may also name the wave of its bundle it belongs to, for a policy promoted wave
by wave (`promotion: waves`, `fleet.images.promotion`):

    tag: 1.0.0 # {"$imagepolicy": "web:tag", "$wave": "canary"}

The comment must be exactly the marker's JSON (`json.loads` of everything after `#`): a
typo (another key, a `$wave` that is not a string) is reported rather than half-applied.
A marker naming a policy the definition does not have is reported and left alone. Values
from a scan are checked against the OCI grammar before they are written, so a registry
cannot put YAML into a bundle file.

`rewrite_tree` applies this to the `*.yaml`/`*.yml` files under some repository
directories, with the repository's path rules (`fleet.images.files`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import yaml

from fleet.images.files import MARKER_KEY, marker_texts, replace_file
from fleet.images.model import BEHIND, BROKEN, CURRENT, ImageChoice, MarkerChange, MarkerSite

WAVE_KEY = "$wave"
MAX_WAVE = 253  # a wave name is a definition's or a partition's name: short
FIELDS = ("tag", "name", "digest")  # "POLICY:FIELD"; plain "POLICY" is the full reference

# What a scan may write (the OCI distribution grammar, loosely for repositories): nothing
# that could end a scalar, open a comment or need escaping in any quoting style.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Fa-f0-9]{32,}")
_REPOSITORY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]|/(?!/)|:(?=[0-9]))*(?<![/:])")
_MAX_REPOSITORY = 255
_INDICATORS = "&*!|>%@`'\"{}[],#?:-"  # a plain scalar starting with one is not a plain value


# `select(path, line, policy)`: rewrite this marker? (default: every marker)
Select = Callable[[str, int, str], bool]


class Marker(NamedTuple):
    """A parsed marker comment: the policy, the field (None: the full reference) and the
    wave it belongs to (None: no `$wave`)."""

    policy: str
    field: str | None
    wave: str | None = None


def rewrite_text(
    text: str, path: str, choices: Mapping[str, ImageChoice], select: Select | None = None
) -> tuple[str, list[MarkerChange], list[str]]:
    """`text` with every marker's scalar set to what its policy's choice says.

    Returns (new text, the changes, warnings as "path:line: message"). `path` is the
    file's repository-relative name, used in changes and warnings only. Lines without a
    marker, and markers already current, are not touched; line endings (LF, CRLF, none at
    the end) are kept as they are. The text is returned unchanged when nothing changed.
    `select` False for a marker: it is left as it is, and nothing is said about it.
    """
    new_text, changes, warnings, _ = _process(text, path, choices, select)
    return new_text, changes, warnings


def survey_text(
    text: str, path: str, choices: Mapping[str, ImageChoice]
) -> tuple[list[MarkerSite], list[str]]:
    """Every marker of a policy in `choices`, with its wave and whether its value is the
    choice's already (`current`), would change (`behind`) or cannot be written
    (`broken`); and the warnings. Nothing is rewritten: the promotion step reads this."""
    _, _, warnings, sites = _process(text, path, choices, None)
    return sites, warnings


def _process(
    text: str, path: str, choices: Mapping[str, ImageChoice], select: Select | None
) -> tuple[str, list[MarkerChange], list[str], list[MarkerSite]]:
    if MARKER_KEY not in text:
        return text, [], [], []
    lines = text.split("\n")
    changes: list[MarkerChange] = []
    warnings: list[str] = []
    sites: list[MarkerSite] = []
    for index, raw in enumerate(lines):
        if MARKER_KEY not in raw:
            continue
        body, eol = (raw[:-1], "\r") if raw.endswith("\r") else (raw, "")
        where = f"{path}:{index + 1}"
        marker, result = _rewrite_line(body, choices)
        if marker is not None and select is not None and not select(path, index + 1, marker.policy):
            continue
        if isinstance(result, str):
            warnings.append(f"{where}: {result}")
            if marker is not None and marker.policy in choices:
                sites.append(MarkerSite(path, index + 1, marker.policy, marker.wave, BROKEN))
            continue
        if result is None or marker is None:
            continue
        new_body, old, new, note = result
        if note:
            warnings.append(f"{where}: {note}")
        state = CURRENT if new_body == body else BEHIND
        sites.append(MarkerSite(path, index + 1, marker.policy, marker.wave, state))
        if new_body != body:
            lines[index] = new_body + eol
            changes.append(MarkerChange(path, index + 1, marker.policy, old, new, marker.wave))
    if not changes:
        return text, [], warnings, sites
    return "\n".join(lines), changes, warnings, sites


def rewrite_tree(
    root: Path,
    paths: Sequence[str],
    choices: Mapping[str, ImageChoice],
    select: Select | None = None,
) -> tuple[list[MarkerChange], list[str]]:
    """Rewrite the markers of every `*.yaml`/`*.yml` file under `paths`, in place.

    `paths` are directories (or files) relative to `root`; "" and "." mean the whole
    repository. A path that leaves the root, or reaches it through a symlink, is a
    FleetError (the definition names them: the user fixes it). During the walk `.git`,
    symlinks and anything not a regular file are skipped; a file larger than 8 MiB, not
    UTF-8 or missing is a warning. Returns (changes sorted by file and line, warnings).
    `select`: as for `rewrite_text`.
    """
    changes: list[MarkerChange] = []
    warnings: list[str] = []
    for relpath, path, text in marker_texts(root, paths, warnings):
        new_text, found, notes = rewrite_text(text, relpath, choices, select)
        warnings.extend(notes)
        if found:
            replace_file(path, new_text.encode("utf-8"))
            changes.extend(found)
    return changes, warnings


def survey_tree(
    root: Path, paths: Sequence[str], choices: Mapping[str, ImageChoice]
) -> tuple[list[MarkerSite], list[str]]:
    """`survey_text` over the files `rewrite_tree` would rewrite (nothing is written)."""
    sites: list[MarkerSite] = []
    warnings: list[str] = []
    for relpath, _, text in marker_texts(root, paths, warnings):
        found, notes = survey_text(text, relpath, choices)
        sites.extend(found)
        warnings.extend(notes)
    return sites, warnings


def parse_marker(comment: str) -> Marker:
    """The marker of a comment's text after `#`; ValueError if it is not exactly
    `{"$imagepolicy": "POLICY[:FIELD]"}`, optionally with `"$wave": "WAVE"`."""
    try:
        value = json.loads(comment)
    except ValueError:
        raise ValueError("marker comment is not valid JSON") from None
    extra = set(value) - {MARKER_KEY, WAVE_KEY} if isinstance(value, dict) else set()
    if not isinstance(value, dict) or MARKER_KEY not in value or extra:
        raise ValueError(
            f'a marker is exactly {{"{MARKER_KEY}": "POLICY[:FIELD]"}}, optionally with '
            f'"{WAVE_KEY}": "WAVE"'
        )
    name = value[MARKER_KEY]
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{MARKER_KEY} must name a policy")
    wave = value.get(WAVE_KEY)
    if WAVE_KEY in value and (
        not isinstance(wave, str) or not wave.strip() or len(wave) > MAX_WAVE
    ):
        raise ValueError(f"{WAVE_KEY} must name a wave (a string)")
    policy, sep, part = name.partition(":")
    if not sep:
        return Marker(policy, None, wave)
    if part not in FIELDS or not policy:
        raise ValueError(f"marker '{name}': the form is POLICY or POLICY:{{{','.join(FIELDS)}}}")
    return Marker(policy, part, wave)


# ------------------------------------------------------------------------------ one line

_Rewritten = tuple[str, str, str, str | None]  # new line, old, new, note


def _rewrite_line(
    line: str, choices: Mapping[str, ImageChoice]
) -> tuple[Marker | None, _Rewritten | str | None]:
    """(the marker, when one parsed; the rewritten line, a warning (str), or None: no
    marker comment on this line)."""
    scan = _scan(line)
    if scan is None:
        return None, "a marker with an unterminated quote is not read"
    comment_at, quoted = scan
    if comment_at is None:
        return None, None  # "$imagepolicy" is inside a value, not in a comment
    comment = line[comment_at + 1 :].strip()
    if MARKER_KEY not in comment or not comment.startswith("{"):
        return None, None  # prose about markers, not a marker
    before = line[:comment_at].rstrip(" \t")
    if not before or before.lstrip().startswith("#"):
        return None, None  # a whole-line comment: a commented-out marker is not a marker
    try:
        marker = parse_marker(comment)
    except ValueError as err:
        return None, str(err)
    choice = choices.get(marker.policy)
    if choice is None:
        return marker, f"marker names the image policy '{marker.policy}', which is not defined"
    span = _value_span(before, quoted)
    if isinstance(span, str):
        return marker, span
    start, end, quote = span
    old = before[start:end] if not quote else before[start + 1 : end - 1]
    wanted = _wanted(choice, marker.field, old)
    if isinstance(wanted, str):
        return marker, wanted
    new, note = wanted
    if new == old:
        return marker, (line, old, new, note)
    written = f"{quote}{new}{quote}" if quote else _plain(new)
    return marker, (line[:start] + written + line[end:], old, new, note)


def _scan(line: str) -> tuple[int | None, list[tuple[int, int]]] | None:
    """(index of the `#` that opens the line's comment or None, the quoted scalars' spans),
    or None for a quote left open. A quote opens a scalar only where a token starts (after
    whitespace or a flow indicator), so `it's` in a plain scalar is no quote."""
    quoted: list[tuple[int, int]] = []
    i, n = 0, len(line)
    while i < n:
        char = line[i]
        token_start = i == 0 or line[i - 1] in " \t[{,"
        if char == "#" and (i == 0 or line[i - 1] in " \t"):
            return i, quoted
        if char in "'\"" and token_start:
            j = i + 1
            while j < n:
                if char == '"' and line[j] == "\\":
                    j += 2
                    continue
                if line[j] == char:
                    if char == "'" and j + 1 < n and line[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                return None
            quoted.append((i, j + 1))
            i = j + 1
            continue
        i += 1
    return None, quoted


def _value_span(before: str, quoted: list[tuple[int, int]]) -> tuple[int, int, str] | str:
    """(start, end, quote char or "") of the scalar that ends `before`, or a warning."""
    end = len(before)
    while end > 0 and before[end - 1] in " \t]}":
        end -= 1
    flow = any(c in "]}" for c in before[end:])
    if end == 0:
        return "a marker needs a value on its line"
    quote = before[end - 1] if before[end - 1] in "'\"" else ""
    if quote:
        span = next((s for s in quoted if s[1] == end), None)
        if span is None:
            return "the value before the marker is not understood"
        start = span[0]
        inner = before[start + 1 : end - 1]
        if "\\" in inner or "''" in inner:
            return "a quoted value with escapes is not rewritten"
    else:
        stops = " \t,[]{}" if flow else " \t"
        start = end
        while start > 0 and before[start - 1] not in stops:
            start -= 1
        if before[start] in _INDICATORS:
            return "the value before the marker is not a plain scalar"
    lead = before[:start].rstrip(" \t")
    spaced = start > len(lead)
    if lead.endswith(":") and spaced:
        return start, end, quote
    if lead.endswith("-") and spaced and (len(lead) == 1 or lead[-2] in " \t-"):
        return start, end, quote
    if flow and lead.endswith(("[", "{", ",")):
        return start, end, quote
    return "the value before the marker is not a `key: value` or `- value` scalar"


def _wanted(choice: ImageChoice, part: str | None, old: str) -> tuple[str, str | None] | str:
    """(the value the marker asks for, a note), or a warning when the choice cannot say."""
    bad = _invalid(choice)
    if bad:
        return f"image policy '{choice.policy}' chose {bad}; not written"
    if part == "tag":
        return choice.tag, None
    if part == "name":
        return choice.repository, None
    if part == "digest":
        if not choice.digest:
            return f"image policy '{choice.policy}' has no digest for {choice.reference}"
        return choice.digest, None
    if "@" not in old:
        return choice.reference, None
    if choice.digest:
        return f"{choice.reference}@{choice.digest}", None
    note = f"pinned by digest, but image policy '{choice.policy}' has no digest: written unpinned"
    return choice.reference, note


def _invalid(choice: ImageChoice) -> str | None:
    """What is wrong with a choice's values (None: all of them can be written as is)."""
    if len(choice.repository) > _MAX_REPOSITORY or not _REPOSITORY.fullmatch(choice.repository):
        return "a repository name that is not valid"
    if not _TAG.fullmatch(choice.tag):
        return "a tag that is not valid"
    if choice.digest is not None and not _DIGEST.fullmatch(choice.digest):
        return "a digest that is not valid"
    return None


def _plain(value: str) -> str:
    """`value` as a plain scalar, or double-quoted when YAML would read the plain form as
    something else (`1.10` is a float, `true` a boolean): Helm would get the wrong value."""
    try:
        read = yaml.safe_load(value)
    except yaml.YAMLError:
        read = None
    return value if read == value else f'"{value}"'
