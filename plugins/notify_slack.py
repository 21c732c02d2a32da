"""Built-in notifier `slack`: a Slack incoming-webhook message with blocks.

    notifiers:
      - name: ops-chat
        type: slack
        credential: ops-slack      # FLEET_NOTIFIER_OPS_SLACK = https://hooks.slack.com/services/...

The incoming-webhook URL is itself the secret, so it comes from the operator's
environment (`FLEET_NOTIFIER_<CREDENTIAL>`, or `..._URL`), never from Git. The message:
`text` (the title: Slack's fallback for notifications), and `blocks`: a header, a section
with the title and message, a section of fields (fleet, bundle, commit, severity), at a
rollout's end a section with a line per wave (`canary: 1/1 Ready`), a context listing the
clusters, and a "fleet status" button when `FLEET_PUBLIC_URL` is set.
"""

from __future__ import annotations

from typing import Any

from fleet.plugin import Delivery, Notification, NotifierTarget, hookimpl, post_json

TYPE = "slack"
ICONS = {"info": ":large_green_circle:", "warning": ":warning:", "error": ":red_circle:"}
MAX_TEXT = 2900  # Slack: 3000 characters per section text


def message(notification: Notification) -> dict[str, Any]:
    """The webhook payload (Slack's Block Kit)."""
    level = "info" if notification.resolved else notification.severity.value
    head = f"{ICONS[level]} {notification.title}"
    first = notification.events[0]
    detail = (
        first.message
        if len(notification.events) == 1
        else (f"{len(notification.events)} units: {first.message}")
    )
    fields = [
        {"type": "mrkdwn", "text": f"*Fleet*\n{notification.fleet or '-'}"},
        {"type": "mrkdwn", "text": f"*Bundle*\n{notification.bundle or '-'}"},
        {"type": "mrkdwn", "text": f"*Commit*\n`{notification.commit[:12] or '-'}`"},
        {"type": "mrkdwn", "text": f"*Severity*\n{level}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(head, 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(detail, MAX_TEXT)}},
        {"type": "section", "fields": fields},
    ]
    waves = first.details.get("waves") if len(notification.events) == 1 else None
    if waves:  # a rollout's end: one line per wave
        lines = "\n".join(f"• {wave}" for wave in waves.split("; "))
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(lines, MAX_TEXT)}}
        )
    clusters = notification.clusters
    if clusters:
        more = f" (+{len(clusters) - 20})" if len(clusters) > 20 else ""
        shown = ", ".join(clusters[:20]) + more
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"clusters: {shown}"}]}
        )
    if notification.status_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "fleet status"},
                        "url": notification.status_url,
                    }
                ],
            }
        )
    return {"text": _cut(head, MAX_TEXT), "blocks": blocks}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@hookimpl
def fleet_notifier_types() -> list[str]:
    return ["slack"]


@hookimpl
def fleet_notify(notifier: NotifierTarget, notification: Notification) -> Delivery | None:
    if notifier.type != TYPE:
        return None
    if notification.repeat:
        return Delivery(True, "reminders are for Alertmanager")
    url = notifier.secret or notifier.api_url
    if not url:
        where = notifier.options.get("credentialEnv") or "a credential"
        return Delivery.failed(f"slack notifier needs its webhook URL in {where}")
    return post_json(notifier, url, message(notification))
