"""An OCI distribution API client: auth challenges, tokens, tags, manifests, retries.

Built on `httpx` (synchronous `httpx.Client`): kept, typed, HTTP/1.1 keep-alive, explicit
timeouts, no redirect following unless asked (so an `Authorization` header is never
carried to another host), and a `MockTransport` for replaying recorded provider responses
in unit tests. No OCI library fits: oras-py and the docker SDK drag in a daemon's or
requests' view of auth, and none handles provider quirks (Docker Hub's `library/`, Quay's
tag API) through plugins; the distribution API fleet needs is a handful of GET/HEAD calls.

How a request is authorised (the Docker token protocol, which every registry speaks):
1. send it with the token cached for (registry, scope), or none (anonymous first; a
   registry that asked for Basic once gets the credential from the start);
2. on 401, read `WWW-Authenticate`: `Basic` -> retry once with the credential; `Bearer
   realm=...,service=...,scope=...` -> GET the realm with `service` and `scope` (Basic
   credential when there is one, anonymous otherwise), cache the token for its
   `expires_in` (default 60 s) under (registry, scope), retry once;
3. 429 (and 503) wait `Retry-After` seconds (capped) or the backoff's delay, a few times,
   then fail as transient.

Errors are `FleetError`s of one line naming the registry, the repository and the status;
never a credential or a token (messages are scrubbed of both).
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from fleet import config
from fleet.backoff import Backoff
from fleet.errors import FleetError, TransientError, UserError
from fleet.net import RefusedRequest, request_guard
from fleet.registry.challenge import Challenge, parse_challenges
from fleet.registry.credentials import Credential
from fleet.registry.provider import RateLimit, RegistryProvider

log = logging.getLogger(__name__)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# all four, or a registry down-converts (Docker v2 -> schema 1) and answers another digest
MANIFEST_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)

DEFAULT_BACKOFF = Backoff(base=1.0, cap=30.0, jitter=True)  # 429/5xx without Retry-After
DEFAULT_TOKEN_TTL = 60.0
TOKEN_MARGIN = 10.0  # renew a token this many seconds before it expires
MAX_PAGES = 1000
MAX_RETRY_AFTER = 60.0  # a Retry-After above this is cut: a task must not sleep for hours
RETRY_STATUSES = (429, 502, 503, 504)


@dataclass(frozen=True)
class ManifestInfo:
    """What a manifest HEAD/GET said: its digest, media type and size."""

    digest: str
    media_type: str
    size: int | None = None


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass
class TokenCache:
    """Bearer tokens per (registry, scope), until shortly before they expire. Thread-safe;
    one cache may be shared by every client of a process."""

    clock: Callable[[], float] = time.monotonic
    _tokens: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, registry: str, scope: str) -> str | None:
        with self._lock:
            found = self._tokens.get((registry, scope))
            if found is None or found[1] <= self.clock():
                return None
            return found[0]

    def put(self, registry: str, scope: str, token: str, ttl: float) -> None:
        with self._lock:
            self._tokens[(registry, scope)] = (token, self.clock() + max(ttl - TOKEN_MARGIN, 1.0))


def tls_context(settings: config.Settings) -> ssl.SSLContext:
    """The system's trust store, or `SSL_CERT_FILE` / `SSL_CERT_DIR` of the settings' env
    (a private registry's CA, as for helm and git)."""
    env = settings.env
    return ssl.create_default_context(
        cafile=env.get("SSL_CERT_FILE") or None, capath=env.get("SSL_CERT_DIR") or None
    )


class RegistryClient:
    """One registry (a host), as one provider sees it, with an optional credential."""

    def __init__(
        self,
        host: str,
        provider: RegistryProvider | None = None,
        credential: Credential | None = None,
        *,
        settings: config.Settings | None = None,
        tokens: TokenCache | None = None,
        transport: httpx.BaseTransport | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider or RegistryProvider()
        self.host = host
        self.api_host = self.provider.api_host(host)
        self.base_url = f"https://{self.api_host}"
        self.credential = credential
        self.tokens = tokens or TokenCache()
        self.backoff = backoff
        self.max_retries = max_retries
        self.sleep = sleep
        self.rate_limit: RateLimit | None = None  # the last one a response announced
        self._basic = False  # the registry asked for Basic once: send it from the start
        settings = settings or config.current()
        # every request (tags, manifests, token realms) is checked by fleet.net first:
        # FLEET_ALLOWED_HOSTS, never link-local or fleet's Redis. A replayed exchange
        # (`transport`, unit tests) goes nowhere, so it is not resolved.
        hooks = {"request": [request_guard(settings)]} if transport is None else {}
        self._http = httpx.Client(
            transport=transport,
            event_hooks=hooks,
            verify=tls_context(settings) if transport is None else True,
            timeout=httpx.Timeout(settings.registry_timeout),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "fleet-gitops"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API ---------------------------------------------------------------------

    def tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag, following `Link: <...>; rel="next"` (relative links resolved against
        the page's URL; a link to another host is an error, never followed)."""
        url = f"{self.base_url}/v2/{repository}/tags/list"
        if page_size:
            url += f"?n={page_size}"
        found: list[str] = []
        for _ in range(MAX_PAGES):
            response = self.get(url, repository, what=f"tags of {repository}")
            body = _json(response, f"tags of {repository}", self.host)
            found.extend(str(tag) for tag in body.get("tags") or [])
            following = next_link(response.headers.get("link"), url)
            if following is None:
                return found
            if urlsplit(following).netloc != urlsplit(self.base_url).netloc:
                raise FleetError(
                    f"registry {self.host}: tags of {repository}: pagination link to another "
                    f"host ({urlsplit(following).netloc}) refused"
                )
            url = following
        raise FleetError(f"registry {self.host}: tags of {repository}: over {MAX_PAGES} pages")

    def head_manifest(self, repository: str, reference: str) -> ManifestInfo:
        """Digest and media type of a tag or digest (HEAD; Docker Hub does not count a HEAD
        as a pull). A registry that sends no `Docker-Content-Digest` is asked with GET."""
        what = f"manifest {repository}:{reference}"
        url = f"{self.base_url}/v2/{repository}/manifests/{reference}"
        response = self.send("HEAD", url, repository, what=what, accept=MANIFEST_TYPES)
        digest = response.headers.get("docker-content-digest")
        if not digest:
            return self.get_manifest(repository, reference)[0]
        return ManifestInfo(digest, _media_type(response), _length(response))

    def get_manifest(self, repository: str, reference: str) -> tuple[ManifestInfo, dict[str, Any]]:
        """The manifest (or index) itself and its digest (the header, else the body's sha256)."""
        what = f"manifest {repository}:{reference}"
        url = f"{self.base_url}/v2/{repository}/manifests/{reference}"
        response = self.send("GET", url, repository, what=what, accept=MANIFEST_TYPES)
        body = _json(response, what, self.host)
        digest = response.headers.get("docker-content-digest") or (
            "sha256:" + hashlib.sha256(response.content).hexdigest()
        )
        media_type = _media_type(response) or str(body.get("mediaType") or "")
        return ManifestInfo(digest, media_type, len(response.content)), body

    def platforms(self, repository: str, reference: str) -> list[Platform]:
        """The platforms of a multi-arch index; [] for a single-platform manifest."""
        info, body = self.get_manifest(repository, reference)
        if info.media_type not in INDEX_TYPES:
            return []
        result = []
        for entry in body.get("manifests") or []:
            platform = entry.get("platform") or {}
            if platform.get("os") and platform.get("architecture"):
                result.append(
                    Platform(platform["os"], platform["architecture"], platform.get("variant"))
                )
        return result

    def check_platform(self, repository: str, reference: str, wanted: Platform) -> None:
        """FleetError when `reference` is an index without `wanted` (a single-platform
        image passes: its config names its platform, which pinning does not fetch)."""
        found = self.platforms(repository, reference)
        if not found:
            return
        if any(_platform_matches(p, wanted) for p in found):
            return
        listed = ", ".join(str(p) for p in found)
        raise FleetError(
            f"registry {self.host}: {repository}:{reference} has no {wanted} image "
            f"(platforms: {listed})"
        )

    # -- requests --------------------------------------------------------------------

    def get(self, url: str, repository: str, *, what: str) -> httpx.Response:
        return self.send("GET", url, repository, what=what)

    def send(
        self,
        method: str,
        url: str,
        repository: str | None,
        *,
        what: str,
        accept: tuple[str, ...] = (),
    ) -> httpx.Response:
        """One authorised request with retries on 429/5xx; FleetError unless 2xx."""
        scope = f"repository:{repository}:pull" if repository else ""
        headers = {"Accept": ", ".join(accept)} if accept else {}
        attempt = 0
        while True:
            response = self._authorised(method, url, scope, headers, what)
            self._note_rate_limit(response)
            if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                break
            delay = self._retry_delay(response, attempt)
            log.warning(
                "registry %s: %s: HTTP %s, will retry in %.0fs%s",
                self.host,
                what,
                response.status_code,
                delay,
                f" ({self.rate_limit})" if self.rate_limit else "",
            )
            self.sleep(delay)
            attempt += 1
        if response.is_success:
            return response
        raise self._error(response, what)

    def _authorised(
        self, method: str, url: str, scope: str, headers: dict[str, str], what: str
    ) -> httpx.Response:
        if self._basic and self.credential is not None:
            return self._send(self._basic_request(method, url, headers), what)
        token = self.tokens.get(self.api_host, scope)
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        response = self._request(method, url, {**headers, **auth}, what)
        if response.status_code != 401:
            return response
        challenge = _pick(parse_challenges(response.headers.get("www-authenticate", "")))
        if challenge is None:
            return response
        if challenge.scheme == "basic":
            if self.credential is None:
                return response
            self._basic = True
            return self._send(self._basic_request(method, url, headers), what)
        token = self._fetch_token(challenge, scope, what)
        return self._request(method, url, {**headers, "Authorization": f"Bearer {token}"}, what)

    def _basic_request(self, method: str, url: str, headers: dict[str, str]) -> httpx.Request:
        assert self.credential is not None
        basic = httpx.BasicAuth(self.credential.username, self.credential.password)
        return next(basic.auth_flow(self._http.build_request(method, url, headers=headers)))

    def _fetch_token(self, challenge: Challenge, scope: str, what: str) -> str:
        realm = challenge.realm
        if not realm:
            raise FleetError(f"registry {self.host}: {what}: Bearer challenge without a realm")
        if not self.provider.realm_allowed(realm, self.api_host):
            raise FleetError(
                f"registry {self.host}: {what}: token realm {_origin(realm)} refused "
                "(credentials go only to https realms or the registry's own host)"
            )
        params = {"service": challenge.params.get("service", "")}
        wanted = challenge.params.get("scope") or scope
        if wanted:
            params["scope"] = wanted
        params = {k: v for k, v in params.items() if v}
        auth = (
            httpx.BasicAuth(self.credential.username, self.credential.password)
            if self.credential
            else None
        )
        try:
            response = self._http.get(realm, params=params, auth=auth)
        except RefusedRequest as err:
            raise UserError(f"registry {self.host}: {what}: token service: {err}") from None
        except httpx.HTTPError as err:
            raise TransientError(
                f"registry {self.host}: {what}: token service {_origin(realm)} unreachable "
                f"({type(err).__name__})"
            ) from None
        if response.status_code in (401, 403):
            who = "the credential was refused" if self.credential else "anonymous access refused"
            raise UserError(
                f"registry {self.host}: {what}: token service {_origin(realm)}: {who} "
                f"(HTTP {response.status_code})"
            )
        if not response.is_success:
            raise TransientError(
                f"registry {self.host}: {what}: token service {_origin(realm)}: "
                f"HTTP {response.status_code}"
            )
        body = _json(response, f"token for {what}", self.host)
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise FleetError(f"registry {self.host}: {what}: token service sent no token")
        ttl = body.get("expires_in")
        ttl_seconds = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else DEFAULT_TOKEN_TTL
        self.tokens.put(self.api_host, scope, token, ttl_seconds)
        return token

    def _request(self, method: str, url: str, headers: dict[str, str], what: str) -> httpx.Response:
        return self._send(self._http.build_request(method, url, headers=headers), what)

    def _send(self, request: httpx.Request, what: str) -> httpx.Response:
        try:
            return self._http.send(request)
        except RefusedRequest as err:
            raise UserError(f"registry {self.host}: {what}: {err}") from None
        except httpx.HTTPError as err:
            raise TransientError(
                f"registry {self.host}: {what}: cannot reach {self.api_host} ({type(err).__name__})"
            ) from None

    def _note_rate_limit(self, response: httpx.Response) -> None:
        limit = self.provider.rate_limit(response.headers)
        if limit is not None:
            self.rate_limit = limit
            log.debug("registry %s: %s", self.host, limit)

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        after = retry_after(response.headers.get("retry-after"))
        if after is None:
            return self.backoff.delay(attempt)
        return min(after, MAX_RETRY_AFTER)

    def _error(self, response: httpx.Response, what: str) -> FleetError:
        status = response.status_code
        detail = _registry_error(response)
        if self.credential is not None:  # a registry that echoes what it was sent
            detail = detail.replace(self.credential.password, "***")
        message = f"registry {self.host}: {what}: HTTP {status}{detail}"
        if status in RETRY_STATUSES:
            limit = f" ({self.rate_limit})" if self.rate_limit else ""
            after = retry_after(response.headers.get("retry-after"))
            return TransientError(message + limit, retry_after=after or 30.0)
        if status in (401, 403):
            who = "with the credential" if self.credential else "anonymously"
            return UserError(f"{message} (denied {who})")
        return UserError(message)


def next_link(header: str | None, base: str) -> str | None:
    """The `rel="next"` target of a `Link` header, resolved against `base`."""
    if not header:
        return None
    for part in header.split(","):
        target, _, params = part.partition(";")
        target = target.strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        rels = [p.strip() for p in params.split(";")]
        if any(r.replace(" ", "") in ('rel="next"', "rel=next") for r in rels):
            return urljoin(base, target[1:-1])
    return None


def retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _pick(challenges: list[Challenge]) -> Challenge | None:
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


def _platform_matches(found: Platform, wanted: Platform) -> bool:
    if (found.os, found.architecture) != (wanted.os, wanted.architecture):
        return False
    return wanted.variant is None or found.variant == wanted.variant


def _media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";")[0].strip()


def _length(response: httpx.Response) -> int | None:
    raw = response.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


def _json(response: httpx.Response, what: str, host: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise FleetError(f"registry {host}: {what}: the answer is not JSON") from None
    if not isinstance(body, dict):
        raise FleetError(f"registry {host}: {what}: the answer is not a JSON object")
    return body


def _registry_error(response: httpx.Response) -> str:
    """`: CODE message` from the distribution error body, one line, at most 200 characters."""
    try:
        body = response.json()
        first = body["errors"][0]
        text = f"{first.get('code', '')} {first.get('message', '')}".strip()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""
    text = " ".join(text.split())[:200]
    return f": {text}" if text else ""
