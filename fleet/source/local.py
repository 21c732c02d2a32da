"""Which files a command works on: a local directory as it is, or a commit of a Git URL.

`fleet sync`, `diff` and `status` take either; a URL (or `--branch`) goes through
`fleet.source.git.GitSource`'s cached mirror and a read-only checkout of the resolved commit.
`fleet plan` needs two commits of one repository (`resolve_commits`): in a local clone any
ref git itself understands (`origin/main`, `HEAD~1`, a sha, a detached CI checkout's
`HEAD`) is resolved there, without a fetch; a URL is fetched once into the mirror.
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


def resolve_commits(source: str | Path, refs: list[str]) -> list[Checkout]:
    """A read-only checkout of each ref of one repository (a local clone or a Git URL)."""
    from fleet.source.git import GitSource, default_cache_dir, export_commit

    path = Path(source).expanduser()
    if path.is_dir():
        try:
            repo = git.Repo(path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise FleetError(
                f"{source}: not a Git repository (fleet plan compares commits)"
            ) from None
        try:
            top = Path(str(repo.working_tree_dir or path)).resolve()
            inside = path.resolve().relative_to(top)
            found = []
            for ref in refs:
                sha = _local_rev(repo, ref)
                if sha is None:
                    raise FleetError(f"{source}: {ref!r} is not a commit there")
                files = export_commit(
                    Path(repo.git_dir), sha, default_cache_dir() / "checkouts", str(source)
                )
                found.append(Checkout(files / inside, sha, str(source)))
            return found
        finally:
            repo.close()
    if "://" not in str(source) and "@" not in str(source):
        raise FleetError(f"repository not found: {source} (a directory or a Git URL)")
    remote = GitSource(str(source), "HEAD")
    remote.fetch()
    checkouts = []
    for ref in refs:
        sha = remote.resolve(ref)
        checkouts.append(Checkout(remote.checkout(sha), sha, remote.display_url))
    return checkouts


def _local_rev(repo: git.Repo, ref: str) -> str | None:
    if ref.startswith("-"):
        return None  # never an option to git
    try:
        out: str = repo.git.rev_parse(
            "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"
        )
    except git.GitCommandError:
        return None
    return out.strip() or None


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
