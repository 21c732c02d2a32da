"""Built-in notifier `webhook`: the notification as JSON, signed with HMAC-SHA256.

    notifiers:
      - name: audit
        type: webhook
        url: https://audit.example.com/fleet     # or FLEET_NOTIFIER_<CREDENTIAL>_URL
        credential: audit-hook                   # FLEET_NOTIFIER_AUDIT_HOOK: the HMAC secret

The body is `Notification.to_json()` (type, title, severity, fleet, bundle, commit,
reason, resolved, clusters, statusUrl, events: every event's JSON). Headers:

- `X-Fleet-Signature-256: sha256=<hex>`: HMAC-SHA256 of the exact body with the secret
  (GitHub's webhook scheme: compare with a constant-time comparison), when a credential
  is set;
- `X-Fleet-Event`: the notification's type; `X-Fleet-Delivery`: a unique id, the same for
  every retry of one delivery, so a receiver can drop duplicates.

Retries: connection errors, timeouts, 429 and 5xx, `retries` times (default 3) with
exponential backoff; a 4xx is final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from fleet.plugin import Delivery, Notification, NotifierTarget, hookimpl, post_json

TYPE = "webhook"
SIGNATURE_HEADER = "X-Fleet-Signature-256"


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>` of `body` under `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@hookimpl
def fleet_notifier_types() -> list[str]:
    return ["webhook"]


@hookimpl
def fleet_notify(notifier: NotifierTarget, notification: Notification) -> Delivery | None:
    if notifier.type != TYPE:
        return None
    if notification.repeat:
        return Delivery(True, "reminders are for Alertmanager")
    url = notifier.api_url or notifier.url
    if not url:
        return Delivery.failed("webhook notifier has no url")
    if notifier.options.get("credentialEnv") and not notifier.secret:
        return Delivery.failed(f"{notifier.options['credentialEnv']} is not set")
    body = json.dumps(notification.to_json(), sort_keys=True).encode()
    headers = {"X-Fleet-Event": notification.type.value, "X-Fleet-Delivery": uuid.uuid4().hex}
    if notifier.secret:
        headers[SIGNATURE_HEADER] = signature(notifier.secret, body)
    return post_json(notifier, url, None, body=body, headers=headers)
