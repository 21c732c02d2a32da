"""The operator's secrets for gates: which variable holds one, and the header it becomes.

Gates never read secrets from Git. A metric provider's `credential: prod-metrics` names
FLEET_METRICS_PROD_METRICS, an http gate's `credential: smoke` names FLEET_GATE_SMOKE
(upper-cased, every other character `_`), both read from the environment of the process
that runs the gates (`GateContext.env`). The value is a bearer token, `user:password` for
basic auth, or a whole header value with its scheme (`token abc`, `Bearer abc`).

The operator binds each to hosts with FLEET_METRICS_HOSTS_<CREDENTIAL> /
FLEET_GATE_HOSTS_<NAME> (`fleet.credhosts`): a gate's client built with
`credential_guard` refuses, before it connects, a request carrying the credential to
a host the binding does not list, so a commit that changes a provider's `address` or a
gate's `url` cannot send the secret to its own server.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping

import httpx

from fleet import credhosts
from fleet.gates.model import GateContext
from fleet.net import RefusedRequest

METRICS_PREFIX = "FLEET_METRICS_"
GATE_PREFIX = "FLEET_GATE_"


def credential_variable(prefix: str, name: str) -> str:
    """`FLEET_METRICS_PROD_METRICS` for (METRICS_PREFIX, "prod-metrics")."""
    return prefix + "".join(c if c.isalnum() else "_" for c in name.upper())


def metrics_variable(credential: str) -> str:
    """The variable holding a metric provider's credential: FLEET_METRICS_<CREDENTIAL>."""
    return credential_variable(METRICS_PREFIX, credential)


def gate_variable(credential: str) -> str:
    """The variable holding a gate's credential (`GateContext.secret`): FLEET_GATE_<NAME>."""
    return credential_variable(GATE_PREFIX, credential)


def metrics_secret(ctx: GateContext, credential: str) -> str | None:
    """FLEET_METRICS_<CREDENTIAL> from the gate's environment, or None when unset."""
    return ctx.env.get(metrics_variable(credential)) or None


def authorization_header(secret: str) -> str:
    """The Authorization header value for a secret (see the module docstring)."""
    secret = secret.strip()
    if " " in secret:
        return secret  # "Bearer abc", "token abc": the scheme is given
    if ":" in secret:
        return "Basic " + base64.b64encode(secret.encode()).decode("ascii")
    return "Bearer " + secret


def credential_guard(
    kind: str, credential: str, env: Mapping[str, str]
) -> Callable[[httpx.Request], None]:
    """An httpx `request` event hook refusing (`RefusedRequest`, before any connection) a
    request to a host the credential's binding does not list; `kind` is "metrics" (a
    metric provider's credential) or "gate" (an http gate's)."""
    which = credhosts.METRICS if kind == "metrics" else credhosts.GATE

    def guard(request: httpx.Request) -> None:
        reason = credhosts.url_refusal(which, credential, str(request.url), env)
        if reason is not None:
            raise RefusedRequest(f"refused: {reason}", request=request)

    return guard
