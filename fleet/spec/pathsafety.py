"""Nothing outside the repository is ever read: path checks shared by loading and rendering.

A fleet repository is untrusted input (anyone with push access writes it), and workers
hold cluster credentials, so a `valuesFiles: [../../../home/worker/.kube/config]` or a
symlink to `/etc` must fail before anything is opened. Every path a bundle names goes
through `resolve_inside`, and every directory walk through `walk_files`.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from fleet.errors import FleetError, Problem


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
