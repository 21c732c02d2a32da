"""The operator's allow-list of hosts fleet may send requests to (`FLEET_ALLOWED_HOSTS`).

Notifier URLs, HTTP gate URLs and metric provider addresses are written in the fleet
repository, which is untrusted input: without a limit, anyone who can merge could make
the scheduler or a worker send requests to cloud metadata (169.254.169.254), the
Kubernetes API or fleet's own Redis (SSRF). `FLEET_ALLOWED_HOSTS` is a comma-separated
list of entries:

- a host name or glob, any port: `hooks.example.com`, `*.monitoring.svc` (`*` matches
  any characters, dots included; case-insensitive);
- a host and a port: `alertmanager.monitoring:9093`, `*.example.com:443`;
- an address or a network (CIDR), any port: `10.0.0.0/8`, `192.168.1.7`, `fd00::/8`; with
  a port: `10.0.0.0/8:9090`, `[fd00::/8]:9090`, `[::1]:8080`.

A URL is allowed when its host name matches a name entry (with its port), or when every
address the name resolves to (the literal address, for an IP) is in a network entry. Unset,
every host is allowed (fleet's behaviour before the setting). Either way, some targets are
always refused, whatever the list says (`ALWAYS_REFUSED`: link-local addresses, where cloud
metadata and instance credentials live, and fleet's own Redis, see `fleet.net`).

Pure: `fleet.net` resolves names and applies this to every outgoing request.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fleet.errors import UserError

SETTING = "FLEET_ALLOWED_HOSTS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# link-local (cloud metadata, instance credentials) and AWS's IPv6 metadata endpoint
ALWAYS_REFUSED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)


@dataclass(frozen=True, slots=True)
class HostRule:
    """One entry of the list: a name glob or a network, and a port (None: any)."""

    text: str
    glob: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def admits_name(self, host: str, port: int) -> bool:
        if self.glob is None or (self.port is not None and self.port != port):
            return False
        return fnmatch.fnmatchcase(host.lower(), self.glob)

    def admits_address(self, address: IPAddress, port: int) -> bool:
        if self.network is None or (self.port is not None and self.port != port):
            return False
        return address.version == self.network.version and address in self.network


def parse_allowed_hosts(raw: str | None) -> tuple[HostRule, ...] | None:
    """The entries of `FLEET_ALLOWED_HOSTS` (None when unset or blank); a malformed entry
    is a UserError naming the setting and the entry."""
    if raw is None or not raw.strip():
        return None
    return tuple(parse_rule(entry.strip()) for entry in raw.split(",") if entry.strip())


def parse_rule(entry: str) -> HostRule:
    """One entry (see the module docstring)."""
    host, port = _split_port(entry)
    network = _network(host)
    if network is not None:
        return HostRule(entry, network=network, port=port)
    glob = host.lower().rstrip(".")
    if (
        not glob
        or any(c in glob for c in "/[]@ ")
        or not all(_label_ok(p) for p in glob.split("."))
    ):
        raise UserError(f"{SETTING}: {entry!r} is not a host, a host glob or a network")
    return HostRule(entry, glob=glob, port=port)


def address_of(host: str) -> IPAddress | None:
    """`host` as an IP address (an IPv4-mapped IPv6 address as its IPv4 one), or None."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class HostPolicy:
    """Where requests may go: the operator's rules (None: anywhere) minus the refused."""

    rules: tuple[HostRule, ...] | None = None
    refused_endpoints: frozenset[tuple[IPAddress, int]] = frozenset()  # fleet's Redis
    refused_name: str = ""  # how the refused endpoints are named in messages

    def refusal(self, host: str, port: int, addresses: Iterable[IPAddress]) -> str | None:
        """Why a request to `host:port`, which resolves to `addresses`, is refused, or
        None when it may go. One line; names the setting, never a URL's path or query."""
        where = _where(host, port)
        resolved = [_plain(a) for a in addresses]
        for address in resolved:
            if any(address.version == n.version and address in n for n in ALWAYS_REFUSED):
                return f"{where} is a link-local address ({address}): always refused ({SETTING})"
            if self._is_refused_endpoint(address, port):
                what = self.refused_name or "fleet's Redis"
                return f"{where} is {what}: always refused ({SETTING})"
        if self.rules is None:
            return None
        if any(rule.admits_name(host, port) for rule in self.rules):
            return None
        if resolved and all(self._admits_address(a, port) for a in resolved):
            return None
        return f"{where} is not in {SETTING}"

    def static_refusal(self, host: str, port: int) -> str | None:
        """`refusal` without resolving names (for `fleet validate`): an IP literal is
        checked fully; a name only against the name entries, and only when there are no
        network entries (then only its addresses could tell)."""
        literal = address_of(host)
        if literal is not None:
            return self.refusal(host, port, [literal])
        if self.rules is None or any(r.network is not None for r in self.rules):
            return None
        return self.refusal(host, port, [])

    def _admits_address(self, address: IPAddress, port: int) -> bool:
        assert self.rules is not None
        return any(rule.admits_address(address, port) for rule in self.rules)

    def _is_refused_endpoint(self, address: IPAddress, port: int) -> bool:
        for refused, refused_port in self.refused_endpoints:
            if port != refused_port:
                continue
            if address == refused or (_local(refused) and _local(address)):
                return True
        return False


def _plain(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _local(address: IPAddress) -> bool:
    """This machine: loopback or the unspecified address (0.0.0.0 connects to it)."""
    return address.is_loopback or address.is_unspecified


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _label_ok(label: str) -> bool:
    return bool(label) and all(c.isalnum() or c in "-_*" for c in label)


def _network(host: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(host.strip("[]"), strict=False)
    except ValueError:
        return None


def _split_port(entry: str) -> tuple[str, int | None]:
    """`host:port`, `[v6]:port`, `v6` (several colons, no brackets: no port)."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise UserError(f"{SETTING}: {entry!r}: expected [address]:port")
        return host, _port(entry, rest[1:])
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, _port(entry, port)
    return entry, None


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UserError(f"{SETTING}: {entry!r}: {text!r} is not a port")
    return int(text)


def describe_rules(rules: Sequence[HostRule] | None) -> str:
    """The list as the operator wrote it (for logs): `*.example.com, 10.0.0.0/8`."""
    return "any host" if rules is None else ", ".join(r.text for r in rules) or "none"
