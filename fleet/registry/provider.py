"""What a registry provider plugin says about its registry, and the generic OCI defaults.

A `fleet_registry` plugin returns a `RegistryProvider` for a host. The base class is the
generic OCI registry (distribution, Harbor, Zot, ...); provider plugins (Docker Hub, GHCR,
Quay) subclass it and change only what their service does differently: where the API
lives, how a short name is completed, which token realms may receive credentials, and how
it announces rate limits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fleet.registry.reference import ImageReference

if TYPE_CHECKING:
    from fleet.registry.client import RegistryClient


@dataclass(frozen=True)
class RateLimit:
    """A registry's announced quota: `remaining` of `limit` per `window` seconds."""

    limit: int | None
    remaining: int | None
    window: int | None = None
    source: str | None = None  # who is counted (an IP, an account), when the registry says

    def __str__(self) -> str:
        per = f" per {self.window}s" if self.window else ""
        left = "?" if self.remaining is None else str(self.remaining)
        total = "?" if self.limit is None else str(self.limit)
        return f"rate limit: {left} of {total} left{per}"


# `100;w=21600` (the IETF RateLimit draft's quota policy), or a plain number
_QUOTA = re.compile(r"\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?")


def parse_quota(value: str | None) -> tuple[int | None, int | None]:
    """(number, window seconds) from `100;w=21600` or `100`; (None, None) if absent."""
    if not value:
        return None, None
    match = _QUOTA.match(value)
    if match is None:
        return None, None
    window = int(match.group(2)) if match.group(2) else None
    return int(match.group(1)), window


class RegistryProvider:
    """The generic OCI distribution registry; provider plugins override what differs."""

    name = "oci"

    def normalize(self, reference: ImageReference) -> ImageReference:
        """The reference as the API names it (Docker Hub completes `library/` here)."""
        return reference

    def api_host(self, host: str) -> str:
        """`host[:port]` that serves `/v2/` for references naming `host`."""
        return host

    def realm_allowed(self, realm: str, api_host: str) -> bool:
        """May credentials go to this token realm? Generic: https anywhere, or the registry's
        own host name (any scheme: a test bed's token server beside its registry)."""
        parts = urlsplit(realm)
        same_host = parts.hostname == urlsplit(f"https://{api_host}").hostname
        return parts.scheme == "https" or (parts.scheme == "http" and same_host)

    def rate_limit(self, headers: Mapping[str, str]) -> RateLimit | None:
        """The quota the response announced: `RateLimit-Limit`/`-Remaining` (IETF draft,
        `100;w=21600` form included) or `X-RateLimit-*`; None when it announced none."""
        for prefix in ("ratelimit-", "x-ratelimit-"):
            limit, window = parse_quota(headers.get(prefix + "limit"))
            remaining, window_left = parse_quota(headers.get(prefix + "remaining"))
            if limit is not None or remaining is not None:
                return RateLimit(limit, remaining, window or window_left)
        return None

    def list_tags(self, client: RegistryClient, repository: str) -> list[str]:
        """Every tag of `repository` (the distribution API, `Link` pagination)."""
        return client.tags(repository)
