"""The operator's allow-list of hosts (FLEET_ALLOWED_HOSTS): entries, matching, refusals."""

from __future__ import annotations

import ipaddress

import pytest

from fleet import config, net
from fleet.allowlist import HostPolicy, parse_allowed_hosts
from fleet.errors import UserError


def allow(raw: str | None, redis: str = "redis://127.0.0.1:6379/0") -> HostPolicy:
    env = {"FLEET_REDIS_URL": redis, **({"FLEET_ALLOWED_HOSTS": raw} if raw is not None else {})}
    return net.policy(config.Settings.from_env(env))


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_globs_match_names_case_insensitively_on_any_port_unless_one_is_given() -> None:
    policy = allow("hooks.example.com, *.monitoring.svc, alertmanager.ops:9093")
    assert policy.refusal("Hooks.Example.com", 443, [ip("203.0.113.5")]) is None
    assert policy.refusal("prom.eu.monitoring.svc", 9090, [ip("10.1.2.3")]) is None
    assert policy.refusal("alertmanager.ops", 9093, [ip("10.1.2.4")]) is None
    assert policy.refusal("alertmanager.ops", 80, [ip("10.1.2.4")]) == (
        "alertmanager.ops:80 is not in FLEET_ALLOWED_HOSTS"
    )
    assert policy.refusal("evil.example.com", 443, [ip("203.0.113.5")]) is not None
    assert policy.refusal("monitoring.svc", 80, [ip("10.1.2.3")]) is not None  # `*.` needs a label


def test_networks_admit_addresses_and_names_whose_every_address_is_inside() -> None:
    policy = allow("10.0.0.0/8, 192.168.1.7, 10.9.0.0/16:9090")
    assert policy.refusal("10.3.4.5", 80, [ip("10.3.4.5")]) is None
    assert policy.refusal("192.168.1.7", 8080, [ip("192.168.1.7")]) is None
    assert policy.refusal("192.168.1.8", 8080, [ip("192.168.1.8")]) is not None
    assert policy.refusal("prom.internal", 9090, [ip("10.9.0.1"), ip("10.200.0.1")]) is None
    mixed = policy.refusal("prom.internal", 9090, [ip("10.9.0.1"), ip("198.51.100.1")])
    assert mixed == "prom.internal:9090 is not in FLEET_ALLOWED_HOSTS"


def test_ipv6_entries_with_and_without_a_port() -> None:
    policy = allow("fd00::/8, [::1]:8080, [2001:db8::/32]:443")
    assert policy.refusal("fd12::7", 80, [ip("fd12::7")]) is None
    assert policy.refusal("::1", 8080, [ip("::1")]) is None
    assert policy.refusal("::1", 8081, [ip("::1")]) == "[::1]:8081 is not in FLEET_ALLOWED_HOSTS"
    assert policy.refusal("2001:db8::1", 443, [ip("2001:db8::1")]) is None
    assert policy.refusal("2001:db8::1", 80, [ip("2001:db8::1")]) is not None


def test_link_local_and_fleets_redis_are_refused_even_when_listed_or_unset() -> None:
    for policy in (allow(None), allow("*, 0.0.0.0/0, ::/0")):
        assert policy.refusal("169.254.169.254", 80, [ip("169.254.169.254")]) == (
            "169.254.169.254:80 is a link-local address (169.254.169.254): always refused "
            "(FLEET_ALLOWED_HOSTS)"
        )
        assert policy.refusal("fe80::1", 80, [ip("fe80::1")]) is not None
        mapped = ip("::ffff:169.254.169.254")
        assert policy.refusal("::ffff:169.254.169.254", 80, [mapped]) is not None
        assert policy.refusal("127.0.0.1", 6379, [ip("127.0.0.1")]) == (
            "127.0.0.1:6379 is fleet's Redis: always refused (FLEET_ALLOWED_HOSTS)"
        )
        assert policy.refusal("0.0.0.0", 6379, [ip("0.0.0.0")]) is not None  # this machine
        assert policy.refusal("127.0.0.1", 8080, [ip("127.0.0.1")]) is None  # another port


def test_unset_allows_everything_else() -> None:
    assert allow(None).refusal("10.0.0.1", 443, [ip("10.0.0.1")]) is None


def test_a_name_that_resolves_to_a_refused_address_is_refused() -> None:
    settings = config.Settings.from_env({"FLEET_ALLOWED_HOSTS": "10.0.0.0/8"})
    with pytest.raises(net.UrlRefused, match="localhost:8080 is not in FLEET_ALLOWED_HOSTS"):
        net.check_url("http://localhost:8080/hook", settings)  # localhost is 127.0.0.1 / ::1
    unset = config.Settings.from_env({"FLEET_REDIS_URL": "redis://127.0.0.1:6379/0"})
    with pytest.raises(net.UrlRefused, match="localhost:6379 is fleet's Redis"):
        net.check_url("http://user:secret@localhost:6379/x?token=t", unset)
    net.check_url("http://localhost:8080/hook", unset)


def test_a_refusal_never_shows_the_path_query_or_user_info() -> None:
    settings = config.Settings.from_env({"FLEET_ALLOWED_HOSTS": "hooks.example.com"})
    with pytest.raises(net.UrlRefused) as refused:
        net.check_url("https://bot:pw@127.0.0.1/services/T0/B0/s3cret?key=k", settings)
    assert str(refused.value) == "refused: 127.0.0.1:443 is not in FLEET_ALLOWED_HOSTS"


def test_static_check_for_validate_does_not_resolve_names() -> None:
    names = allow("hooks.example.com")
    assert names.static_refusal("evil.example.com", 443) is not None
    assert names.static_refusal("hooks.example.com", 443) is None
    networks = allow("10.0.0.0/8")
    assert networks.static_refusal("prom.internal", 9090) is None  # only DNS can tell
    assert networks.static_refusal("192.168.0.1", 9090) is not None
    assert allow(None).static_refusal("169.254.169.254", 80) is not None
    assert net.url_problem("https://{{cluster}}.apps.example.com/", None) is None


@pytest.mark.parametrize(
    "raw", ["hooks.example.com:http", "10.0.0.0/8:0", "[::1]x", "a b.example.com", "x/y", "h:99999"]
)
def test_a_malformed_entry_names_the_setting(raw: str) -> None:
    with pytest.raises(UserError, match="FLEET_ALLOWED_HOSTS"):
        parse_allowed_hosts(raw)


def test_blank_is_unset() -> None:
    assert parse_allowed_hosts("  ") is None and parse_allowed_hosts(None) is None
    assert config.Settings.from_env({}).allowed_hosts is None
