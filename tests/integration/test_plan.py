"""`fleet plan` end to end: real git (a `git daemon`), real helm and kustomize, the CLI in a
subprocess whose environment holds no cluster credential at all.

The repository (tests/support/plan_repo.py) has a Helm, a Kustomize and a raw YAML bundle
on six clusters; each pull request branch makes one kind of change, and the plan must name
exactly the clusters and objects it touches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import plan_repo
from tests.support.plan_repo import ALL, DEV, PROD
from tests.support.servers import GitServer, GitWorkTree, run_git

ROOT = Path(__file__).resolve().parents[2]
FLEET = Path(sys.executable).parent / "fleet"


@dataclass(frozen=True)
class PlanRepo:
    tree: GitWorkTree
    url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def repo(git_server: GitServer, tmp_path_factory: pytest.TempPathFactory, binary: Any) -> PlanRepo:
    """The base on `main` and one branch per change, pushed to a real git server."""
    work = tmp_path_factory.mktemp("plan")
    name = f"plan-{os.getpid()}"
    tree = git_server.create_repo(name, work / "clone")
    plan_repo.write_base(tree.path)
    tree.commit_and_push("base")
    for branch, change in plan_repo.CHANGES.items():
        run_git("checkout", "--quiet", "-B", branch, "main", cwd=tree.path)
        change(tree.path)
        tree.commit_and_push(branch, branch=branch)
    run_git("checkout", "--quiet", "main", cwd=tree.path)
    tools = {Path(binary("helm")).parent, Path(binary("kustomize")).parent}
    home = work / "home"
    env = {  # nothing else: no FLEET_CREDENTIALS_DIR, no FLEET_KUBECONFIG_*, no KUBECONFIG
        "PATH": os.pathsep.join([*map(str, tools), str(FLEET.parent), "/usr/bin", "/bin"]),
        "HOME": str(home),
        "FLEET_CACHE_DIR": str(work / "cache"),
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_DATA_HOME": str(home / "helm-data"),
    }
    return PlanRepo(tree, git_server.url(name), env)


def fleet(repo: PlanRepo, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert not any(k.startswith(("FLEET_KUBECONFIG", "FLEET_CREDENTIALS")) for k in repo.env)
    return subprocess.run(
        [str(FLEET), *args],
        cwd=cwd or repo.tree.path,
        env=repo.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def plan_json(repo: PlanRepo, head: str, *extra: str) -> dict[str, Any]:
    done = fleet(repo, "plan", ".", "--base", "main", "--head", head, "-o", "json", *extra)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def groups(data: dict[str, Any]) -> list[tuple[str, str, list[str], list[str]]]:
    return [
        (g["bundle"], g["change"], g["clusters"], [o["ref"] for o in g["objects"]])
        for g in data["groups"]
    ]


def test_a_values_change_on_one_group_names_exactly_its_clusters_and_objects(
    repo: PlanRepo,
) -> None:
    data = plan_json(repo, "values")
    assert groups(data) == [
        (
            "bundles-web",
            "changed",
            PROD,
            ["apps/v1 Deployment web/web", "v1 Secret web/web-credentials"],
        )
    ]
    group = data["groups"][0]
    assert group["group"] == "prod" and group["selector"] == "env=prod"
    assert group["waves"] == {"eu": 2, "(rest)": 1}
    diff = group["objects"][0]["diff"]
    assert "-  replicas: 3\n+  replicas: 5\n" in diff
    secret = group["objects"][1]["diff"]
    assert "-  password: <redacted, old value>\n+  password: <redacted, new value>\n" in secret
    assert data["summary"] == "1 bundle changes on 3 clusters in 2 waves"
    assert data["placements"] == []


@pytest.mark.parametrize("output", ["text", "json", "markdown"])
def test_secret_values_never_appear_in_any_format(repo: PlanRepo, output: str) -> None:
    done = fleet(repo, "plan", ".", "--base", "main", "--head", "values", "-o", output)
    assert done.returncode == 0, done.stderr
    assert "web-credentials" in done.stdout
    for secret in (plan_repo.PROD_PASSWORD, plan_repo.NEW_PROD_PASSWORD, "dev-password"):
        assert secret not in done.stdout


def test_a_new_bundle_is_added_on_every_cluster_it_targets(repo: PlanRepo) -> None:
    data = plan_json(repo, "new-bundle")
    assert groups(data) == [("bundles-cache", "added", ALL, ["apps/v1 Deployment cache/redis"])]
    assert data["groups"][0]["waves"] == {"canary": 2, "eu": 2, "(rest)": 2}
    assert data["placements"] == [
        {"bundle": "bundles-cache", "status": "new", "gained": ALL, "lost": []}
    ]
    assert data["summary"] == "1 bundle changes on 6 clusters in 3 waves"


def test_a_removed_bundle_lists_the_objects_that_go(repo: PlanRepo) -> None:
    data = plan_json(repo, "removed-bundle")
    refs = ["v1 ConfigMap guestbook/guestbook-settings", "v1 Service guestbook/guestbook"]
    assert groups(data) == [("bundles-guestbook", "removed", ALL, refs)]
    assert data["groups"][0]["waves"] == {}  # removals are not gated by waves
    assert data["placements"] == [
        {"bundle": "bundles-guestbook", "status": "removed", "gained": [], "lost": ALL}
    ]


def test_a_target_selector_change_moves_a_bundle_between_clusters(repo: PlanRepo) -> None:
    data = plan_json(repo, "moved-bundle")
    ref = ["v1 ConfigMap platform/platform-settings"]
    assert groups(data) == [("config", "added", PROD, ref), ("config", "removed", DEV, ref)]
    assert data["placements"] == [
        {"bundle": "config", "status": "moved", "gained": PROD, "lost": DEV}
    ]
    assert data["clusters"] == PROD + DEV


def test_a_broken_head_commit_reports_file_and_line_and_exits_2(repo: PlanRepo) -> None:
    done = fleet(repo, "plan", ".", "--base", "main", "--head", "broken", "--exit-code")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert any(line.startswith("shared/config/settings.yaml:4: invalid YAML") for line in lines)
    assert any("templates/broken.yaml:3" in line for line in lines), done.stderr
    assert "Traceback" not in done.stderr
    plain = fleet(repo, "plan", ".", "--base", "main", "--head", "broken")
    assert plain.returncode == 1 and plain.stderr == done.stderr


def test_a_broken_head_definition_names_its_line_relative_to_the_repository(
    repo: PlanRepo,
) -> None:
    done = fleet(repo, "plan", "--base", "main", "--head", "broken-definition", "--exit-code")
    assert done.returncode == 2
    lines = (repo.tree.path / "fleet.yaml").read_text().splitlines()
    line = len(lines) + 1  # the typo is the line broken_definition appends
    assert done.stderr.startswith(f"fleet.yaml:{line}: unknown key 'rollouts'"), done.stderr
    back = fleet(repo, "plan", "--base", "broken-definition", "--head", "main", "--exit-code")
    assert back.returncode == 2
    assert f"fleet.yaml:{line}: base " in back.stderr


def test_exit_codes_no_change_and_change(repo: PlanRepo) -> None:
    same = fleet(repo, "plan", ".", "--base", "main", "--head", "main", "--exit-code")
    assert same.returncode == 0, same.stderr
    assert "no changes" in same.stdout
    changed = fleet(repo, "plan", ".", "--base", "main", "--head", "values", "--exit-code")
    assert changed.returncode == 1, changed.stderr
    assert fleet(repo, "plan", ".", "--base", "main", "--head", "values").returncode == 0


def test_cluster_bundle_and_selector_narrow_the_plan(repo: PlanRepo) -> None:
    one = plan_json(repo, "values", "--cluster", "prod-eu-1")
    assert [g["clusters"] for g in one["groups"]] == [["prod-eu-1"]]
    us = plan_json(repo, "moved-bundle", "--selector", "region=us")
    assert groups(us) == [
        ("config", "added", ["prod-us-1"], ["v1 ConfigMap platform/platform-settings"])
    ]
    eu = plan_json(repo, "moved-bundle", "-l", "region in (eu),env!=prod")
    assert [(g["change"], g["clusters"]) for g in eu["groups"]] == [("removed", DEV)]
    other = fleet(
        repo, "plan", ".", "--base", "main", "--head", "values", "--bundle", "config", "--exit-code"
    )
    assert other.returncode == 0, other.stderr
    unknown = fleet(repo, "plan", "--base", "main", "--head", "values", "-c", "nope", "--exit-code")
    assert unknown.returncode == 2
    assert unknown.stderr == "error: --cluster 'nope': no such cluster at base or head\n"


def test_markdown_collapses_groups_and_keeps_under_the_cap(repo: PlanRepo) -> None:
    full = fleet(repo, "plan", "--base", "main", "--head", "moved-bundle", "-o", "markdown")
    assert full.returncode == 0, full.stderr
    assert full.stdout.count("<details>") == 2
    assert "<summary>config added on group prod (env=prod), 3 clusters</summary>" in full.stdout
    assert "```diff\n--- base: v1 ConfigMap platform/platform-settings" in full.stdout
    capped = fleet(
        repo, "plan", "--base", "main", "--head", "moved-bundle", "-o", "markdown",
        "--max-chars", "1200",
    )  # fmt: skip
    assert capped.returncode == 0, capped.stderr
    assert len(capped.stdout) <= 1200
    assert "Left out to stay under 1,200 characters" in capped.stdout
    assert "```diff" not in capped.stdout or capped.stdout.count("```diff") < 2


def test_a_git_url_is_fetched_and_both_refs_resolved_there(repo: PlanRepo, tmp_path: Path) -> None:
    done = fleet(
        repo, "plan", repo.url, "--base", "main", "--head", "new-bundle", "-o", "json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert groups(json.loads(done.stdout))[0][:3] == ("bundles-cache", "added", ALL)


# ------------------------------------------------------------------ the CI recipes


def pull_request_checkout(repo: PlanRepo, tmp_path: Path, branch: str) -> Path:
    """What a CI runner has: a full clone from the server with the branch checked out."""
    clone = tmp_path / "ci-clone"
    run_git("clone", "--quiet", repo.url, str(clone))
    run_git("checkout", "--quiet", branch, cwd=clone)
    return clone


def run_script(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def github_steps() -> dict[str, dict[str, Any]]:
    workflow = yaml.safe_load((ROOT / "examples/ci/github-actions.yaml").read_text())
    steps = workflow["jobs"]["plan"]["steps"]
    return {s.get("id") or s.get("name") or s.get("uses") or s["run"]: s for s in steps}


@pytest.mark.parametrize(("branch", "status"), [("values", 1), ("main", 0), ("broken", 2)])
def test_the_github_actions_recipe_runs_as_written(
    repo: PlanRepo, tmp_path: Path, branch: str, status: int
) -> None:
    steps = github_steps()
    plan = steps["plan"]
    assert plan["env"] == {"BASE_REF": "${{ github.base_ref }}"}
    assert "fleet-plan.md" in steps["comment"]["run"]
    clone = pull_request_checkout(repo, tmp_path, branch)
    outputs = tmp_path / "github-output"
    env = {**repo.env, "BASE_REF": "main", "GITHUB_OUTPUT": str(outputs)}
    done = run_script(plan["run"], clone, env)
    assert done.returncode == 0, done.stderr
    assert outputs.read_text() == f"status={status}\n"
    comment = (clone / "fleet-plan.md").read_text()
    if status == 1:
        assert "**1 bundle changes on 3 clusters in 2 waves**" in comment
        assert "<details><summary>bundles-web changes on group prod" in comment
    elif status == 0:
        assert "no changes" in comment
    else:
        assert comment.startswith("### fleet plan: the head commit does not load")
        assert "shared/config/settings.yaml:4: invalid YAML" in comment


def test_the_gitlab_ci_recipe_runs_as_written(repo: PlanRepo, tmp_path: Path) -> None:
    job = yaml.safe_load((ROOT / "examples/ci/gitlab-ci.yaml").read_text())["fleet-plan"]
    script = [line for line in job["script"] if not line.startswith("curl")]
    assert len(script) == len(job["script"]) - 1  # only posting the comment is left out
    clone = pull_request_checkout(repo, tmp_path, "moved-bundle")
    env = {**repo.env, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}
    done = run_script("\n".join(script), clone, env)
    assert done.returncode == 0, done.stderr
    comment = (clone / "fleet-plan.md").read_text()
    assert "config added on group prod (env=prod), 3 clusters" in comment
    assert "config removed on group dev (env=dev,region=eu), 2 clusters" in comment
