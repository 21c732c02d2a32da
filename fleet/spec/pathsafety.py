"""Nothing outside the repository is ever read: path checks shared by loading and rendering.

A fleet repository is untrusted input (anyone with push access writes it), and workers
hold cluster credentials, so a `valuesFiles: [../../../home/worker/.kube/config]` or a
symlink to `/etc` must fail before anything is opened. Every path a bundle names goes
through `resolve_inside`, and every directory walk through `walk_files`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from fleet.errors import FleetError, Problem
from fleet.spec.yamlload import MAX_YAML_BYTES


def resolve_inside(
    repo_root: Path,
    base_dir: Path,
    relpath: str,
    *,
    what: str,
    file: Path | str | None = None,
    line: int | None = None,
) -> Path:
    """The real path of `relpath` (relative to `base_dir`), guaranteed inside `repo_root`.

    Symlinks are resolved before the check, so a link pointing outside is caught too.
    `what` names the thing in the error ("values file", "chart", ...); `file`/`line` say
    where the path was written. The path need not exist (callers report missing files
    themselves). Raises FleetError for absolute paths and for anything that leaves the
    repository; nothing is read.
    """
    if not relpath or relpath.startswith(("/", "\\", "~")) or PurePosixPath(relpath).is_absolute():
        raise FleetError(
            f"{what} '{relpath}' must be a path relative to its bundle", file=file, line=line
        )
    root = repo_root.resolve()
    target = (base_dir / relpath).resolve()
    if not target.is_relative_to(root):
        raise FleetError(f"{what} '{relpath}' is outside the repository", file=file, line=line)
    return target


MAX_READ_BYTES = MAX_YAML_BYTES  # no file a renderer reads may be larger than a YAML file


def read_inside(
    repo_root: Path,
    base_dir: Path,
    relpath: str,
    *,
    what: str,
    file: Path | str | None = None,
    line: int | None = None,
    limit: int = MAX_READ_BYTES,
) -> bytes:
    """The bytes of `relpath` (relative to `base_dir`), checked before anything is opened.

    `resolve_inside` first (so a symlink out of the repository is refused unread), then the
    file must be a regular file (a FIFO or a device would block or never end) of at most
    `limit` bytes. Errors name `file`/`line`, where the path was written, or the path
    itself; they never contain the file's content.
    """
    real = resolve_inside(repo_root, base_dir, relpath, what=what, file=file, line=line)
    where: Path | str = file if file is not None else real
    try:
        info = real.stat()
    except OSError as err:
        raise FleetError(
            f"{what} '{relpath}' cannot be read: {err.strerror or err}", file=where, line=line
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise FleetError(f"{what} '{relpath}' is not a regular file", file=where, line=line)
    if info.st_size > limit:
        raise FleetError(
            f"{what} '{relpath}' is larger than {limit // (1024 * 1024)} MiB and is not read",
            file=where,
            line=line,
        )
    try:
        with real.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise FleetError(
            f"{what} '{relpath}' cannot be read: {err.strerror or err}", file=where, line=line
        ) from None
    if len(data) > limit:  # grew since the stat
        raise FleetError(f"{what} '{relpath}' is larger than the limit", file=where, line=line)
    return data


def walk_files(directory: Path, repo_root: Path) -> list[tuple[str, Path]]:
    """Every file under `directory` as (posix path relative to it, real path), sorted.

    `.git` is skipped. Symlinks are followed only when their target is inside `repo_root`
    (each real directory is visited once, so link cycles terminate); a link pointing
    outside is a FleetError naming the link, raised after the whole walk so all of them
    are reported.
    """
    root = repo_root.resolve()
    found: list[tuple[str, Path]] = []
    problems: list[Problem] = []
    visited: set[Path] = set()
    stack: list[tuple[Path, str]] = [(directory.resolve(), "")]
    while stack:
        real_dir, prefix = stack.pop()
        if real_dir in visited:
            continue
        visited.add(real_dir)
        try:
            entries = sorted(os.scandir(real_dir), key=lambda e: e.name)
        except OSError as err:
            problems.append(Problem(f"cannot read directory: {err.strerror}", str(real_dir)))
            continue
        for entry in entries:
            if entry.name == ".git":
                continue
            rel = f"{prefix}{entry.name}"
            path = Path(entry.path)
            if entry.is_symlink():
                real = path.resolve()
                if not real.is_relative_to(root):
                    problems.append(Problem("symlink points outside the repository", str(path)))
                    continue
                if real.is_dir():
                    stack.append((real, f"{rel}/"))
                elif real.is_file():
                    found.append((rel, real))
            elif entry.is_dir(follow_symlinks=False):
                stack.append((path, f"{rel}/"))
            elif entry.is_file(follow_symlinks=False):
                found.append((rel, path))
    if problems:
        raise FleetError(problems=problems)
    found.sort()
    return found
