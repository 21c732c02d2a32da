"""One connection to one cluster: raw JSON requests, cached discovery, errors typed by what next.

Why raw requests through `ApiClient.param_serialize` + `call_api` rather than the typed APIs
or the dynamic client: the engine handles any kind (CRDs included) as plain dicts; the typed
APIs would deserialize into models and back, and the dynamic client re-wraps every response
in `ResourceInstance` objects and has its own discovery cache on disk. Raw calls keep the
per-object overhead at one `json.dumps` and one `json.loads`, reuse the kubernetes client's
kubeconfig loading, TLS, token refresh and connection pool, and let us set the content type
server-side apply needs (`application/apply-patch+yaml`; JSON is valid YAML).

Errors are classified the kopf way, by what the caller should do next:
`ClusterUnreachable` (a `TransientError`) -> retry later with backoff (the worker does; its
`reason` is the bare cause, the retrying layer says when it retries); `Conflict`, `Invalid`,
`Forbidden`, `NotFound` (`PermanentError`s) -> report on the object and go on. Messages are
one line, name the cluster and the object, and never carry a Secret's data or any credential.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import urllib3
from kubernetes import config as k8s_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from fleet.errors import FleetError, PermanentError, TransientError
from fleet.manifest import Manifest

if TYPE_CHECKING:
    from fleet.engine.watch import Watches

log = logging.getLogger(__name__)


APPLY_PATCH = "application/apply-patch+yaml"
METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


@dataclass(frozen=True)
class ObjectRef:
    """Address of one object in a cluster; `namespace` is None for cluster-scoped ones."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @classmethod
    def of(cls, manifest: Manifest) -> ObjectRef:
        meta = manifest.get("metadata") or {}
        return cls(
            str(manifest.get("apiVersion", "")),
            str(manifest.get("kind", "")),
            meta.get("namespace") or None,
            str(meta.get("name", "")),
        )

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def to_dict(self) -> dict[str, str]:
        out = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        return out

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


@dataclass(frozen=True)
class ResourceType:
    """What discovery says about a kind: its plural resource name and scope."""

    group_version: str
    kind: str
    plural: str
    namespaced: bool

    def collection_path(self, namespace: str | None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{base}/{self.plural}"

    def object_path(self, namespace: str | None, name: str) -> str:
        return f"{self.collection_path(namespace)}/{quote(name, safe='')}"


class KubeError(FleetError):
    """An API request failed; subclasses say what to do next. `status` is the HTTP status."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ClusterUnreachable(KubeError, TransientError):
    """Connection refused, timeout, 429 or 5xx: retry the whole unit later with backoff.

    `reason` is the cause alone ("c1: GET ...: cannot reach the API server (...)"); `str()`
    adds "; will retry with backoff", what the engine's callers do with it. A caller that
    retries on its own schedule writes its own "will retry in Ns" after `reason`.
    """

    def __init__(self, reason: str, *, status: int = 0, retry_after: float = 10.0) -> None:
        super().__init__(reason, status=status)
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.reason}; will retry with backoff"


class Conflict(KubeError, PermanentError):
    """409: another field manager owns a field fleet sets (or an optimistic-lock race)."""


@dataclass(frozen=True)
class FieldCause:
    """One entry of a Status' `details.causes`: which field the server refused, and why."""

    field: str
    reason: str
    message: str


class Invalid(KubeError, PermanentError):
    """400/422 or an unknown kind: the user must fix the manifest; retrying will not help.

    `causes` are the server's per-field reasons (field path such as `spec.selector`)."""

    def __init__(
        self, message: str, *, status: int = 0, causes: tuple[FieldCause, ...] = ()
    ) -> None:
        super().__init__(message, status=status)
        self.causes = causes


class UnknownKind(Invalid):
    """The cluster serves no such kind at that apiVersion (its CRD is gone, or the version)."""


class Forbidden(KubeError, PermanentError):
    """401/403: the credentials fleet uses for this cluster lack a permission."""


class NotFound(KubeError, PermanentError):
    """404: the object (or its namespace, or its kind) does not exist."""


_SECRET_VALUE = re.compile(r'(Invalid value: )("(?:[^"\\]|\\.)*"|\S+)')


def _server_message(raw: bytes, kind: str | None) -> tuple[str, dict[str, Any]]:
    """The `message` of a Kubernetes Status body (first line), Secret values redacted."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or raw[:200].decode("utf-8", "replace")).strip()
    message = " ".join(message.split())  # one line, whatever the server sent
    if kind == "Secret":
        message = _SECRET_VALUE.sub(r"\1<redacted>", message)
    details = body.get("details")
    return message, details if isinstance(details, dict) else {}


def classify(
    status: int, raw: bytes, *, cluster: str, what: str, kind: str | None = None
) -> KubeError:
    """Turn a non-2xx response into the typed error that says what to do next."""
    message, details = _server_message(raw, kind)
    prefix = f"{cluster}: {what}"
    if status == 409:
        conflicts = [
            str(c.get("message", ""))
            for c in details.get("causes") or []
            if c.get("reason") == "FieldManagerConflict" or "conflict" in str(c.get("message"))
        ]
        fields = [str(c.get("field", "")) for c in details.get("causes") or [] if c.get("field")]
        if conflicts:
            owners = sorted({m.split(" using ")[0] for m in conflicts})
            fields_text = f" on {', '.join(fields[:5])}" if fields else ""
            return Conflict(
                f"{prefix}: {'; '.join(owners)}{fields_text} "
                "(set helm.force to take the fields over)",
                status=status,
            )
        return Conflict(f"{prefix}: conflict: {message}", status=status)
    if status in (400, 422):
        causes = tuple(
            FieldCause(str(c.get("field", "")), str(c.get("reason", "")), str(c.get("message", "")))
            for c in details.get("causes") or []
            if isinstance(c, dict)
        )
        return Invalid(f"{prefix}: invalid: {message}", status=status, causes=causes)
    if status == 401:
        return Forbidden(f"{prefix}: unauthorized (check this cluster's credentials)", status=401)
    if status == 403:
        return Forbidden(f"{prefix}: forbidden: {message}", status=status)
    if status == 404:
        return NotFound(f"{prefix}: not found: {message}", status=status)
    if status == 429 or status >= 500:
        return ClusterUnreachable(
            f"{prefix}: API server answered {status}: {message}",
            status=status,
        )
    return Invalid(f"{prefix}: HTTP {status}: {message}", status=status)


# Connections kept open per cluster: more than the concurrent jobs of a cluster
# (`fleet.runtime.cluster_pool`, FLEET_CLUSTER_CONCURRENCY) plus its health watches, so a
# job never opens (TLS handshake) and throws away a connection of its own. urllib3's
# default, 5 per CPU, was 10 here and discarded a connection per request at 40 jobs.
POOL_SIZE = 64


@dataclass
class _Shared:
    """What a connection and its siblings share: the health watches (one per resource
    type per cluster, `fleet.engine.watch`), started by the first wait that needs one."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    watches: Watches | None = None
    watch_health: bool = True


class ClusterConnection:
    """The API client of one cluster plus a discovery cache and request counters.

    `writes` counts requests that change the cluster (dry runs excluded): the no-op test and
    the benchmark read it. Not thread-safe: one sync uses one connection at a time; siblings
    (`sibling`) share the HTTP pool and the health watches, and each is used by one thread.
    """

    def __init__(
        self,
        name: str,
        api_client: Any,
        *,
        timeout: tuple[float, float] = (5.0, 60.0),
        watch_health: bool = True,
        _shared: _Shared | None = None,
    ) -> None:
        self.name = name
        self._api = api_client
        self._timeout = timeout
        self._discovery: dict[str, dict[str, ResourceType] | None] = {}
        self._owner = _shared is None
        self._shared = _shared or _Shared(watch_health=watch_health)
        self.requests = 0
        self.writes = 0

    @classmethod
    def from_kubeconfig(
        cls, path: str | Path, context: str | None = None, *, name: str | None = None
    ) -> ClusterConnection:
        """Connect with a kubeconfig file (the kubeconfig's current context unless `context`)."""
        label = name or context or Path(path).stem
        configuration = Configuration()
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (OSError, k8s_config.ConfigException) as err:
            # the loader's message names the file/context, never key material
            raise KubeError(f"{label}: cannot load kubeconfig {path}: {err}") from None
        configuration.connection_pool_maxsize = POOL_SIZE
        return cls(label, ApiClient(configuration=configuration))

    def close(self) -> None:
        """Close the HTTP pool (and stop the health watches) if this connection owns them;
        a sibling's close is a no-op: the owner's pool outlives it."""
        if not self._owner:
            return
        with self._shared.lock:
            watches, self._shared.watches = self._shared.watches, None
        if watches is not None:
            watches.close()
        self._api.close()

    @property
    def watches(self) -> Watches | None:
        """This cluster's health watches (started on first use), None when turned off."""
        shared = self._shared
        if not shared.watch_health:
            return None
        with shared.lock:
            if shared.watches is None:
                from fleet.engine.watch import Watches

                shared.watches = Watches(self.sibling())
            return shared.watches

    # ------------------------------------------------------------------ raw requests

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        what: str = "",
        kind: str | None = None,
    ) -> Manifest:
        """One API request; returns the decoded JSON body or raises a typed `KubeError`."""
        query = query or []
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        what = what or f"{method} {path}"
        self.requests += 1
        if method != "GET" and ("dryRun", "All") not in query:
            self.writes += 1
        response = self._send(method, path, query, headers, body, self._timeout, what)
        try:
            raw = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ClusterUnreachable(
                f"{self.name}: {what}: cannot reach the API server ({type(err).__name__})"
            ) from None
        if not 200 <= response.status < 300:
            raise classify(response.status, raw, cluster=self.name, what=what, kind=kind)
        if not raw:
            return {}
        decoded = json.loads(raw)
        return decoded if isinstance(decoded, dict) else {"items": decoded}

    def _send(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: Any,
        timeout: tuple[float, float],
        what: str,
    ) -> Any:
        """The client's response (body not read yet); an unreachable server is typed."""
        try:
            args = self._api.param_serialize(
                method,
                path,
                query_params=query,
                header_params=headers,
                body=body,  # bytes go out as they are; dicts are JSON-encoded by the client
                auth_settings=["BearerToken"],
            )
            return self._api.call_api(*args, _request_timeout=timeout)
        except ApiException as err:  # the client raises status 0 for TLS failures
            raise ClusterUnreachable(
                f"{self.name}: {what}: cannot reach the API server ({err.reason})"
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ClusterUnreachable(
                f"{self.name}: {what}: cannot reach the API server ({type(err).__name__})"
            ) from None

    def sibling(self) -> ClusterConnection:
        """A connection to the same cluster with its own counters and discovery cache,
        sharing the (thread-safe) HTTP pool: for a lock's heartbeat thread, whose
        requests are coordination, not writes of the sync."""
        return ClusterConnection(self.name, self._api, timeout=self._timeout, _shared=self._shared)

    def fork(self) -> ClusterConnection:
        """A sibling for one request run beside this connection's own (`fleet.engine.
        fanout`): it shares the discovery cache too (the kinds were resolved already), and
        its counters are added back with `join`."""
        forked = self.sibling()
        forked._discovery = self._discovery
        return forked

    def join(self, forked: ClusterConnection) -> None:
        """Count a fork's requests and writes as this connection's."""
        self.requests += forked.requests
        self.writes += forked.writes

    def stream(
        self,
        path: str,
        *,
        query: list[tuple[str, str]],
        read_timeout: float,
        what: str,
        opened: Callable[[Callable[[], None]], None] | None = None,
    ) -> Iterator[bytes]:
        """A streaming GET (a watch): the response body in chunks, as it arrives.

        Errors before the stream starts are typed like `request`'s; a broken stream
        raises ClusterUnreachable from the iteration. `opened` is given a function that
        ends the stream from another thread (the read blocks until the server sends).
        """
        self.requests += 1
        headers = {"Accept": "application/json"}
        response = self._send(
            "GET", path, query, headers, None, (self._timeout[0], read_timeout), what
        )
        raw = response.response  # urllib3's, not read yet (the client never preloads)
        if not 200 <= response.status < 300:
            raise classify(response.status, raw.read(), cluster=self.name, what=what)
        if opened is not None:
            opened(raw.shutdown)
        try:
            yield from raw.stream(decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            raise ClusterUnreachable(
                f"{self.name}: {what}: the stream broke ({type(err).__name__})"
            ) from None
        finally:
            raw.release_conn()

    # ------------------------------------------------------------------ discovery

    def resource(self, api_version: str, kind: str) -> ResourceType:
        """Plural and scope of (apiVersion, kind), cached; refreshed once on a miss.

        A miss refetches that one group version, so a kind whose CRD was just applied is
        found without dropping the whole cache. Unknown after that -> `Invalid`.
        """
        found = self._lookup(api_version, kind, refresh=False)
        if found is None:
            found = self._lookup(api_version, kind, refresh=True)
        if found is None:
            raise UnknownKind(
                f"{self.name}: {kind} ({api_version}): no such kind on this cluster "
                "(is its CustomResourceDefinition installed?)"
            )
        return found

    def invalidate(self, group_version: str | None = None) -> None:
        """Forget discovery for one group version (or all), e.g. after applying CRDs."""
        if group_version is None:
            self._discovery.clear()
        else:
            self._discovery.pop(group_version, None)

    def _lookup(self, api_version: str, kind: str, *, refresh: bool) -> ResourceType | None:
        if refresh or api_version not in self._discovery:
            self._discovery[api_version] = self._fetch_group_version(api_version)
        kinds = self._discovery[api_version]
        return kinds.get(kind) if kinds else None

    def _fetch_group_version(self, api_version: str) -> dict[str, ResourceType] | None:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            listing = self.request("GET", path, what=f"discovery of {api_version}")
        except NotFound:
            return None
        kinds: dict[str, ResourceType] = {}
        for res in listing.get("resources") or []:
            name = str(res.get("name", ""))
            if "/" in name or not res.get("kind"):
                continue  # subresources such as deployments/status
            kinds[str(res["kind"])] = ResourceType(
                api_version, str(res["kind"]), name, bool(res.get("namespaced"))
            )
        return kinds

    # ------------------------------------------------------------------ verbs on objects

    def get(self, ref: ObjectRef) -> Manifest | None:
        """The live object, or None when it does not exist."""
        res = self.resource(ref.api_version, ref.kind)
        try:
            return self.request(
                "GET", res.object_path(ref.namespace, ref.name), what=f"read {ref}", kind=ref.kind
            )
        except NotFound:
            return None

    def list_objects(
        self,
        res: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        metadata_only: bool = False,
    ) -> list[Manifest]:
        """One LIST call; items get apiVersion/kind filled in (the server leaves them out)."""
        query = [("labelSelector", label_selector)] if label_selector else []
        accept = f"{METADATA_LIST_ACCEPT},application/json" if metadata_only else "application/json"
        where = f" in {namespace}" if namespace and res.namespaced else ""
        body = self.request(
            "GET",
            res.collection_path(namespace),
            query=query,
            accept=accept,
            what=f"list {res.plural}{where}",
        )
        items = body.get("items") or []
        for item in items:
            item["apiVersion"], item["kind"] = res.group_version, res.kind
        return list(items)

    def apply(
        self, manifest: Manifest, *, force: bool, dry_run: bool = False, field_manager: str
    ) -> Manifest:
        """Server-side apply of one object; returns the object as the server stored it."""
        ref = ObjectRef.of(manifest)
        res = self.resource(ref.api_version, ref.kind)
        query = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request(
            "PATCH",
            res.object_path(ref.namespace if res.namespaced else None, ref.name),
            query=query,
            body=json.dumps(manifest, separators=(",", ":")).encode(),
            content_type=APPLY_PATCH,
            what=f"{'dry-run ' if dry_run else ''}apply {ref}",
            kind=ref.kind,
        )

    def delete(
        self, ref: ObjectRef, *, uid: str | None = None, resource_version: str | None = None
    ) -> bool:
        """Delete in the background (dependents garbage-collected); False if already gone.

        `uid` is a precondition: an object recreated since we read it is not deleted;
        `resource_version` one too: an object changed since we read it is a `Conflict`.
        """
        res = self.resource(ref.api_version, ref.kind)
        options: dict[str, Any] = {"propagationPolicy": "Background"}
        preconditions = {"uid": uid, "resourceVersion": resource_version}
        if uid or resource_version:
            options["preconditions"] = {k: v for k, v in preconditions.items() if v}
        try:
            self.request(
                "DELETE",
                res.object_path(ref.namespace if res.namespaced else None, ref.name),
                body=options,
                what=f"delete {ref}",
                kind=ref.kind,
            )
        except NotFound:
            return False
        return True


def connect(
    kubeconfig: str | Path, context: str | None = None, *, name: str | None = None
) -> ClusterConnection:
    """Shorthand for `ClusterConnection.from_kubeconfig`."""
    return ClusterConnection.from_kubeconfig(kubeconfig, context, name=name)
