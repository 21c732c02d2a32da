"""Built-in gate `http`: a smoke test, one request per cluster of the wave.

    gates:
      - type: http
        name: smoke
        url: https://{{cluster}}.apps.example.com/healthz?ns={{namespace}}
        method: POST                       # GET (default) or POST
        body: {"check": "deep"}            # JSON, POST only
        headers: {X-Smoke: fleet}          # plain headers; never Authorization
        credential: smoke                  # FLEET_GATE_SMOKE -> the Authorization header
        expectStatus: [200, 204]           # default: any 2xx
        timeout: 5s                        # default 10s
        count: 3                           # rounds (default 1), `interval` apart (30s)
        failureLimit: 1                    # failed rounds tolerated (default 0)

A round is good when every cluster answers with an expected status. Anything else (another
status, a timeout, a refused connection, a TLS error) fails the cluster's check: unlike a
metric, a smoke test that cannot reach its service is a failed test, not an unknown. A
missing credential is inconclusive (the operator's environment is wrong, not the change).
Redirects are not followed (list 3xx in `expectStatus` to accept one). `{{cluster}}`,
`{{namespace}}`, `{{bundle}}`, `{{wave}}`, `{{labels.KEY}}` are substituted URL-quoted, so
a label value cannot add a path, a query or another host.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from fleet.plugin import (
    AnalysisPolicy,
    GateConfigError,
    GateContext,
    GateParams,
    GateResult,
    GateSpec,
    GateTarget,
    GateTemplate,
    GateVerdict,
    Measurement,
    MetricProvider,
    MissingValue,
    Placeholder,
    authorization_header,
    credential_guard,
    describe_measurements,
    gate_variable,
    hookimpl,
    http_client,
    run_analysis,
    target_values,
)

TYPE = "http"
PARAMETERS = (
    "url",
    "method",
    "body",
    "headers",
    "credential",
    "expectStatus",
    "timeout",
    "count",
    "interval",
    "failureLimit",
)
SUBSTITUTIONS = ("cluster", "namespace", "bundle", "wave", "labels")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110)
_SECRET_HEADERS = {"authorization", "proxy-authorization"}


@dataclass(frozen=True, slots=True)
class HttpGate:
    """A configured `http` gate (see the module docstring)."""

    label: str
    url: GateTemplate
    method: str
    body: bytes | None
    headers: Mapping[str, str]
    credential: str | None
    expect: tuple[int, ...]  # empty: any 2xx
    timeout: int
    policy: AnalysisPolicy

    @property
    def expected(self) -> str:
        return "expect " + (", ".join(map(str, self.expect)) if self.expect else "2xx")

    def check(self, ctx: GateContext) -> GateResult:
        headers = dict(self.headers)
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        if self.credential:
            secret = ctx.secret(self.credential)
            if secret is None:
                return GateResult.inconclusive(
                    f"{self.label}: {gate_variable(self.credential)} is not set (its credential)"
                )
            headers["Authorization"] = authorization_header(secret)
        return run_analysis(ctx, self.policy, lambda: self.measure(ctx, headers), self.describe)

    def describe(self, verdict: GateVerdict, measured: Sequence[Measurement], summary: str) -> str:
        values = describe_measurements(measured, verdict)
        return f"{self.label}: {values} ({self.expected}), {summary}"

    def measure(self, ctx: GateContext, headers: Mapping[str, str]) -> list[Measurement]:
        if not ctx.targets:
            return [Measurement(None, None, None, ctx.now, "no clusters in the wave")]
        options: dict[str, Any] = {}
        if self.credential:
            hooks = [credential_guard("gate", self.credential, ctx.env)]
            options["event_hooks"] = {"request": hooks}
        with http_client(timeout=float(self.timeout), headers=dict(headers), **options) as client:
            return [self._measure_one(client, ctx, target) for target in ctx.targets]

    def _measure_one(
        self, client: httpx.Client, ctx: GateContext, target: GateTarget
    ) -> Measurement:
        try:
            url = self.url.render(target_values(ctx, target), _quote)
        except MissingValue as err:
            return Measurement(target.cluster, None, None, ctx.now, str(err))
        try:
            response = client.request(self.method, url, content=self.body)
        except httpx.TimeoutException:
            note = f"no answer within {self.timeout}s"
            return Measurement(target.cluster, None, False, ctx.now, note)
        except httpx.HTTPError as err:
            note = f"request failed: {type(err).__name__}: {_one_line(str(err))}"
            return Measurement(target.cluster, None, False, ctx.now, note)
        status = response.status_code
        ok = status in self.expect if self.expect else 200 <= status < 300
        return Measurement(target.cluster, f"HTTP {status}", ok, ctx.now)


def _quote(placeholder: Placeholder, value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def _check_url(template: GateTemplate) -> None:
    example = template.render(lambda name: "x", lambda placeholder, value: value)
    parts = urllib.parse.urlsplit(example)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GateConfigError(
            f"url must be an http:// or https:// URL, not {template.text!r}", "url"
        )


def _headers(params: GateParams) -> dict[str, str]:
    headers = params.mapping("headers") or {}
    checked = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise GateConfigError(f"headers: {name!r} is not a header name", "headers")
        if name.lower() in _SECRET_HEADERS:
            raise GateConfigError(
                f"headers: no {name} in Git; name the secret with credential (FLEET_GATE_<NAME>)",
                "headers",
            )
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise GateConfigError(f"headers: {name} must be a one-line string", "headers")
        checked[name] = value
    return checked


def _expect(params: GateParams) -> tuple[int, ...]:
    value = params.raw("expectStatus")
    if value is None:
        return ()
    codes = value if isinstance(value, list) else [value]
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise GateConfigError(
                f"expectStatus must be an HTTP status or a list of them, not {code!r}",
                "expectStatus",
            )
    if not codes:
        raise GateConfigError("expectStatus: the list is empty", "expectStatus")
    return tuple(codes)


def _body(params: GateParams, method: str) -> bytes | None:
    value: Any = params.raw("body")
    if value is None:
        return None
    if method != "POST":
        raise GateConfigError("body needs method: POST", "body")
    return json.dumps(value, sort_keys=True).encode()


def build_gate(spec: GateSpec) -> HttpGate:
    """The gate for `spec`, its parameters checked (GateConfigError names the key)."""
    params = GateParams(spec, PARAMETERS)
    text = params.text("url", required=True)
    assert text is not None
    template = GateTemplate.parse(text, "url", allowed=SUBSTITUTIONS)
    _check_url(template)
    method = (params.text("method", "GET") or "GET").upper()
    if method not in ("GET", "POST"):
        raise GateConfigError(f"method must be GET or POST, not {method}", "method")
    return HttpGate(
        label=spec.name or "http check",
        url=template,
        method=method,
        body=_body(params, method),
        headers=_headers(params),
        credential=params.text("credential"),
        expect=_expect(params),
        timeout=params.duration("timeout", "10s"),
        policy=AnalysisPolicy.from_params(params, default_count=1),
    )


@hookimpl
def fleet_gate_types() -> list[str]:
    return [TYPE]


@hookimpl
def fleet_gate(spec: GateSpec, providers: Mapping[str, MetricProvider]) -> HttpGate | None:
    return build_gate(spec) if spec.type == TYPE else None
