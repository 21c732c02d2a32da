"""Which files a command works on: a local directory as it is, or a commit of a Git URL.

`fleet sync`, `diff` and `status` take either; a URL (or `--branch`) goes through
`fleet.source.git.GitSource`'s cached mirror and a read-only checkout of the resolved commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import git

from fleet.errors import FleetError


@dataclass(frozen=True)
class Checkout:
    """The files of the revision to sync, and its commit ("local" outside Git)."""

    path: Path
    commit: str
    source: str


def resolve_source(source: str | Path, branch: str | None = None) -> Checkout:
    """A local directory as it is (its HEAD sha), or a Git URL / `--branch` via a mirror."""
    path = Path(source).expanduser()
    if path.is_dir() and branch is None:
        return Checkout(path.resolve(), _local_commit(path), str(source))
    if not path.is_dir() and "://" not in str(source) and "@" not in str(source):
        raise FleetError(f"repository not found: {source} (a directory or a Git URL)")
    from fleet.source.git import GitSource

    url = str(path.resolve()) if path.is_dir() else str(source)
    revision = GitSource(url, branch or "HEAD").update()
    return Checkout(revision.path, revision.sha, revision.url)


def _local_commit(path: Path) -> str:
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return "local"
    try:
        return str(repo.head.commit.hexsha)
    except ValueError:  # no commit yet
        return "local"
    finally:
        repo.close()
