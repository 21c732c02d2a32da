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

The comment must be exactly the marker's JSON (`json.loads` of everything after `#`): a
typo is reported rather than half-applied. A marker naming a policy the definition does
not have is reported and left alone. Values from a scan are checked against the OCI
grammar before they are written, so a registry cannot put YAML into a bundle file.

`rewrite_tree` applies this to the `*.yaml`/`*.yml` files under some repository
directories, with the repository's path rules (`fleet.spec.pathsafety`): nothing outside
the root, symlinks never followed, regular files of at most 8 MiB only.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

import yaml

from fleet.errors import FleetError
from fleet.images.model import ImageChoice, MarkerChange
from fleet.spec.pathsafety import read_inside, resolve_inside

MARKER_KEY = "$imagepolicy"
YAML_SUFFIXES = (".yaml", ".yml")
FIELDS = ("tag", "name", "digest")  # "POLICY:FIELD"; plain "POLICY" is the full reference

# What a scan may write (the OCI distribution grammar, loosely for repositories): nothing
# that could end a scalar, open a comment or need escaping in any quoting style.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Fa-f0-9]{32,}")
_REPOSITORY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]|/(?!/)|:(?=[0-9]))*(?<![/:])")
_MAX_REPOSITORY = 255
_INDICATORS = "&*!|>%@`'\"{}[],#?:-"  # a plain scalar starting with one is not a plain value


def rewrite_text(
    text: str, path: str, choices: Mapping[str, ImageChoice]
) -> tuple[str, list[MarkerChange], list[str]]:
    """`text` with every marker's scalar set to what its policy's choice says.

    Returns (new text, the changes, warnings as "path:line: message"). `path` is the
    file's repository-relative name, used in changes and warnings only. Lines without a
    marker, and markers already current, are not touched; line endings (LF, CRLF, none at
    the end) are kept as they are. The text is returned unchanged when nothing changed.
    """
    if MARKER_KEY not in text:
        return text, [], []
    lines = text.split("\n")
    changes: list[MarkerChange] = []
    warnings: list[str] = []
    for index, raw in enumerate(lines):
        if MARKER_KEY not in raw:
            continue
        body, eol = (raw[:-1], "\r") if raw.endswith("\r") else (raw, "")
        where = f"{path}:{index + 1}"
        result = _rewrite_line(body, choices)
        if isinstance(result, str):
            warnings.append(f"{where}: {result}")
            continue
        if result is None:
            continue
        new_body, policy, old, new, note = result
        if note:
            warnings.append(f"{where}: {note}")
        if new_body != body:
            lines[index] = new_body + eol
            changes.append(MarkerChange(path, index + 1, policy, old, new))
    if not changes:
        return text, [], warnings
    return "\n".join(lines), changes, warnings


def rewrite_tree(
    root: Path, paths: Sequence[str], choices: Mapping[str, ImageChoice]
) -> tuple[list[MarkerChange], list[str]]:
    """Rewrite the markers of every `*.yaml`/`*.yml` file under `paths`, in place.

    `paths` are directories (or files) relative to `root`; "" and "." mean the whole
    repository. A path that leaves the root, or reaches it through a symlink, is a
    FleetError (the definition names them: the user fixes it). During the walk `.git`,
    symlinks and anything not a regular file are skipped; a file larger than 8 MiB, not
    UTF-8 or missing is a warning. Returns (changes sorted by file and line, warnings).
    """
    real_root = root.resolve()
    files: dict[str, Path] = {}
    warnings: list[str] = []
    for written in paths:
        relpath = written.strip()
        relpath = "" if relpath in ("", ".", "./") else relpath.rstrip("/")
        target = _checked_path(real_root, relpath, written)
        if not target.exists():
            warnings.append(f"image update path '{written}' does not exist")
        elif target.is_dir():
            files.update(_walk(real_root, target, warnings))
        elif target.is_file() and target.name.endswith(YAML_SUFFIXES):
            files[target.relative_to(real_root).as_posix()] = target
    changes: list[MarkerChange] = []
    for relpath in sorted(files):
        try:
            data = read_inside(real_root, real_root, relpath, what="image update file")
        except FleetError as err:
            warnings.append(err.reason)
            continue
        if MARKER_KEY.encode() not in data:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            warnings.append(f"{relpath}: not valid UTF-8 text, markers not read")
            continue
        new_text, found, notes = rewrite_text(text, relpath, choices)
        warnings.extend(notes)
        if found:
            _replace_file(files[relpath], new_text.encode("utf-8"))
            changes.extend(found)
    return changes, warnings


def parse_marker(comment: str) -> tuple[str, str | None]:
    """(policy, field or None) of a marker comment's text after `#`; ValueError if it is
    not exactly `{"$imagepolicy": "POLICY"}` or `{"$imagepolicy": "POLICY:FIELD"}`."""
    try:
        value = json.loads(comment)
    except ValueError:
        raise ValueError("marker comment is not valid JSON") from None
    if not isinstance(value, dict) or set(value) != {MARKER_KEY}:
        raise ValueError(f'a marker is exactly {{"{MARKER_KEY}": "POLICY[:FIELD]"}}')
    name = value[MARKER_KEY]
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{MARKER_KEY} must name a policy")
    policy, sep, part = name.partition(":")
    if not sep:
        return policy, None
    if part not in FIELDS or not policy:
        raise ValueError(f"marker '{name}': the form is POLICY or POLICY:{{{','.join(FIELDS)}}}")
    return policy, part


# ------------------------------------------------------------------------------ one line

_Rewritten = tuple[str, str, str, str, str | None]  # new line, policy, old, new, note


def _rewrite_line(line: str, choices: Mapping[str, ImageChoice]) -> _Rewritten | str | None:
    """The rewritten line, a warning (str), or None (no marker comment on this line)."""
    scan = _scan(line)
    if scan is None:
        return "a marker with an unterminated quote is not read"
    comment_at, quoted = scan
    if comment_at is None:
        return None  # "$imagepolicy" is inside a value, not in a comment
    comment = line[comment_at + 1 :].strip()
    if MARKER_KEY not in comment or not comment.startswith("{"):
        return None  # prose about markers, not a marker
    before = line[:comment_at].rstrip(" \t")
    if not before or before.lstrip().startswith("#"):
        return None  # a whole-line comment: a commented-out marker is not a marker
    try:
        policy, part = parse_marker(comment)
    except ValueError as err:
        return str(err)
    choice = choices.get(policy)
    if choice is None:
        return f"marker names the image policy '{policy}', which is not defined"
    span = _value_span(before, quoted)
    if isinstance(span, str):
        return span
    start, end, quote = span
    old = before[start:end] if not quote else before[start + 1 : end - 1]
    wanted = _wanted(choice, part, old)
    if isinstance(wanted, str):
        return wanted
    new, note = wanted
    if new == old:
        return line, policy, old, new, note
    written = f"{quote}{new}{quote}" if quote else _plain(new)
    return line[:start] + written + line[end:], policy, old, new, note


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


# ------------------------------------------------------------------------------ files


def _checked_path(real_root: Path, relpath: str, written: str) -> Path:
    """The real path of `relpath` inside the root, refused when a symlink leads there."""
    if not relpath:
        return real_root
    if ".git" in PurePosixPath(relpath).parts:
        raise FleetError(f"image update path '{written}' is inside .git")
    target = resolve_inside(real_root, real_root, relpath, what="image update path")
    if target != Path(os.path.normpath(real_root / relpath)):
        raise FleetError(f"image update path '{written}' goes through a symlink; not followed")
    return target


def _walk(real_root: Path, top: Path, warnings: list[str]) -> dict[str, Path]:
    """{repository-relative name: path} of the YAML files under `top`, no symlink followed."""
    found: dict[str, Path] = {}
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as err:
            warnings.append(f"{directory.relative_to(real_root)}: cannot be read: {err.strerror}")
            continue
        for entry in entries:
            path = Path(entry.path)
            rel = path.relative_to(real_root).as_posix()
            if entry.name == ".git":
                continue
            if entry.is_symlink():
                if entry.name.endswith(YAML_SUFFIXES):
                    warnings.append(f"{rel}: a symlink, markers not read")
            elif entry.is_dir(follow_symlinks=False):
                stack.append(path)
            elif entry.is_file(follow_symlinks=False) and entry.name.endswith(YAML_SUFFIXES):
                found[rel] = path
    return found


def _replace_file(path: Path, data: bytes) -> None:
    """Write `data` over `path` atomically, keeping the file's mode."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
