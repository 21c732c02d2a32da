"""Built-in notifier `alertmanager`: alerts to Prometheus Alertmanager's `/api/v2/alerts`.

    notifiers:
      - name: alerts
        type: alertmanager
        url: http://alertmanager.monitoring:9093     # or FLEET_NOTIFIER_<CREDENTIAL>_URL

One alert per failing unit (`FleetUnitFailed`, labels fleet, bundle, cluster, severity
`error`) or unreachable cluster (`FleetClusterUnreachable`), so Alertmanager's own
grouping, silences and inhibitions work on fleet's labels. A firing alert's `endsAt` is
24 hours ahead (fleet sends a failure once, not every tick); the recovery sends the same
labels with `endsAt` now, which resolves it. A grouped notification is one POST of all
its alerts. Every `FLEET_ALERT_RESEND` seconds (default an hour) `fleet serve` sends what
is still failing again (`Notification.repeat`), which moves `endsAt` on, as Prometheus
re-sends its alerts: an alert is only left to expire when fleet stops. With a
credential, its secret goes as `Authorization: Bearer`, and only to the operator's
`FLEET_NOTIFIER_<CREDENTIAL>_URL`: a secret with nothing but the definition's `url` (from
Git, which could point it at any host) is a failed delivery naming the variable, with
nothing sent. Other event types are not alerts
(they are answered as delivered, with nothing sent).
"""

from __future__ import annotations

import time
from typing import Any

from fleet.plugin import Delivery, EventType, Notification, NotifierTarget, hookimpl, post_json

TYPE = "alertmanager"
FIRING_FOR = 24 * 3600.0
ALERT_NAMES = {
    EventType.UNIT_FAILED: "FleetUnitFailed",
    EventType.UNIT_APPLIED: "FleetUnitFailed",  # a recovery resolves the failure
    EventType.BUNDLE_REMOVED: "FleetUnitFailed",
    EventType.CLUSTER_UNREACHABLE: "FleetClusterUnreachable",
    EventType.CLUSTER_RECOVERED: "FleetClusterUnreachable",
}


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (
        f".{int(seconds % 1 * 1000):03d}Z"
    )


def alerts(notification: Notification, now: float | None = None) -> list[dict[str, Any]]:
    """The alerts of a notification (empty: not an alert type, or a non-recovery)."""
    name = ALERT_NAMES.get(notification.type)
    firing = notification.type in (EventType.UNIT_FAILED, EventType.CLUSTER_UNREACHABLE)
    if name is None or not (firing or notification.resolved):
        return []
    moment = time.time() if now is None else now
    out = []
    for event in notification.events:
        labels = {"alertname": name, "fleet": event.fleet or notification.fleet}
        if name == "FleetUnitFailed":
            labels["bundle"] = event.bundle or ""
        labels["cluster"] = event.cluster or ""
        labels["severity"] = "error"  # the same labels firing and resolved: one alert
        alert: dict[str, Any] = {"labels": labels}
        if firing:
            alert["annotations"] = {
                "summary": notification.title,
                "description": event.message,
                "commit": event.commit,
            }
            alert["startsAt"] = _stamp(event.time)
            alert["endsAt"] = _stamp(moment + FIRING_FOR)
        else:
            alert["endsAt"] = _stamp(moment)
        if notification.status_url:
            alert["generatorURL"] = notification.status_url
        out.append(alert)
    return out


@hookimpl
def fleet_notifier_types() -> list[str]:
    return ["alertmanager"]


@hookimpl
def fleet_notify(notifier: NotifierTarget, notification: Notification) -> Delivery | None:
    if notifier.type != TYPE:
        return None
    base = notifier.api_url or notifier.url
    if not base:
        return Delivery.failed("alertmanager notifier has no url")
    if notifier.secret and not notifier.api_url:
        variable = notifier.options.get("credentialEnv") or "FLEET_NOTIFIER_<CREDENTIAL>"
        return Delivery.failed(
            f"alertmanager notifier {notifier.name!r}: its credential goes only to "
            f"{variable}_URL, not to the definition's url: set {variable}_URL"
        )
    body = alerts(notification)
    if not body:
        return Delivery(True, f"{notification.type.value} is not an alert")
    headers = {"Authorization": f"Bearer {notifier.secret}"} if notifier.secret else {}
    return post_json(notifier, base.rstrip("/") + "/api/v2/alerts", body, headers=headers)
