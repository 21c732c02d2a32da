"""The Git source: a cached mirror per repository, refs resolved to commits, read-only checkouts.

Flux's source-controller split, in one small module: fetch and resolve here, and hand the
next steps nothing but a `Revision` (a sha and a directory holding exactly that commit).

Layout of the cache (`$FLEET_CACHE_DIR/sources`, else `${XDG_CACHE_HOME:-~/.cache}/fleet/
sources`; `FLEET_CACHE_DIR` is fleet's whole cache root so other caches can live beside it):

    mirrors/<sha256(normalised url)[:24]>.git   bare repository, branches and tags only
    checkouts/<commit sha>/                     the commit's files, read-only, reused
    bin/fleet-askpass                           see fleet.source.auth

The mirror fetches `refs/heads/*` and `refs/tags/*` with force and prune (a moved tag or a
force-pushed branch is followed, a deleted branch disappears), not `refs/pull/*` and friends.
A file lock per mirror makes concurrent fetches of one URL (threads or processes) safe.

A checkout is the commit's tree as a working copy would have it (`read-tree` +
`checkout-index`, so `export-ignore` attributes do not drop files the way `git archive`
would); submodules are not fetched. It is written to a temporary directory, renamed into
place, and made read-only: a checkout directory that exists is complete and never changes.

Ref resolution order: a branch, a tag, a commit sha (7 to 40 hex digits), a semver range
over the tags (`fleet.source.semver`); `HEAD` means the remote's default branch.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import git

from fleet import config
from fleet.errors import FleetError
from fleet.source.auth import (
    GitCredentials,
    credentials_for,
    ensure_askpass,
    explain_failure,
    git_environment,
    redact,
    split_url,
)
from fleet.source.semver import parse_range

_SHA_LIKE = re.compile(r"^[0-9a-fA-F]{7,40}$")
_REMOTE_HEAD = "refs/fleet/remote-head"


@dataclass(frozen=True)
class Revision:
    """One commit of one repository, checked out read-only at `path`."""

    url: str
    ref: str
    sha: str
    path: Path
    fetched_at: datetime
    message: str  # the first line
    author: str
    full_message: str = ""  # every line (trailers such as Fleet-Allow-Mass-Delete live here)

    @property
    def short_sha(self) -> str:
        return self.sha[:12]


def cache_root() -> Path:
    """fleet's cache directory: `$FLEET_CACHE_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/fleet`."""
    return config.current().cache_dir


def default_cache_dir() -> Path:
    return cache_root() / "sources"


def normalise_url(url: str) -> str:
    """One spelling per repository: `scheme://[user@]host[:port]/path`, no `.git`, no `/`."""
    url = url.strip()
    transport, user, host = split_url(url)
    if transport == "file":
        path = url[len("file://") :] if url.startswith("file://") else url
        return "file://" + str(Path(path).expanduser().resolve()).removesuffix(".git")
    # scp-like git@host:org/repo has its path after the first colon
    path = urlsplit(url).path if "://" in url else "/" + url.split(":", 1)[1].lstrip("/")
    path = path.rstrip("/").removesuffix(".git").rstrip("/")
    userinfo = f"{user}@" if user else ""
    return f"{transport}://{userinfo}{host.lower()}{path}"


def repository_identity(url: str) -> str:
    """`host/path` lower-cased: the same repository whatever the transport (for webhooks)."""
    rest = normalise_url(url).split("://", 1)[1]
    hostpart, _, path = rest.partition("/")
    hostname = hostpart.rsplit("@", 1)[-1].split(":", 1)[0].lower()
    return f"{hostname}/{path.lower()}"


class GitSource:
    """A repository URL and a ref, fetched into a cached mirror and resolved to commits."""

    def __init__(
        self,
        url: str,
        ref: str = "HEAD",
        *,
        cache_dir: Path | None = None,
        credentials: GitCredentials | None = None,
        timeout: float = 300,
    ) -> None:
        self.url = url.strip()
        self.ref = ref.strip() or "HEAD"
        self.credentials = credentials or credentials_for(self.url)
        self.cache_dir = cache_dir or default_cache_dir()
        key = hashlib.sha256(normalise_url(self.url).encode()).hexdigest()[:24]
        self.mirror_path = self.cache_dir / "mirrors" / f"{key}.git"
        self.checkouts_dir = self.cache_dir / "checkouts"
        self.display_url = redact(self.url, self.credentials.secrets())
        self.timeout = timeout  # a fetch that hangs longer is killed and reported

    def __repr__(self) -> str:
        return f"GitSource({self.display_url!r}, ref={self.ref!r})"

    # ------------------------------------------------------------------ fetch

    def fetch(self) -> None:
        """Bring the mirror up to date with the remote (creating it the first time)."""
        with self._locked():
            repo = self._open_or_init()
            refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
            if self.ref == "HEAD":
                refspecs.append(f"+HEAD:{_REMOTE_HEAD}")
            try:
                self._run_remote(
                    repo, "fetch", "--prune", "--no-write-fetch-head", "origin", *refspecs
                )
            finally:
                repo.close()

    @property
    def is_cloned(self) -> bool:
        return (self.mirror_path / "HEAD").is_file()

    def _open_or_init(self) -> git.Repo:
        if self.is_cloned:
            return git.Repo(self.mirror_path)
        self.mirror_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".init-", dir=self.mirror_path.parent))
        try:
            repo = git.Repo.init(tmp, bare=True)
            with repo.config_writer() as config:
                config.set_value('remote "origin"', "url", self.url)
                config.set_value("gc", "auto", "0")  # gc --auto mid-fetch races readers
            repo.close()
            tmp.rename(self.mirror_path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return git.Repo(self.mirror_path)

    def _run_remote(self, repo: git.Repo, command: str, *args: str) -> str:
        askpass = ensure_askpass(self.cache_dir / "bin") if self.credentials.token else None
        env = git_environment(self.credentials, askpass)
        status, output, stderr = getattr(repo.git, command)(
            *args,
            env=env,
            kill_after_timeout=self.timeout,
            with_extended_output=True,
            with_exceptions=False,
        )
        if status != 0:
            reason = explain_failure(self.credentials, str(stderr))
            raise FleetError(f"git {command} {self.display_url} failed: {reason}")
        return str(output)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.mirror_path.with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ---------------------------------------------------------------- resolve

    def resolve(self, ref: str | None = None) -> str:
        """The commit sha `ref` (default: this source's ref) names in the mirror."""
        wanted = (ref or self.ref).strip()
        if not self.is_cloned:
            raise FleetError(f"{self.display_url}: not fetched yet, cannot resolve {wanted!r}")
        repo = git.Repo(self.mirror_path)
        try:
            return self._resolve_in(repo, wanted)
        finally:
            repo.close()

    def _resolve_in(self, repo: git.Repo, wanted: str) -> str:
        if wanted == "HEAD":
            candidates = [_REMOTE_HEAD]
        elif wanted.startswith("refs/"):
            candidates = [wanted]
        else:
            candidates = [f"refs/heads/{wanted}", f"refs/tags/{wanted}"]
        for name in candidates:
            sha = _rev_parse(repo, f"{name}^{{commit}}")
            if sha:
                return sha
        if _SHA_LIKE.match(wanted):
            sha = _rev_parse(repo, f"{wanted}^{{commit}}")
            if sha:
                return sha
        semver_range = parse_range(wanted)
        if semver_range is not None:
            tags = [ref.name for ref in repo.tags]
            best = semver_range.best(tags)
            if best is None:
                raise FleetError(
                    f"{self.display_url}: no tag matches the semver range {wanted!r}"
                    f" ({len(tags)} tags)"
                )
            sha = _rev_parse(repo, f"refs/tags/{best}^{{commit}}")
            if sha:
                return sha
        raise FleetError(
            f"{self.display_url}: {wanted!r} is not a branch, tag, commit or semver range there"
        )

    # --------------------------------------------------------------- checkout

    def checkout(self, sha: str) -> Path:
        """A read-only directory with the files of commit `sha` (reused when it exists)."""
        return export_commit(self.mirror_path, sha, self.checkouts_dir, self.display_url)

    # ----------------------------------------------------------------- update

    def update(self) -> Revision:
        """Fetch, resolve this source's ref and check it out: the revision to deploy now."""
        self.fetch()
        sha = self.resolve()
        path = self.checkout(sha)
        repo = git.Repo(self.mirror_path)
        try:
            commit = repo.commit(sha)
            full = str(commit.message or "")
            message = full.strip().splitlines()[0] if full.strip() else ""
            author = f"{commit.author.name} <{commit.author.email}>"
        finally:
            repo.close()
        return Revision(
            url=self.display_url,
            ref=self.ref,
            sha=sha,
            path=path,
            fetched_at=datetime.now(UTC),
            message=message,
            author=author,
            full_message=full,
        )


def export_commit(git_dir: Path, sha: str, checkouts_dir: Path, display: str) -> Path:
    """A read-only directory `checkouts_dir/<sha>` with the files of commit `sha` of the
    repository at `git_dir` (a mirror, or a local clone's .git); reused when it exists."""
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise ValueError(f"checkout needs a full commit sha, not {sha!r}")
    target = checkouts_dir / sha
    if target.is_dir():
        return target
    checkouts_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=checkouts_dir))
    index = tmp / "index"
    try:
        files = tmp / "tree"
        files.mkdir()
        g = git.Git(str(git_dir))
        env = {"GIT_INDEX_FILE": str(index)}
        base = ["--git-dir", str(git_dir), "--work-tree", str(files)]
        g.execute(["git", *base, "read-tree", sha], env=env)
        g.execute(["git", *base, "checkout-index", "--all", "--force"], env=env)
        try:
            files.rename(target)
        except OSError:
            if not target.is_dir():  # not a lost race with another process
                raise
        else:
            _make_read_only(target)
    except git.GitCommandError as err:
        raise FleetError(
            f"{display}: cannot check out {sha[:12]}: {str(err.stderr).strip()}"
        ) from None
    finally:
        _remove_tree(tmp)
    return target


def remove_checkout(path: Path) -> None:
    """Delete a checkout made read-only by `GitSource.checkout` (for cache pruning)."""
    _remove_tree(path)


def _rev_parse(repo: git.Repo, spec: str) -> str | None:
    try:
        out: str = repo.git.rev_parse("--verify", "--quiet", spec)
    except git.GitCommandError:
        return None
    return out.strip() or None


def _make_read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        for name in dirnames:
            Path(dirpath, name).chmod(0o555)
    root.chmod(0o555)


def _remove_tree(root: Path) -> None:
    if not root.exists():
        return
    for dirpath, dirnames, _ in os.walk(root):
        Path(dirpath).chmod(0o755)
        for name in dirnames:
            sub = Path(dirpath, name)
            if not sub.is_symlink():
                sub.chmod(0o755)
    shutil.rmtree(root, ignore_errors=True)
