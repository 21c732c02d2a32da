"""Which hosts the operator lets each credential go to (`FLEET_<KIND>_HOSTS_<NAME>`).

A definition in Git names a credential (`registries[].credential: internal`) and, next to
it, the host it is sent to (`host: registry.internal`). Both come from the repository,
which is untrusted input: a commit that changes only the host would make fleet send the
operator's secret to any server. As in Argo CD, the operator binds a credential to hosts
in the same environment that holds the secret, and Git cannot move it:

- `FLEET_REGISTRY_HOSTS_<NAME>`: hosts of registry credential NAME (the registry host as
  an image reference names it: `registries[].host`, the host of `url`, `docker.io`);
- `FLEET_METRICS_HOSTS_<NAME>`: hosts of a metric provider's `credential` (its `address`);
- `FLEET_GATE_HOSTS_<NAME>`: hosts of an `http` gate's `credential` (its `url`).

One uniform scheme, `<the secret's prefix>HOSTS_<NAME>`, so the binding sits next to the
variable it guards. The value is a comma-separated list of `host`, `host:port`, globs
(`*.registry.internal`) and, for a host written as an address, networks
(`10.0.0.0/8:5000`), parsed as `FLEET_ALLOWED_HOSTS` entries (`fleet.allowlist`). A
credential is matched on the host *name* fleet connects to (TLS checks that name), never
on what a name resolves to, so the check needs no DNS and `fleet validate` makes it too.

Set, a credential sent anywhere else is refused before any request (`CredentialRefused`:
one line naming the credential, the host and the variable, never the secret). Unset, the
credential goes wherever the definition says (fleet's behaviour before bindings existed,
which every existing fleet relies on) and, when the secret is set in this process's
environment, a warning recommending the binding is logged once per credential and process.

For metrics and gates the binding shares the secret's prefix, so a credential named
`hosts-x` would read `FLEET_METRICS_HOSTS_X` as its secret: such names are refused
(`reserved_name`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from fleet.allowlist import HostRule, address_of, parse_rule
from fleet.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One family of credentials: how messages name it and its variables' prefix."""

    label: str  # "registry credential"
    secret_prefix: str  # "FLEET_REGISTRY_" (its secrets: FLEET_REGISTRY_USERNAME_<NAME>, ...)

    def variable(self, name: str) -> str:
        return f"{self.secret_prefix}HOSTS_{env_suffix(name)}"

    def secret_variables(self, name: str) -> tuple[str, ...]:
        """The variables holding credential `name`'s secret."""
        suffix = env_suffix(name)
        if self is REGISTRY:
            return (
                f"{self.secret_prefix}USERNAME_{suffix}",
                f"{self.secret_prefix}PASSWORD_{suffix}",
            )
        return (f"{self.secret_prefix}{suffix}",)


REGISTRY = Kind("registry credential", "FLEET_REGISTRY_")
METRICS = Kind("metrics credential", "FLEET_METRICS_")
GATE = Kind("gate credential", "FLEET_GATE_")


class CredentialRefused(UserError):
    """A credential the definition would send to a host its binding does not list."""


def env_suffix(name: str) -> str:
    """`prod-metrics` -> `PROD_METRICS`, as every credential variable spells a name."""
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in name.upper())


def reserved_name(kind: Kind, name: str) -> str | None:
    """Why a metrics or gate credential `name` is refused (its secret's variable would be
    another credential's binding), or None."""
    if kind is not REGISTRY and env_suffix(name).startswith("HOSTS_"):
        return (
            f"{kind.label} {name!r}: names starting with 'hosts-' are reserved "
            f"({kind.secret_prefix}HOSTS_<NAME> binds credentials to hosts)"
        )
    return None


def bound_rules(kind: Kind, name: str, env: Mapping[str, str]) -> tuple[HostRule, ...] | None:
    """The binding of credential `name` (None when unset or blank); a malformed entry is a
    UserError naming the variable and the entry (host lists are not secrets)."""
    variable = kind.variable(name)
    raw = env.get(variable)
    if raw is None or not raw.strip():
        return None
    rules = []
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        try:
            rules.append(parse_rule(entry))
        except UserError:
            problem = f"{variable}: {entry!r} is not a host, a host glob or a network"
            raise UserError(problem) from None
    return tuple(rules)


def admits(rules: tuple[HostRule, ...], host: str, port: int) -> bool:
    """A name entry matching `host` (and `port`), or, for an address, a network entry."""
    host = host.lower().strip("[]").rstrip(".")
    if any(rule.admits_name(host, port) for rule in rules):
        return True
    literal = address_of(host)
    return literal is not None and any(rule.admits_address(literal, port) for rule in rules)


def refusal(kind: Kind, name: str, host: str, port: int, env: Mapping[str, str]) -> str | None:
    """Why credential `name` may not go to `host:port`, or None (see the module docstring:
    unset, None and a one-time warning)."""
    reserved = reserved_name(kind, name)
    if reserved is not None:
        return reserved
    rules = bound_rules(kind, name, env)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if rules is None:
        if any(env.get(v) for v in kind.secret_variables(name)):  # a secret that could leak
            _warn_unbound(kind, name)
        return None
    if admits(rules, host, port):
        return None
    return f"{kind.label} {name!r} is not bound to {where} ({kind.variable(name)})"


def require(kind: Kind, name: str, host: str, port: int, env: Mapping[str, str]) -> None:
    """CredentialRefused unless credential `name` may go to `host:port`."""
    reason = refusal(kind, name, host, port, env)
    if reason is not None:
        raise CredentialRefused(reason)


def url_refusal(kind: Kind, name: str, url: str, env: Mapping[str, str]) -> str | None:
    """`refusal` for the host and port of an http(s) URL (a URL fleet cannot read is
    refused when the credential is bound: it could not be matched)."""
    endpoint = url_endpoint(url)
    if endpoint is None:
        if bound_rules(kind, name, env) is None and reserved_name(kind, name) is None:
            return None
        return f"{kind.label} {name!r}: not an http(s) URL with a host ({kind.variable(name)})"
    return refusal(kind, name, *endpoint, env)


def url_endpoint(url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) URL, the default port of its scheme when none is given."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def registry_endpoint(host: str) -> tuple[str, int]:
    """(host, port) of a registry `host[:port]` (fleet speaks https to registries: 443)."""
    found = url_endpoint(f"https://{host}")
    return found if found is not None else (host.lower(), 443)


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_unbound(kind: Kind, name: str) -> None:
    key = (kind.secret_prefix, env_suffix(name))
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(
        "%s %r is sent to whatever host the definition names: set %s to the hosts it "
        "belongs to, so a commit cannot send it elsewhere",
        kind.label,
        name,
        kind.variable(name),
    )
