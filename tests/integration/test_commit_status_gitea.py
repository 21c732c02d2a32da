"""fleet's `github` commit-status notifier against a real forge: Gitea, whose status API
follows GitHub's under `/api/v1` (the operator sets `FLEET_NOTIFIER_<CREDENTIAL>_URL` to
`https://HOST/api/v1`).

Each status goes the way the runtimes send it: a definition's notifier entry, its
secret and URL from the operator's environment (`routes`), the `Notifier` that groups
and sends, the plugin hook, and an HTTP POST to Gitea. The statuses are then read back
from Gitea's own API, on a commit really pushed to it over HTTP."""

from __future__ import annotations

from pathlib import Path

from fleet.events.delivery import Notifier
from fleet.events.model import Event, EventType
from fleet.events.routing import routes
from fleet.plugin.manager import FleetPlugins
from fleet.spec.definition import NotifierSpec
from tests.support.gitea import GiteaServer

STATUS_URL = "http://fleet.example.invalid:8080/status"


def notifier(gitea: GiteaServer, repo: str, token: str, reported: list[Event]) -> Notifier:
    spec = NotifierSpec.model_validate(
        {"name": "pr-status", "type": "github", "repository": repo,
         "credential": "gitea-status", "events": ["commit.*", "rollout.*"]}
    )  # fmt: skip
    env = {"FLEET_NOTIFIER_GITEA_STATUS": token, "FLEET_NOTIFIER_GITEA_STATUS_URL": gitea.api}
    plugins = FleetPlugins.load(entry_points=False)
    return Notifier(
        routes([spec], "acme", env, backoff=0.01),
        plugins.notify,
        fleet="acme",
        group_wait=0.0,
        status_url=STATUS_URL,
        report=reported.append,
    )


def send(note: Notifier, kind: EventType, message: str, sha: str) -> None:
    note.add([Event(kind, message, fleet="acme", commit=sha)], 0.0)
    note.close(30.0)  # flushes, then waits for the sender's deliveries


def test_pending_then_success_land_on_the_commit_in_gitea(
    gitea: GiteaServer, tmp_path: Path
) -> None:
    repo = gitea.create_repo("fleet-config")
    sha = gitea.push_commit(repo, tmp_path / "work", {"clusters/dev.yaml": "replicas: 1\n"})
    reported: list[Event] = []
    send(notifier(gitea, repo, gitea.token, reported), EventType.COMMIT_DETECTED,
         f"commit {sha[:12]}: rolling out", sha)  # fmt: skip
    [pending] = gitea.statuses(repo, sha)
    assert pending["status"] == "pending"
    assert pending["context"] == "fleet/acme"
    assert pending["description"] == f"commit {sha[:12]}: rolling out"
    assert pending["target_url"] == STATUS_URL
    send(notifier(gitea, repo, gitea.token, reported), EventType.ROLLOUT_SUCCEEDED,
         "rolled out to 3 clusters", sha)  # fmt: skip
    assert reported == []
    newest = gitea.statuses(repo, sha)
    assert [s["status"] for s in newest] == ["success", "pending"]
    assert newest[0]["description"] == "rolled out to 3 clusters"
    # the combined status Gitea shows on the commit is fleet's latest for its context
    combined = gitea.request("GET", f"/repos/{repo}/commits/{sha}/status")
    assert combined["state"] == "success"
    assert [s["context"] for s in combined["statuses"]] == ["fleet/acme"]


def test_a_failed_rollout_marks_the_commit_failed_and_a_bad_token_is_reported(
    gitea: GiteaServer, tmp_path: Path
) -> None:
    repo = gitea.create_repo("fleet-config-failing")
    sha = gitea.push_commit(repo, tmp_path / "work", {"bundles/web.yaml": "image: web:2\n"})
    reported: list[Event] = []
    send(notifier(gitea, repo, gitea.token, reported), EventType.ROLLOUT_FAILED,
         "prod-eu: ErrApplied: image pull back-off " + "x" * 300, sha)  # fmt: skip
    assert reported == []
    [failed] = gitea.statuses(repo, sha)
    assert failed["status"] == "failure"
    assert failed["description"].startswith("prod-eu: ErrApplied")
    assert len(failed["description"]) == 140
    # a token Gitea does not know: reported as a failed delivery, nothing lands, the
    # token is not in the report
    wrong = "0" * 40
    send(notifier(gitea, repo, wrong, reported), EventType.ROLLOUT_SUCCEEDED, "done", sha)
    [event] = reported
    assert event.type is EventType.NOTIFIER_FAILED
    assert "HTTP 401" in event.message and wrong not in event.message
    assert [s["status"] for s in gitea.statuses(repo, sha)] == ["failure"]
    # a repository that is not there is a failed delivery too (Gitea answers 404)
    send(notifier(gitea, f"{gitea.owner}/missing", gitea.token, reported),
         EventType.ROLLOUT_SUCCEEDED, "done", sha)  # fmt: skip
    assert len(reported) == 2 and "HTTP 404" in reported[1].message
