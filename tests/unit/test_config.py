"""One settings object: every FLEET_* variable read in fleet/config.py, and only there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fleet.config import Settings
from fleet.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _touches_environment(tree: ast.AST) -> list[int]:
    """Lines that use os.environ/os.getenv/os.putenv (attribute or `from os import`)."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ENV_NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            lines.append(node.lineno)
        imported = isinstance(node, ast.ImportFrom) and node.module == "os"
        if imported and any(alias.name in ENV_NAMES for alias in node.names):  # type: ignore[attr-defined]
            lines.append(node.lineno)
    return lines


def test_only_fleet_config_reads_or_writes_the_environment() -> None:
    offenders = []
    for package in ("fleet", "plugins", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "fleet" / "config.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            offenders += [f"{path.relative_to(ROOT)}:{n}" for n in _touches_environment(tree)]
    assert offenders == []


def test_the_scan_sees_each_way_of_touching_it() -> None:
    code = "import os\nfrom os import getenv\nos.environ['A'] = '1'\nos.putenv('B', '2')\n"
    assert sorted(_touches_environment(ast.parse(code))) == [2, 3, 4]


def test_defaults_and_types() -> None:
    settings = Settings.from_env({"HOME": "/home/u", "XDG_CACHE_HOME": "/x"})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert (settings.visibility_timeout, settings.task_ttl) == (1800.0, 1900.0)
    assert (settings.lock_ttl, settings.retry_base, settings.failure_cooldown) == (30, 2, 30)
    assert settings.retry_cap == 300.0
    assert settings.cache_dir == Path("/x/fleet")
    assert settings.helm is None and settings.kustomize is None and settings.webhook_secret == ""


def test_values_from_the_environment() -> None:
    env = {
        "FLEET_REDIS_URL": "redis://r:6379/2",
        "FLEET_CELERY_VISIBILITY_TIMEOUT": "600",
        "FLEET_RETRY_BASE": "1",
        "FLEET_FAILURE_COOLDOWN": "3",
        "FLEET_CACHE_DIR": "/c",
        "FLEET_HELM": "/opt/helm",
        "FLEET_KUBECONFIG_PROD_EU": "/k/prod",
    }
    settings = Settings.from_env(env)
    assert settings.task_ttl == 700.0  # follows the visibility timeout unless set
    assert settings.retry_cap == 200.0  # a third of the visibility timeout
    assert (settings.retry_base, settings.failure_cooldown) == (1.0, 3.0)
    assert settings.cache_dir == Path("/c") and settings.helm == "/opt/helm"
    assert settings.env["FLEET_KUBECONFIG_PROD_EU"] == "/k/prod"  # per-name lookups
    assert settings.with_redis_url("redis://other/0").redis_url == "redis://other/0"
    assert settings.with_redis_url(None) is settings
    with pytest.raises(TypeError):
        settings.env["X"] = "1"  # type: ignore[index]  # a read-only copy


def test_a_malformed_number_is_one_user_error_naming_the_variable() -> None:
    with pytest.raises(UserError, match="FLEET_LOCK_TTL must be a number of seconds, not 'x'"):
        Settings.from_env({"FLEET_LOCK_TTL": "x"})


def test_the_untrusted_input_limits() -> None:
    defaults = Settings.from_env({"HOME": "/home/u"})
    assert defaults.kubeconfig_dir == Path("/home/u/.kube")
    assert (defaults.http_timeout, defaults.http_max_clients) == (10.0, 16)
    assert (defaults.max_wait_seconds, defaults.git_allow_http) == (600.0, False)
    env = {
        "FLEET_KUBECONFIG_DIR": "/etc/fleet/kube",
        "FLEET_HTTP_TIMEOUT": "2.5",
        "FLEET_HTTP_MAX_CLIENTS": "4",
        "FLEET_MAX_WAIT_SECONDS": "120",
        "FLEET_GIT_ALLOW_HTTP": "yes",
    }
    settings = Settings.from_env(env)
    assert settings.kubeconfig_dir == Path("/etc/fleet/kube")
    assert (settings.http_timeout, settings.http_max_clients) == (2.5, 4)
    assert (settings.wait_cap, settings.git_allow_http) == (120.0, True)
    assert Settings.from_env({"FLEET_HTTP_MAX_CLIENTS": "0"}).http_max_clients == 1
    with pytest.raises(UserError, match="FLEET_GIT_ALLOW_HTTP must be 1/true/yes or 0/false/no"):
        Settings.from_env({"FLEET_GIT_ALLOW_HTTP": "sure"})


def test_registry_timeout() -> None:
    assert Settings.from_env({}).registry_timeout == 30.0
    assert Settings.from_env({"FLEET_REGISTRY_TIMEOUT": "5"}).registry_timeout == 5.0
    with pytest.raises(UserError, match="FLEET_REGISTRY_TIMEOUT must be a positive number"):
        Settings.from_env({"FLEET_REGISTRY_TIMEOUT": "0"})
