"""Built-in notifiers `github` and `gitlab`: a commit status per commit fleet rolls out.

    notifiers:
      - name: pr-status
        type: github                       # or gitlab
        repository: acme/fleet             # gitlab: the project id or group/project
        credential: github-status          # FLEET_NOTIFIER_GITHUB_STATUS: the token
        events: [commit.*, rollout.*]

`commit.detected` -> pending ("rolling out ..."), `rollout.succeeded` -> success,
`rollout.failed` and `commit.rejected` -> failure (GitLab: `failed`), with the context
`fleet/<fleet>` (or `context:`) and a link to `fleet serve`'s /status when
`FLEET_PUBLIC_URL` is set. Other events are answered as delivered, with nothing sent.

The endpoints, exactly as documented:

- GitHub: `POST {api}/repos/{owner}/{repo}/statuses/{sha}` with `{state, target_url,
  description, context}`, `Authorization: Bearer <token>`, `Accept:
  application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28`; `{api}` is
  `https://api.github.com` unless the operator sets `FLEET_NOTIFIER_<CREDENTIAL>_URL`
  (GitHub Enterprise: `https://HOST/api/v3`; Gitea and Forgejo, whose status API has
  GitHub's shape: `https://HOST/api/v1`, tested against a real Gitea).
- GitLab: `POST {api}/projects/:id/statuses/:sha` with `{state, name, target_url,
  description}` and `PRIVATE-TOKEN: <token>`; `{api}` is `https://gitlab.com/api/v4`
  unless `FLEET_NOTIFIER_<CREDENTIAL>_URL` says otherwise.

The token goes only to that API URL, never to a `url` from Git (a commit could point it
at any host). The description is at most 140 characters (GitHub's limit).
"""

from __future__ import annotations

import urllib.parse

from fleet.plugin import Delivery, EventType, Notification, NotifierTarget, hookimpl, post_json

GITHUB_API = "https://api.github.com"
GITLAB_API = "https://gitlab.com/api/v4"
GITHUB_STATES = {
    EventType.COMMIT_DETECTED: "pending",
    EventType.ROLLOUT_SUCCEEDED: "success",
    EventType.ROLLOUT_FAILED: "failure",
    EventType.COMMIT_REJECTED: "failure",
}
GITLAB_STATES = {
    EventType.COMMIT_DETECTED: "pending",
    EventType.ROLLOUT_SUCCEEDED: "success",
    EventType.ROLLOUT_FAILED: "failed",
    EventType.COMMIT_REJECTED: "failed",
}


def description(notification: Notification) -> str:
    text = notification.events[0].message if notification.events else notification.title
    return text if len(text) <= 140 else text[:137] + "..."


def _check(notifier: NotifierTarget) -> str | None:
    if not notifier.secret:
        where = notifier.options.get("credentialEnv") or "a credential"
        return f"{notifier.type} notifier needs a token in {where}"
    if not notifier.options.get("repository"):
        return f"{notifier.type} notifier needs repository"
    return None


def github_status(notifier: NotifierTarget, notification: Notification) -> Delivery:
    state = GITHUB_STATES.get(notification.type)
    if state is None or not notification.commit:
        return Delivery(True, f"{notification.type.value} is not a commit status")
    problem = _check(notifier)
    if problem:
        return Delivery.failed(problem)
    owner_repo = notifier.options["repository"].strip("/")
    api = (notifier.api_url or GITHUB_API).rstrip("/")
    url = f"{api}/repos/{owner_repo}/statuses/{notification.commit}"
    body = {
        "state": state,
        "description": description(notification),
        "context": notifier.options.get("context", "fleet"),
    }
    if notification.status_url:
        body["target_url"] = notification.status_url
    headers = {
        "Authorization": f"Bearer {notifier.secret}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    return post_json(notifier, url, body, headers=headers)


def gitlab_status(notifier: NotifierTarget, notification: Notification) -> Delivery:
    state = GITLAB_STATES.get(notification.type)
    if state is None or not notification.commit:
        return Delivery(True, f"{notification.type.value} is not a commit status")
    problem = _check(notifier)
    if problem:
        return Delivery.failed(problem)
    project = urllib.parse.quote(notifier.options["repository"].strip("/"), safe="")
    api = (notifier.api_url or GITLAB_API).rstrip("/")
    url = f"{api}/projects/{project}/statuses/{notification.commit}"
    body = {
        "state": state,
        "name": notifier.options.get("context", "fleet"),
        "description": description(notification),
    }
    if notification.status_url:
        body["target_url"] = notification.status_url
    return post_json(notifier, url, body, headers={"PRIVATE-TOKEN": str(notifier.secret)})


@hookimpl
def fleet_notifier_types() -> list[str]:
    return ["github", "gitlab"]


@hookimpl
def fleet_notify(notifier: NotifierTarget, notification: Notification) -> Delivery | None:
    if notifier.type in ("github", "gitlab") and notification.repeat:
        return Delivery(True, "reminders are for Alertmanager")
    if notifier.type == "github":
        return github_status(notifier, notification)
    if notifier.type == "gitlab":
        return gitlab_status(notifier, notification)
    return None
