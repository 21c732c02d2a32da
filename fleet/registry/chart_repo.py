"""Helm charts from HTTP(S) chart repositories (`index.yaml`) resolved once per commit.

`helm.repo: https://charts.example.com` with `helm.chart: web` and `helm.version:
">=1.0 <2"` names whatever the repository's index lists highest when helm runs, like an
OCI range (`fleet.registry.charts`). When a commit is targeted, fleet reads the index
once per repository (`<repo>/index.yaml`, as helm does), takes the highest version of
the chart that matches (`fleet.source.semver`; no version: the highest release), and pins
that version and the digest the index gives for its archive (helm writes the archive's
sha256 there) into the deployment id. The renderer then pulls exactly that version and
refuses an archive whose sha256 is not the pinned digest (a version published again with
other content): every cluster and wave renders the same bytes.

An index that cannot be fetched now (connection refused, a timeout, HTTP 429 or 5xx) is a
`TransientError`: the commit is loaded again later, never marked broken. A chart or
version the index does not have is the user's error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import yaml

from fleet import config
from fleet.errors import FleetError, TransientError
from fleet.net import RefusedRequest, request_guard
from fleet.registry.client import tls_context
from fleet.source.semver import parse_range, parse_tag_version
from fleet.spec.bundle_options import BundleOptions, HelmOptions

INDEX_TIMEOUT = 30.0  # seconds for one index.yaml
MAX_INDEX_BYTES = 64 * 1024 * 1024  # a large public index is tens of MiB
Index = dict[str, list[dict[str, Any]]]  # chart name -> its entries


def repo_chart_key(repo: str, chart: str) -> str:
    """The pin's `chart` for a repository chart: `<repo>/<chart>`, as messages show it."""
    return f"{repo.rstrip('/')}/{chart}"


def repo_charts(options: BundleOptions) -> Iterator[tuple[str, str, str]]:
    """(repo, chart, version) of every repository chart the bundle's options may render
    (the base `helm` and each targetCustomization's), skipping values templated per
    cluster."""
    base = options.helm or HelmOptions()
    seen: set[tuple[str, str, str]] = set()
    helms = [base] + [c.helm for c in options.target_customizations if c.helm is not None]
    for helm in helms:
        repo = helm.repo or base.repo
        chart = helm.chart or base.chart
        version = helm.version if helm.version is not None else base.version
        if not repo or not chart:
            continue
        key = (repo, chart, version or "")
        if any("${" in part for part in key) or key in seen:
            continue
        seen.add(key)
        yield key


def fetch_index(repo: str, settings: config.Settings | None = None) -> Index:
    """The repository's `index.yaml` entries (TransientError when it cannot be had now)."""
    url = f"{repo.rstrip('/')}/index.yaml"
    settings = settings or config.current()
    try:
        # every hop (redirects too) is checked by fleet.net: FLEET_ALLOWED_HOSTS, never
        # link-local or fleet's Redis
        hooks = {"request": [request_guard(settings)]}
        with httpx.Client(
            verify=tls_context(settings), timeout=INDEX_TIMEOUT, event_hooks=hooks
        ) as client:
            answer = client.get(url, follow_redirects=True)
    except RefusedRequest as err:
        raise FleetError(f"chart repository {_origin(url)}: {err}") from None
    except httpx.HTTPError as err:
        raise TransientError(f"chart repository {url}: {err or type(err).__name__}") from None
    if answer.status_code == 429 or answer.status_code >= 500:
        raise TransientError(f"chart repository {url}: HTTP {answer.status_code}")
    if answer.status_code != 200:
        raise FleetError(f"chart repository {url}: HTTP {answer.status_code}")
    if len(answer.content) > MAX_INDEX_BYTES:
        raise FleetError(f"chart repository {url}: index larger than {MAX_INDEX_BYTES} bytes")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(answer.content, Loader=loader)  # a safe loader (C when built)
    except yaml.YAMLError as err:
        raise FleetError(f"chart repository {url}: index.yaml is not YAML ({err})") from None
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise FleetError(f"chart repository {url}: index.yaml has no entries")
    return {str(k): [e for e in v if isinstance(e, dict)] for k, v in entries.items()
            if isinstance(v, list)}  # fmt: skip


def resolve_repo_chart(index: Index, repo: str, chart: str, wanted: str) -> tuple[str, str]:
    """(version, digest) of `chart` in the repository's index for `helm.version: wanted`."""
    where = repo_chart_key(repo, chart)
    found = index.get(chart)
    if not found:
        raise FleetError(f"chart {chart!r} is not in the repository {repo}")
    digests = {str(e.get("version", "")): str(e.get("digest") or "") for e in found}
    if wanted and parse_tag_version(wanted) is not None:
        version = next((v for v in digests if v.lstrip("vV") == wanted.lstrip("vV")), None)
        if version is None:
            raise FleetError(f"no version {wanted} of {where}")
    else:
        semver_range = parse_range(wanted or ">=0.0.0")
        if semver_range is None:
            raise FleetError(f"helm.version {wanted!r} of {where} is not a version or range")
        version = semver_range.best(digests)
        if version is None:
            raise FleetError(f"no version of {where} matches {wanted or 'any release'}")
    digest = digests[version]
    if not digest:
        raise FleetError(f"{where} {version}: the repository's index gives no digest")
    return version, f"sha256:{digest.removeprefix('sha256:')}"


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL, for messages (a repository URL's path or user info
    may carry a token)."""
    parts = httpx.URL(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.host}{port}"
