"""Image write-back against real Git servers: git daemon (push enabled), smart HTTP with a token."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from fleet import config
from fleet.errors import FleetError
from fleet.images import writeback
from fleet.images.markers import Select, rewrite_tree
from fleet.images.model import ImageChoice, MarkerChange
from fleet.images.writeback import write_back
from fleet.source.auth import host_env_suffix
from tests.support.git_http import GitHttpServer
from tests.support.servers import GitServer, GitWorkTree, run_git

WEB = ImageChoice("web", "reg:5000/team/web", "1.2.0")
DEPLOY = """\
# the web deployment
spec:
  containers:
    - name: web
      image: reg:5000/team/web:1.0.0 # {"$imagepolicy": "web"}
      args: ["reg:5000/team/web:1.0.0"]
"""
VALUES = 'image:\r\n  tag: 1.0.0  # {"$imagepolicy": "web:tag"}\r\n  pullPolicy: IfNotPresent\r\n'
AUTHOR: dict[str, str] = {"author_name": "fleet bot", "author_email": "bot@fleet.invalid"}


@pytest.fixture
def repo(git_server: GitServer, tmp_path: Path, request: pytest.FixtureRequest) -> GitWorkTree:
    name = f"images-{request.node.name}".replace("[", "-").replace("]", "")
    tree = git_server.create_repo(name, tmp_path / "work")
    tree.write("apps/web/deploy.yaml", DEPLOY)
    (tree.path / "apps/web/values.yaml").write_bytes(VALUES.encode())
    tree.write("other/deploy.yaml", DEPLOY)
    tree.commit_and_push("initial")
    return tree


def remote_log(tree: GitWorkTree, ref: str, fmt: str) -> str:
    run_git("fetch", "--quiet", "origin", cwd=tree.path)
    return run_git("log", "-1", f"--format={fmt}", f"origin/{ref}", cwd=tree.path)


def test_commit_lands_with_author_message_and_only_marker_lines(repo: GitWorkTree) -> None:
    result = write_back(repo.remote_url, {"web": WEB}, branch="main", paths=["apps"], **AUTHOR)
    assert result.commit is not None and result.branch == "main"
    assert [(c.path, c.line) for c in result.changes] == [
        ("apps/web/deploy.yaml", 5),
        ("apps/web/values.yaml", 2),
    ]
    assert remote_log(repo, "main", "%H") == result.commit
    assert remote_log(repo, "main", "%an <%ae>|%cn") == "fleet bot <bot@fleet.invalid>|fleet bot"
    message = remote_log(repo, "main", "%B")
    assert message.splitlines()[0] == "fleet: update images (2)"
    assert (
        "apps/web/deploy.yaml:5 web reg:5000/team/web:1.0.0 -> reg:5000/team/web:1.2.0" in message
    )
    assert "apps/web/values.yaml:2 web 1.0.0 -> 1.2.0" in message
    diff = run_git("diff", "--unified=0", f"{result.base}", "origin/main", cwd=repo.path)
    changed = [
        line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == [
        '-      image: reg:5000/team/web:1.0.0 # {"$imagepolicy": "web"}',
        '+      image: reg:5000/team/web:1.2.0 # {"$imagepolicy": "web"}',
        '-  tag: 1.0.0  # {"$imagepolicy": "web:tag"}',
        '+  tag: 1.2.0  # {"$imagepolicy": "web:tag"}',
    ]
    blob = subprocess.run(
        ["git", "show", "origin/main:apps/web/values.yaml"], cwd=repo.path, capture_output=True
    ).stdout
    assert blob == VALUES.replace("1.0.0", "1.2.0").encode()  # CRLF kept
    again = write_back(repo.remote_url, {"web": WEB}, branch="main", paths=["apps"], **AUTHOR)
    assert again.commit is None and again.changes == () and again.base == result.commit
    assert remote_log(repo, "main", "%H") == result.commit


def test_a_template_and_a_separate_push_branch(repo: GitWorkTree) -> None:
    base = remote_log(repo, "main", "%H")
    template = "images: $policies on $branch ($count)\n\n$changes\n${unknown} $$"

    def run(choice: ImageChoice) -> writeback.WriteBackResult:
        return write_back(
            repo.remote_url,
            {"web": choice},
            branch="main",
            push_branch="fleet/images",
            message_template=template,
            paths=["apps/web"],
            **AUTHOR,
        )

    first = run(WEB)
    assert first.branch == "fleet/images" and first.base == base
    assert remote_log(repo, "main", "%H") == base  # the reviewed branch is untouched
    message = remote_log(repo, "fleet/images", "%B")
    assert message.splitlines()[0] == "images: web on fleet/images (2)"
    assert message.rstrip().endswith("${unknown} $")
    newer = ImageChoice("web", "reg:5000/team/web", "1.3.0")
    second = run(newer)
    assert second.base == first.commit  # the push branch is reused
    assert remote_log(repo, "fleet/images", "%H %P") == f"{second.commit} {first.commit}"
    assert run(newer).commit is None


def test_a_concurrent_push_is_fetched_and_reapplied(
    repo: GitWorkTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def racing_rewrite(
        root: Path,
        paths: Sequence[str],
        choices: Mapping[str, ImageChoice],
        select: Select | None = None,
    ) -> tuple[list[MarkerChange], list[str]]:
        if not calls:  # someone pushes while fleet rewrites
            repo.write("apps/web/extra.yaml", 'image: reg/web:0.1 # {"$imagepolicy": "web"}\n')
            repo.commit_and_push("meanwhile")
        calls.append(1)
        return rewrite_tree(root, paths, choices, select)

    monkeypatch.setattr(writeback, "rewrite_tree", racing_rewrite)
    meanwhile_parent = remote_log(repo, "main", "%H")
    result = write_back(repo.remote_url, {"web": WEB}, branch="main", paths=["apps"], **AUTHOR)
    assert result.attempts == 2 and len(calls) == 2
    meanwhile = remote_log(repo, "main", "%P")
    assert meanwhile != meanwhile_parent and result.base == meanwhile
    assert "apps/web/extra.yaml" in {c.path for c in result.changes}
    assert remote_log(repo, "main", "%H") == result.commit


def test_paths_outside_and_symlinks_are_not_followed(repo: GitWorkTree, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(DEPLOY)
    (repo.path / "apps/link.yaml").symlink_to(outside)
    repo.commit_and_push("a link out")
    result = write_back(repo.remote_url, {"web": WEB}, branch="main", paths=["apps"], **AUTHOR)
    assert "apps/link.yaml: a symlink, markers not read" in result.warnings
    assert outside.read_text() == DEPLOY
    for bad in ["../..", "/etc"]:
        with pytest.raises(FleetError, match=r"outside the repository|relative"):
            write_back(repo.remote_url, {"web": WEB}, branch="main", paths=[bad], **AUTHOR)


@pytest.mark.parametrize("branch", ["-x", "a..b", ""])
def test_bad_branch_names_are_refused(repo: GitWorkTree, branch: str) -> None:
    with pytest.raises(FleetError, match="branch name"):
        write_back(repo.remote_url, {"web": WEB}, branch=branch, **AUTHOR)


TOKEN = "glpat-WriteBackSecret-0123456789"


@pytest.fixture
def http_git(tmp_path: Path) -> Iterator[GitHttpServer]:
    server = GitHttpServer(tmp_path / "http-git", token=TOKEN)
    server.start()
    yield server
    server.stop()


def test_credentialed_push_over_http(http_git: GitHttpServer, tmp_path: Path) -> None:
    bare = http_git.create_bare("cfg")
    work = tmp_path / "seed"
    run_git("init", "--quiet", "--initial-branch=main", str(work))
    (work / "deploy.yaml").write_text(DEPLOY)
    run_git("add", "-A", cwd=work)
    run_git(
        "-c", "user.name=t", "-c", "user.email=t@x", "commit", "--quiet", "-m", "seed", cwd=work
    )
    run_git("push", "--quiet", str(bare), "HEAD:main", cwd=work)
    host = f"127.0.0.1:{http_git.port}"
    settings = config.Settings.from_env(
        {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "FLEET_GIT_ALLOW_HTTP": "1"}
    )
    with pytest.raises(FleetError) as anonymous:
        write_back(http_git.url("cfg"), {"web": WEB}, branch="main", settings=settings, **AUTHOR)
    assert TOKEN not in str(anonymous.value)
    env = {**settings.env, f"FLEET_GIT_TOKEN_{host_env_suffix(host)}": TOKEN}
    settings = config.Settings.from_env(env)
    result = write_back(
        http_git.url("cfg"), {"web": WEB}, branch="main", settings=settings, **AUTHOR
    )
    assert result.commit is not None
    assert run_git("--git-dir", str(bare), "rev-parse", "main") == result.commit
    pushes = [path for path, user in http_git.attempts if "receive-pack" in path and user]
    assert pushes, "the push went through with the token"
