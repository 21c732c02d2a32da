"""The files markers are read from and written to: the YAML files under some repository
directories, with the repository's path rules (`fleet.spec.pathsafety`): nothing outside
the root, symlinks never followed, regular files of at most 8 MiB only, written atomically
with their mode kept (a half-written values file would be a broken commit).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from fleet.errors import FleetError
from fleet.spec.pathsafety import read_inside, resolve_inside

MARKER_KEY = "$imagepolicy"
YAML_SUFFIXES = (".yaml", ".yml")


def marker_texts(
    root: Path, paths: Sequence[str], warnings: list[str]
) -> list[tuple[str, Path, str]]:
    """(relative name, path, text) of the YAML files under `paths` that hold a marker."""
    real_root = root.resolve()
    files: dict[str, Path] = {}
    for written in paths:
        relpath = written.strip()
        relpath = "" if relpath in ("", ".", "./") else relpath.rstrip("/")
        target = checked_path(real_root, relpath, written)
        if not target.exists():
            warnings.append(f"image update path '{written}' does not exist")
        elif target.is_dir():
            files.update(_walk(real_root, target, warnings))
        elif target.is_file() and target.name.endswith(YAML_SUFFIXES):
            files[target.relative_to(real_root).as_posix()] = target
    found: list[tuple[str, Path, str]] = []
    for relpath in sorted(files):
        try:
            data = read_inside(real_root, real_root, relpath, what="image update file")
        except FleetError as err:
            warnings.append(err.reason)
            continue
        if MARKER_KEY.encode() not in data:
            continue
        try:
            found.append((relpath, files[relpath], data.decode("utf-8")))
        except UnicodeDecodeError:
            warnings.append(f"{relpath}: not valid UTF-8 text, markers not read")
    return found


def checked_path(real_root: Path, relpath: str, written: str) -> Path:
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


def replace_file(path: Path, data: bytes) -> None:
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
