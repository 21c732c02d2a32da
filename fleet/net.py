"""Every request fleet sends to a URL from Git goes through here (`FLEET_ALLOWED_HOSTS`).

Notifiers (`post_json`), the HTTP gate, the Prometheus gate, the registry client and
chart repository indexes send requests to hosts written in the repository. Before each
one, `check_url` resolves the host and refuses it when the operator's allow-list
(`fleet.allowlist`) does not admit it or when it is always refused: link-local addresses
(cloud metadata) and fleet's own Redis (`FLEET_REDIS_URL`'s host and port; a loopback
Redis makes every loopback address refused on that port). A
refusal is a `UrlRefused`: one line with the host and port and the setting's name, never
the URL's path, query or user info (a Slack webhook's path is its secret).

Redirects are never followed (a 3xx is the answer), so an allowed host cannot send fleet
on to a refused one. `http_client` is the httpx client gates use: every request it sends
is checked before a connection is opened. The name is resolved for the check and again by
the connection; a DNS server that answers differently the second time (rebinding) could
get past a network entry, which is why name entries for hosts the operator controls are
the stronger form.
"""

from __future__ import annotations

import contextlib
import socket
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx

from fleet import config
from fleet.allowlist import SETTING, HostPolicy, IPAddress, address_of
from fleet.errors import FleetError

DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlRefused(FleetError):
    """A request fleet will not send (see the module docstring)."""


class RefusedRequest(httpx.RequestError):
    """`UrlRefused` as httpx reports a request that could not be sent."""


def policy(settings: config.Settings | None = None) -> HostPolicy:
    """The allow-list of `settings` (default: this process's), with fleet's Redis."""
    settings = settings or config.current()
    endpoints: set[tuple[IPAddress, int]] = set()
    redis = urllib.parse.urlsplit(settings.redis_url)
    if redis.hostname:
        port = _port_of(redis, 6379)
        # a broker that does not resolve here cannot be reached from here either
        with contextlib.suppress(OSError):
            endpoints.update((a, port) for a in resolve(redis.hostname, port))
    return HostPolicy(settings.allowed_hosts, frozenset(endpoints), "fleet's Redis")


def check_url(url: str, settings: config.Settings | None = None) -> None:
    """Raise UrlRefused unless a request to `url` may be sent (see the module docstring);
    a name that does not resolve is an OSError, as the request would be."""
    host, port = endpoint(url)
    reason = policy(settings).refusal(host, port, resolve(host, port))
    if reason is not None:
        raise UrlRefused(f"refused: {reason}")


def url_problem(url: str, settings: config.Settings | None = None) -> str | None:
    """Why `url` is outside the allow-list, without resolving names (`fleet validate`), or
    None; placeholders (`{{cluster}}`) in the host are left to the request."""
    try:
        host, port = endpoint(url)
    except UrlRefused as err:
        return str(err)
    if "{" in host or "}" in host:
        return None
    reason = policy(settings).static_refusal(host, port)
    return f"refused: {reason}" if reason else None


def endpoint(url: str) -> tuple[str, int]:
    """The host (lower case, no brackets) and port of an http(s) URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise UrlRefused("only http:// and https:// URLs with a host")
    return parts.hostname, _port_of(parts, DEFAULT_PORTS[parts.scheme])


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal address: itself)."""
    literal = address_of(host)
    if literal is not None:
        return [literal]
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = (address_of(str(info[4][0])) for info in found)
    return [a for a in addresses if a is not None]


def http_client(**options: Any) -> httpx.Client:
    """An httpx client whose every request is checked (`check_url`) before it connects,
    and that never follows a redirect. `options` go to `httpx.Client`."""
    hooks = options.pop("event_hooks", {})
    hooks = {**hooks, "request": [request_guard(), *hooks.get("request", [])]}
    return httpx.Client(follow_redirects=False, event_hooks=hooks, **options)


def request_guard(settings: config.Settings | None = None) -> Callable[[httpx.Request], None]:
    """An httpx `request` event hook that checks (`check_url`) every request, redirects
    included, before it connects: `RefusedRequest` when refused, `httpx.ConnectError`
    when the name does not resolve. For clients that need their own options (the
    registry client, chart repository indexes)."""
    settings = settings or config.current()

    def guard(request: httpx.Request) -> None:
        try:
            check_url(str(request.url), settings)
        except UrlRefused as err:
            raise RefusedRequest(str(err), request=request) from None
        except OSError as err:
            raise httpx.ConnectError(f"cannot resolve {request.url.host}: {err}",
                                     request=request) from None  # fmt: skip

    return guard


def _port_of(parts: urllib.parse.SplitResult, default: int) -> int:
    try:
        return parts.port or default
    except ValueError:
        raise UrlRefused(f"{parts.hostname}: not a valid port ({SETTING})") from None
