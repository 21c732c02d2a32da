"""Commit the marker changes back to Git: the only way a new image reaches a cluster.

One run: in a private temporary clone (removed after), check out the branch to update,
rewrite the markers under `paths` (`fleet.images.markers`), and when anything changed,
commit with the configured author and a templated message and push. Nothing changed:
no commit, no push, so a scan every minute costs one `ls-remote` and one shallow fetch.

`push_branch` different from `branch` is for review: it is created from `branch` the
first time, and later runs build on it (so an open pull request gets one more commit; a
merged and deleted one is created afresh). The push is never forced: when someone pushed
in between, the server refuses the non-fast-forward, and the run fetches again, rewrites
again on the new commit and retries, `attempts` times at most.

Git runs through `fleet.process.run_tool` (bounded, no shell), every user value after
`--` or checked first (a branch starting with `-` is refused), and the credentials come
from `fleet.source.auth` (askpass, token only for the URL's own origin, nothing in the
URL, the config or a command line). The operator's git config still applies (proxies,
`insteadOf`), except what would change the commit: hooks, signing and line-ending
conversion are switched off for these calls.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from string import Template
from types import MappingProxyType

from fleet import config
from fleet.errors import FleetError, TransientError
from fleet.images.markers import rewrite_tree
from fleet.images.model import ImageChoice, MarkerChange
from fleet.images.promotion import PromotionPlan
from fleet.process import run_tool
from fleet.source.auth import (
    GitCredentials,
    credentials_for,
    ensure_askpass,
    explain_failure,
    git_environment,
)

DEFAULT_MESSAGE = "fleet: update images ($count)\n\n$changes\n\n$waves\n"
DEFAULT_ATTEMPTS = 3
_LOCAL_CONFIG = (
    "core.hooksPath=/dev/null",
    "commit.gpgSign=false",
    "core.autocrlf=false",
    "core.safecrlf=false",
    "gc.auto=0",
)
# (the clone's directory, its commit) -> which markers to rewrite: the promotion by waves
# decides on the very commit the rewrite builds on (`fleet.images.promotion`)
Planner = Callable[[Path, str], PromotionPlan]
_REJECTED = re.compile(r"^!\t[^\t]*\t\[rejected\]", re.MULTILINE)


@dataclass(frozen=True)
class WriteBackResult:
    """What one write-back did: the commit pushed (None: nothing to change)."""

    commit: str | None
    changes: tuple[MarkerChange, ...]
    branch: str  # the branch pushed to (or that would have been)
    base: str  # the commit the markers were rewritten on
    warnings: tuple[str, ...] = ()
    attempts: int = 1
    promotion: PromotionPlan | None = None  # with a planner: what it decided


def write_back(
    url: str,
    choices: Mapping[str, ImageChoice],
    *,
    branch: str,
    author_name: str,
    author_email: str,
    push_branch: str | None = None,
    paths: Sequence[str] = (".",),
    message_template: str | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    settings: config.Settings | None = None,
    credentials: GitCredentials | None = None,
    work_dir: Path | None = None,
    planner: Planner | None = None,
) -> WriteBackResult:
    """Rewrite the markers of `url`'s `branch` under `paths` and push a commit if needed.

    `message_template` is a `string.Template` (`$changes`, one "path:line policy old ->
    new" per line; `$policies`, comma-separated; `$count`; `$branch`), default
    `DEFAULT_MESSAGE`; `$waves`, one "policy tag -> wave W (bundle B)" per promotion
    step. `planner`, given, is asked on each commit built on which markers to rewrite
    (the others stay as they are). `work_dir` is where the temporary clone goes (default:
    the system's temporary directory). Errors: FleetError for what the operator fixes (a
    bad branch name or author, a path outside the repository, a refused credential),
    TransientError when the push is still rejected after `attempts` tries.
    """
    settings = settings or config.current()
    target = push_branch or branch
    for name in {branch, target}:
        _check_branch(name, settings)
    _check_author(author_name, author_email)
    creds = credentials or credentials_for(url, settings.env)
    tmp = Path(tempfile.mkdtemp(prefix="fleet-images-", dir=work_dir))
    try:
        git = _Git(tmp, url, creds, settings, author_name, author_email)
        git.run("init", "--quiet", str(git.repo))
        for attempt in range(1, max(1, attempts) + 1):
            base = git.checkout_base(branch, target)
            plan = planner(git.repo, base) if planner is not None else None
            select = plan.select if plan is not None else None
            changes, warnings = rewrite_tree(git.repo, paths, choices, select)
            notes = tuple(plan.problems) if plan is not None else ()
            result = WriteBackResult(None, tuple(changes), target, base,
                                     (*notes, *warnings), attempt, plan)  # fmt: skip
            if not changes:
                return result
            steps = [p.summary() for p in plan.steps] if plan is not None else []
            message = _message(message_template, changes, target, steps)
            sha = git.commit(sorted({c.path for c in changes}), message)
            if git.push(target):
                return replace(result, commit=sha)
        raise TransientError(
            f"pushing image updates to {git.display} {target}: still rejected after "
            f"{attempts} attempts (others keep pushing)",
            retry_after=60,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def render_message(
    template: str | None,
    changes: Sequence[MarkerChange],
    branch: str,
    steps: Sequence[str] = (),
) -> str:
    """The commit message for `changes` (public so `fleet images` can preview it)."""
    return _message(template, changes, branch, steps)


def change_line(change: MarkerChange) -> str:
    """ "path:line policy old -> new", with the marker's wave when it names one."""
    wave = f" (wave {change.wave})" if change.wave else ""
    return f"{change.path}:{change.line} {change.policy} {change.old} -> {change.new}{wave}"


def _message(
    template: str | None, changes: Sequence[MarkerChange], branch: str, steps: Sequence[str] = ()
) -> str:
    lines = "\n".join(change_line(c) for c in changes)
    values = {
        "changes": lines,
        "waves": "\n".join(steps),
        "policies": ", ".join(sorted({c.policy for c in changes})),
        "count": str(len(changes)),
        "branch": branch,
    }
    text = Template(template or DEFAULT_MESSAGE).safe_substitute(values).strip()
    return (text or Template(DEFAULT_MESSAGE).substitute(values).strip()) + "\n"


def _check_branch(name: str, settings: config.Settings) -> None:
    if not name or name.startswith("-"):
        raise FleetError(f"image updates: '{name}' is not a branch name")
    done = run_tool(
        ["git", "check-ref-format", f"refs/heads/{name}"],
        what="git check-ref-format",
        settings=settings,
    )
    if done.returncode != 0:
        raise FleetError(f"image updates: '{name}' is not a valid branch name")


def _check_author(name: str, email: str) -> None:
    for what, value in (("name", name), ("email", email)):
        if not value.strip() or any(c in value for c in "<>\n\r\0"):
            raise FleetError(f"image updates: the author {what} '{value}' cannot be used")


class _Git:
    """git in one private clone, with the remote's credentials for remote commands."""

    def __init__(
        self,
        tmp: Path,
        url: str,
        creds: GitCredentials,
        settings: config.Settings,
        author_name: str,
        author_email: str,
    ) -> None:
        self.repo = tmp / "repo"
        self.url = url
        self.creds = creds
        self.display = creds.redact(url)
        askpass = ensure_askpass(tmp / "bin") if creds.token else None
        identity = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": author_name,
            "GIT_COMMITTER_EMAIL": author_email,
        }
        env = {**settings.env, **identity, **git_environment(creds, askpass)}
        self.settings = replace(settings, env=MappingProxyType(env))

    def run(self, *args: str, remote: bool = False, check: bool = True) -> tuple[int, str, str]:
        argv = ["git"]
        for item in _LOCAL_CONFIG:
            argv += ["-c", item]
        if self.repo.exists():
            argv += ["-C", str(self.repo)]
        argv += list(args)
        what = f"git {args[0]} {self.display}" if remote else f"git {args[0]}"
        done = run_tool(argv, what=what, settings=self.settings)
        out = done.stdout.decode(errors="replace")
        err = done.stderr.decode(errors="replace")
        if check and done.returncode != 0:
            raise FleetError(f"{what} failed: {explain_failure(self.creds, err)}")
        return done.returncode, out, err

    def checkout_base(self, branch: str, target: str) -> str:
        """Fetch and check out what to build on: `target` if it exists, else `branch`."""
        refs = [f"refs/heads/{branch}", f"refs/heads/{target}"]
        _, out, _ = self.run("ls-remote", "--", self.url, *refs, remote=True)
        found = {line.split("\t")[1] for line in out.splitlines() if "\t" in line}
        base = refs[1] if refs[1] in found else refs[0]
        if base not in found:
            raise FleetError(f"image updates: {self.display} has no branch '{branch}'")
        self.run("fetch", "--quiet", "--no-tags", "--depth=1", "--", self.url, base, remote=True)
        self.run("checkout", "--quiet", "--force", "--detach", "FETCH_HEAD")
        self.run("clean", "--quiet", "-ffdx")
        return self.run("rev-parse", "HEAD")[1].strip()

    def commit(self, files: list[str], message: str) -> str:
        self.run("add", "--", *files)
        message_file = self.repo.parent / "message"
        message_file.write_text(message)
        self.run("commit", "--quiet", "--no-verify", "--file", str(message_file))
        return self.run("rev-parse", "HEAD")[1].strip()

    def push(self, target: str) -> bool:
        """True when pushed; False when the server refused a non-fast-forward."""
        code, out, err = self.run(
            "push",
            "--porcelain",
            "--",
            self.url,
            f"HEAD:refs/heads/{target}",
            remote=True,
            check=False,
        )
        if code == 0:
            return True
        if _REJECTED.search(out):
            return False
        raise FleetError(
            f"git push {self.display} {target} failed: {explain_failure(self.creds, err or out)}"
        )
