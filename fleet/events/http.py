"""One HTTP delivery with retries and backoff, for notifier plugins (`fleet.plugin.post_json`).

Standard library only (urllib), so a notifier costs no dependency. An attempt that fails
in a way that may pass (a connection error, a timeout, 429, any 5xx) is retried
`target.retries` times, waiting `target.backoff` seconds doubled each time (capped at 30 s,
jittered: `fleet.backoff`); a 4xx other than 429 is final. The result is a `Delivery`
whose message never holds the request's headers or a secret, only the URL's host.

Every attempt first goes through `fleet.net.check_url` (the operator's
`FLEET_ALLOWED_HOSTS`, link-local and fleet's Redis always refused): a refused URL is a
final failure and no connection is opened. Redirects are not followed (a 3xx is final),
so an allowed receiver cannot forward the request to a refused host.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.backoff import Backoff
from fleet.events.model import Delivery, NotifierTarget
from fleet.net import UrlRefused, check_url

BACKOFF_CAP = 30.0
USER_AGENT = "fleet-notifier/1"


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes


def post_json(
    target: NotifierTarget,
    url: str,
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    method: str = "POST",
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST `payload` as JSON (or the exact `body` bytes) to `url`, retried with backoff."""
    data = body if body is not None else json.dumps(payload).encode()
    sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    where = _host(url)
    policy = Backoff(max(0.0, target.backoff), BACKOFF_CAP, jitter=True)
    attempts = 0
    last = ""
    for attempt in range(target.retries + 1):
        attempts += 1
        try:
            check_url(url)
            answer = _send(method, url, data, sent, target.timeout)
        except UrlRefused as err:
            return Delivery.failed(str(err), attempts - 1)
        except (urllib.error.URLError, OSError, ValueError) as err:
            last = f"{where}: {_reason(err)}"
        else:
            if 200 <= answer.status < 300:
                return Delivery(True, f"{where}: {answer.status}", attempts)
            last = f"{where}: HTTP {answer.status}"
            if answer.status < 500 and answer.status != 429:
                return Delivery.failed(last, attempts)
        if attempt < target.retries:
            sleep(policy.delay(attempt, random.random))
    return Delivery.failed(f"{last} (after {attempts} attempts)", attempts)


def _send(
    method: str, url: str, data: bytes, headers: Mapping[str, str], timeout: float
) -> HttpAnswer:
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http:// and https:// URLs")
    request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return HttpAnswer(int(response.status), response.read(1 << 20))
    except urllib.error.HTTPError as err:
        return HttpAnswer(int(err.code), err.read(1 << 16) if err.fp else b"")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is the answer: following it could lead past the allow-list."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _host(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    return parsed.netloc.rpartition("@")[2] or "?"


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err.reason, str):
        return type(err.reason).__name__
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return type(err).__name__ if not isinstance(err, ValueError) else str(err)
