"""Kustomize remote references: refused unless the definition allows the host, and pinned in
the deployment id when allowed. Real kustomize and git against a git smart-HTTP server and a
file server over HTTPS (a self-signed certificate the tools are told to trust)."""

from __future__ import annotations

import functools
import http.server
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.desired import DesiredState
from fleet.errors import FleetError, TransientError
from fleet.plugin.manager import FleetPlugins
from fleet.spec.loader import load_repository
from fleet.targeting.units import compute_units
from tests.integration.test_render_helm_untrusted import silent_server
from tests.support.git_http import GitHttpServer
from tests.support.servers import run_git
from tests.support.tls import https_server, make_tls

__all__ = ["silent_server"]  # a fixture: a TCP server that never answers


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "fleet-cache"))


CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: remote}}\ndata: {{v: '{v}'}}\n"


def definition(hosts: str = "") -> str:
    return (
        "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: remote\n"
        "clusters: [{name: c1}]\nbundles: {paths: [app]}\n" + hosts
    )


def make_repo(root: Path, kustomization: str, hosts: str = "") -> Path:
    (root / "app").mkdir(parents=True)
    (root / "fleet.yaml").write_text(definition(hosts))
    (root / "app" / "kustomization.yaml").write_text(kustomization)
    return root


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        (
            "https://github.com/org/repo//base?ref=v1",
            "host github.com is not in the definition's kustomizeRemoteHosts (allowed: none)",
        ),
        ("github.com/org/repo/base?ref=v1", "host github.com is not in the definition's"),
        ("git@gitlab.com:org/repo.git//base", "host gitlab.com is not in the definition's"),
        ("file:///var/lib/fleet/other/checkout", "file:// URLs are refused"),
        ("http://github.com/org/repo.git", "plain http:// is refused"),
        ("https://github.com/org/repo.git?ref=--upload-pack=sh", "starts with '-'"),
    ],
)
def test_a_remote_reference_is_a_file_line_error(
    tmp_path: Path, resource: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path, f"resources:\n  - cm.yaml\n  - {resource}\n")
    assert main(["validate", "--no-render", str(repo)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"{repo}/app/kustomization.yaml:3: kustomize remote reference ")
    assert message in line


def test_file_urls_are_refused_whatever_the_allow_list_says(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path,
        "patches:\n  - path: file:///etc/passwd\nconfigMapGenerator:\n"
        "  - {name: x, files: [k=http://127.0.0.1/x]}\n",
        "kustomizeRemoteHosts: [127.0.0.1, localhost]\n",
    )
    with pytest.raises(FleetError) as err:
        load_repository(repo)
    assert [(p.line, p.message.split(": ", 1)[-1]) for p in err.value.problems] == [
        (2, "file:// URLs are refused (they read outside the repository)"),
        (4, "plain http:// is refused (use https or ssh)"),
    ]


class AnonymousGit(GitHttpServer):
    """`git http-backend` without authentication (a public repository)."""

    def _authorised_user(self, header: str | None) -> str | None:
        return "anonymous"


@pytest.fixture
def https_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """(base URL, work tree pushing to bare `base.git`) of a git server over HTTPS."""
    tls = make_tls(tmp_path / "tls")
    tls.trust(monkeypatch)
    server = AnonymousGit(tmp_path / "git", token="")
    server.base.mkdir(parents=True)
    bare = server.create_bare("base")
    work = tmp_path / "work"
    run_git("init", "--quiet", "--initial-branch=main", str(work))
    run_git("config", "user.email", "tests@fleet.invalid", cwd=work)
    run_git("config", "user.name", "fleet tests", cwd=work)
    run_git("remote", "add", "origin", str(bare), cwd=work)
    with https_server(server._handler(), tls) as url:
        yield url, work


def push_base(work: Path, version: str) -> str:
    (work / "app").mkdir(exist_ok=True)
    (work / "app" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (work / "app" / "cm.yaml").write_text(CONFIGMAP.format(v=version))
    run_git("add", "-A", cwd=work)
    run_git("commit", "--quiet", "-m", version, cwd=work)
    run_git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    return run_git("rev-parse", "HEAD", cwd=work)


def unit_and_manifests(repo: Path) -> tuple[str, list[dict[str, object]]]:
    state = DesiredState.target(load_repository(repo), "", FleetPlugins.load(entry_points=False))
    (unit,) = state.units
    return unit.deployment_id, state.manifests(unit)


def test_an_allowed_git_remote_is_pinned_in_the_deployment_id(
    tmp_path: Path, https_git: tuple[str, Path]
) -> None:
    url, work = https_git
    push_base(work, "1")
    remote = f"{url}/base.git//app?ref=main"
    repo = make_repo(
        tmp_path / "repo", f"resources:\n  - {remote}\n", "kustomizeRemoteHosts: [127.0.0.1]\n"
    )
    first_id, manifests = unit_and_manifests(repo)
    assert [m["data"] for m in manifests] == [{"v": "1"}]  # kustomize fetched it over https
    assert unit_and_manifests(repo)[0] == first_id  # same upstream commit, same id

    push_base(work, "2")  # upstream moves; the fleet repository does not change
    second_id, manifests = unit_and_manifests(repo)
    assert second_id != first_id
    assert [m["data"] for m in manifests] == [{"v": "2"}]


def test_a_missing_ref_is_an_error_naming_the_kustomization(
    tmp_path: Path, https_git: tuple[str, Path]
) -> None:
    url, work = https_git
    push_base(work, "1")
    repo = make_repo(
        tmp_path / "repo",
        f"resources:\n  - {url}/base.git//app?ref=v9\n",
        "kustomizeRemoteHosts: ['127.0.0.1']\n",
    )
    with pytest.raises(FleetError) as err:
        compute_units(load_repository(repo))
    (problem,) = err.value.problems
    assert (problem.file, problem.line) == (str(repo / "app" / "kustomization.yaml"), 2)
    assert problem.message == (
        f"kustomize remote '{url}/base.git//app?ref=v9': no ref 'v9' in {url}/base.git"
    )


def test_an_allowed_https_file_is_pinned_by_its_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = make_tls(tmp_path / "tls")
    tls.trust(monkeypatch)
    served = tmp_path / "served"
    served.mkdir()
    (served / "cm.yaml").write_text(CONFIGMAP.format(v="a"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    with https_server(handler, tls) as url:
        repo = make_repo(
            tmp_path / "repo",
            f"resources:\n  - {url}/cm.yaml\n",
            "kustomizeRemoteHosts: ['127.0.0.1']\n",
        )
        first_id, manifests = unit_and_manifests(repo)
        assert [m["data"] for m in manifests] == [{"v": "a"}]
        (served / "cm.yaml").write_text(CONFIGMAP.format(v="b"))
        second_id, manifests = unit_and_manifests(repo)
        assert second_id != first_id
        assert [m["data"] for m in manifests] == [{"v": "b"}]
    with pytest.raises(TransientError) as err:  # the server is gone: retry later
        load_repository(repo)
    assert err.value.problems[0].line == 2


def test_a_hung_remote_times_out_with_file_and_line(
    tmp_path: Path, silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_RENDER_TIMEOUT", "1")
    for resource in (f"{silent_server}/cm.yaml", f"{silent_server}/base.git//app?ref=main"):
        repo = make_repo(
            tmp_path / str(abs(hash(resource))),
            f"resources:\n  - {resource}\n",
            "kustomizeRemoteHosts: ['127.0.0.1']\n",
        )
        with pytest.raises(TransientError) as err:
            load_repository(repo)
        (problem,) = err.value.problems
        assert (problem.file, problem.line) == (str(repo / "app" / "kustomization.yaml"), 2)
        assert "timed out" in problem.message, problem.message


def test_a_kustomization_linking_outside_is_refused_unread(tmp_path: Path) -> None:
    """Its references are never parsed, so nothing of the outside file reaches a message."""
    secret = tmp_path / "secret.yaml"
    secret.write_text("resources: [https://leak.example/hunter2]\n")
    repo = make_repo(tmp_path / "repo", "resources: []\n")
    (repo / "app" / "kustomization.yaml").unlink()
    (repo / "app" / "kustomization.yaml").symlink_to(secret)
    with pytest.raises(FleetError) as err:
        load_repository(repo)
    assert "hunter2" not in str(err.value)
    assert str(err.value) == (
        f"{repo}/app/kustomization.yaml: kustomization 'kustomization.yaml' is outside the "
        "repository"
    )
