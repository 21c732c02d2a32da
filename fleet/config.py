"""fleet's settings: every environment variable, typed and with its default, read here only.

`Settings.from_env(env)` is the one place that reads `FLEET_*` variables; an entry point
(a CLI command, the Celery worker) builds it once and passes it (or its values) down.
Nothing else in fleet, `plugins/` or `workers/` reads or writes `os.environ`
(tests/unit/test_config.py checks the source tree). `current()` is the process's
settings, read now: the default of library functions called without settings (tests set
variables with monkeypatch and call them).

Per-name lookups stay per name, on `Settings.env` (a read-only copy of the environment):
the kubeconfig of each credential (`FLEET_KUBECONFIG_<NAME>`, `FLEET_KUBECONTEXT_<NAME>`,
see `fleet.runtime.credentials`) and the Git token of each host (`FLEET_GIT_TOKEN_<HOST>`,
see `fleet.source.auth`); git, helm and kustomize children get their environment from it
too. The README's "Settings" table lists every variable.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from fleet.allowlist import HostRule, parse_allowed_hosts
from fleet.errors import UserError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_VISIBILITY_TIMEOUT = 1800.0  # longer than the longest task: health wait + retries
DEFAULT_LOCK_TTL = 30.0
DEFAULT_RETRY_BASE = 2.0
DEFAULT_LEADER_TTL = 15.0  # seconds a `fleet serve` leader lease lives between renewals
DEFAULT_FAILURE_COOLDOWN = 30.0  # seconds before a failed unit may be dispatched again
DEFAULT_RENDER_TIMEOUT = 120.0  # one helm/kustomize/git run of a renderer, chart download included
TASK_TTL_MARGIN = 100.0  # a dispatch claim outlives its message's visibility timeout
DEFAULT_MAX_WAIT = 600.0  # longest health wait a bundle's waitTimeoutSeconds may ask for
DEFAULT_HTTP_TIMEOUT = 10.0  # seconds a `fleet serve` client may take per socket operation
DEFAULT_HTTP_MAX_CLIENTS = 16  # connections `fleet serve` handles at once
DEFAULT_REGISTRY_TIMEOUT = 30.0  # seconds of one registry API call (connect, read, write)
DEFAULT_MASS_DELETE_SHARE = 0.5  # a commit deleting more of a fleet's objects stops first
DEFAULT_MASS_DELETE_MIN = 10  # ... when it deletes at least this many
DEFAULT_EVENTS_MAX_LEN = 10_000  # entries the Redis event stream keeps (about)
DEFAULT_NOTIFY_GROUP_WAIT = 10.0  # seconds events wait for others of their group
DEFAULT_NOTIFY_BACKOFF = 1.0  # first wait between a notifier's delivery attempts
DEFAULT_ALERT_RESEND = 3600.0  # seconds between reminders of alerts still firing
DEFAULT_CLUSTER_CONCURRENCY = 8  # units `fleet sync` applies at once on one cluster
DEFAULT_HISTORY_LIMIT = 10  # revisions kept per bundle and cluster (Helm's --history-max)
MIN_HISTORY_LIMIT = 2  # the running revision and the one a rollback goes back to
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class Settings:
    """The process's configuration; see the README table for who uses each field."""

    redis_url: str = DEFAULT_REDIS_URL  # FLEET_REDIS_URL (broker, results, state cache)
    redis_configured: bool = False  # FLEET_REDIS_URL (or --redis) given: fleet sync locks there
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT  # FLEET_CELERY_VISIBILITY_TIMEOUT
    task_ttl: float = DEFAULT_VISIBILITY_TIMEOUT + TASK_TTL_MARGIN  # FLEET_TASK_TTL
    lock_ttl: float = DEFAULT_LOCK_TTL  # FLEET_LOCK_TTL (Redis locks and in-cluster Leases)
    leader_ttl: float = DEFAULT_LEADER_TTL  # FLEET_LEADER_TTL
    retry_base: float = DEFAULT_RETRY_BASE  # FLEET_RETRY_BASE
    failure_cooldown: float = DEFAULT_FAILURE_COOLDOWN  # FLEET_FAILURE_COOLDOWN
    cache_dir: Path = Path("~/.cache/fleet")  # FLEET_CACHE_DIR, else $XDG_CACHE_HOME/fleet
    helm: str | None = None  # FLEET_HELM
    kustomize: str | None = None  # FLEET_KUSTOMIZE
    render_timeout: float = DEFAULT_RENDER_TIMEOUT  # FLEET_RENDER_TIMEOUT
    webhook_secret: str = ""  # FLEET_WEBHOOK_SECRET
    repo_url: str | None = None  # FLEET_REPO_URL
    credentials_dir: Path | None = None  # FLEET_CREDENTIALS_DIR
    log_level: str = "INFO"  # FLEET_LOG_LEVEL
    kubeconfig_dir: Path = Path("~/.kube")  # FLEET_KUBECONFIG_DIR (kubeconfig.path from Git)
    max_wait_seconds: float = DEFAULT_MAX_WAIT  # FLEET_MAX_WAIT_SECONDS (see `wait_cap`)
    http_timeout: float = DEFAULT_HTTP_TIMEOUT  # FLEET_HTTP_TIMEOUT
    http_max_clients: int = DEFAULT_HTTP_MAX_CLIENTS  # FLEET_HTTP_MAX_CLIENTS
    git_allow_http: bool = False  # FLEET_GIT_ALLOW_HTTP: a token may go over plain http://
    mass_delete_share: float = DEFAULT_MASS_DELETE_SHARE  # FLEET_MASS_DELETE_SHARE
    mass_delete_min_objects: int = DEFAULT_MASS_DELETE_MIN  # FLEET_MASS_DELETE_MIN_OBJECTS
    registry_timeout: float = DEFAULT_REGISTRY_TIMEOUT  # FLEET_REGISTRY_TIMEOUT
    events_max_len: int = DEFAULT_EVENTS_MAX_LEN  # FLEET_EVENTS_MAXLEN
    public_url: str = ""  # FLEET_PUBLIC_URL: fleet serve as people reach it (links)
    notify_group_wait: float = DEFAULT_NOTIFY_GROUP_WAIT  # FLEET_NOTIFY_GROUP_WAIT
    notify_backoff: float = DEFAULT_NOTIFY_BACKOFF  # FLEET_NOTIFY_BACKOFF
    alert_resend: float = DEFAULT_ALERT_RESEND  # FLEET_ALERT_RESEND
    cluster_concurrency: int = DEFAULT_CLUSTER_CONCURRENCY  # FLEET_CLUSTER_CONCURRENCY
    history_limit: int = DEFAULT_HISTORY_LIMIT  # FLEET_HISTORY_LIMIT (fleet.engine.history)
    allowed_hosts: tuple[HostRule, ...] | None = None  # FLEET_ALLOWED_HOSTS (fleet.net)
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from an environment; a malformed number is a user error naming it."""
        copy = MappingProxyType(dict(env))
        visibility = _number(env, "FLEET_CELERY_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT)
        root = env.get("FLEET_CACHE_DIR")
        xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        credentials = env.get("FLEET_CREDENTIALS_DIR")
        clients = DEFAULT_HTTP_MAX_CLIENTS
        return cls(
            redis_url=env.get("FLEET_REDIS_URL") or DEFAULT_REDIS_URL,
            redis_configured=bool(env.get("FLEET_REDIS_URL")),
            visibility_timeout=visibility,
            task_ttl=_number(env, "FLEET_TASK_TTL", visibility + TASK_TTL_MARGIN),
            lock_ttl=_number(env, "FLEET_LOCK_TTL", DEFAULT_LOCK_TTL),
            leader_ttl=_number(env, "FLEET_LEADER_TTL", DEFAULT_LEADER_TTL),
            retry_base=_number(env, "FLEET_RETRY_BASE", DEFAULT_RETRY_BASE),
            failure_cooldown=_number(env, "FLEET_FAILURE_COOLDOWN", DEFAULT_FAILURE_COOLDOWN),
            cache_dir=Path(root).expanduser() if root else Path(xdg) / "fleet",
            helm=env.get("FLEET_HELM") or None,
            kustomize=env.get("FLEET_KUSTOMIZE") or None,
            render_timeout=_positive(env, "FLEET_RENDER_TIMEOUT", DEFAULT_RENDER_TIMEOUT),
            webhook_secret=env.get("FLEET_WEBHOOK_SECRET", ""),
            repo_url=env.get("FLEET_REPO_URL") or None,
            credentials_dir=Path(credentials) if credentials else None,
            log_level=env.get("FLEET_LOG_LEVEL") or "INFO",
            kubeconfig_dir=kubeconfig_dir_from(env),
            max_wait_seconds=_number(env, "FLEET_MAX_WAIT_SECONDS", DEFAULT_MAX_WAIT),
            http_timeout=_number(env, "FLEET_HTTP_TIMEOUT", DEFAULT_HTTP_TIMEOUT),
            http_max_clients=max(1, int(_number(env, "FLEET_HTTP_MAX_CLIENTS", clients))),
            git_allow_http=git_allow_http_from(env),
            mass_delete_share=_share(env, "FLEET_MASS_DELETE_SHARE", DEFAULT_MASS_DELETE_SHARE),
            mass_delete_min_objects=_count(
                env, "FLEET_MASS_DELETE_MIN_OBJECTS", DEFAULT_MASS_DELETE_MIN
            ),
            registry_timeout=_positive(env, "FLEET_REGISTRY_TIMEOUT", DEFAULT_REGISTRY_TIMEOUT),
            events_max_len=max(1, _count(env, "FLEET_EVENTS_MAXLEN", DEFAULT_EVENTS_MAX_LEN)),
            public_url=(env.get("FLEET_PUBLIC_URL") or "").strip().rstrip("/"),
            notify_group_wait=_number(env, "FLEET_NOTIFY_GROUP_WAIT", DEFAULT_NOTIFY_GROUP_WAIT),
            notify_backoff=_number(env, "FLEET_NOTIFY_BACKOFF", DEFAULT_NOTIFY_BACKOFF),
            alert_resend=_positive(env, "FLEET_ALERT_RESEND", DEFAULT_ALERT_RESEND),
            cluster_concurrency=max(
                1, _count(env, "FLEET_CLUSTER_CONCURRENCY", DEFAULT_CLUSTER_CONCURRENCY)
            ),
            history_limit=history_limit_from(env),
            allowed_hosts=parse_allowed_hosts(env.get("FLEET_ALLOWED_HOSTS")),
            env=copy,
        )

    def with_redis_url(self, url: str | None) -> Settings:
        """These settings with `--redis` taking the place of FLEET_REDIS_URL (None: as is)."""
        return dataclasses.replace(self, redis_url=url, redis_configured=True) if url else self

    @property
    def status_url(self) -> str:
        """`FLEET_PUBLIC_URL` + `/status` (the link notifications carry), or ""."""
        return f"{self.public_url}/status" if self.public_url else ""

    @property
    def retry_cap(self) -> float:
        """A task retry's longest wait: 300 s, and below a third of the visibility timeout
        (a retry waiting longer would be redelivered as if its worker had died)."""
        return min(300.0, self.visibility_timeout / 3)

    @property
    def wait_cap(self) -> float:
        """The longest health wait of one unit: `FLEET_MAX_WAIT_SECONDS`, and at most half
        the visibility timeout (a task still waiting then would be redelivered to another
        worker while this one holds its thread)."""
        return max(1.0, min(self.max_wait_seconds, self.visibility_timeout / 2))


def kubeconfig_dir_from(env: Mapping[str, str]) -> Path:
    """`FLEET_KUBECONFIG_DIR` (`~` expanded: the operator's value), else `$HOME/.kube`:
    the one directory a definition's `kubeconfig.path` may point into."""
    raw = env.get("FLEET_KUBECONFIG_DIR")
    if raw and raw.strip():
        return Path(raw).expanduser()
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".kube"


def git_allow_http_from(env: Mapping[str, str]) -> bool:
    """`FLEET_GIT_ALLOW_HTTP`: may a Git token be sent over plain `http://`? (default no)"""
    return _flag(env, "FLEET_GIT_ALLOW_HTTP")


def history_limit_from(env: Mapping[str, str]) -> int:
    """`FLEET_HISTORY_LIMIT`: revisions kept per bundle and cluster (at least 2: the one
    running and the one a rollback returns to)."""
    raw = (env.get("FLEET_HISTORY_LIMIT") or "").strip()
    if not raw:
        return DEFAULT_HISTORY_LIMIT
    if not raw.isdigit() or int(raw) < MIN_HISTORY_LIMIT:
        raise UserError(
            f"FLEET_HISTORY_LIMIT must be a whole number of revisions, at least "
            f"{MIN_HISTORY_LIMIT}, not {raw!r}"
        )
    return int(raw)


def current() -> Settings:
    """This process's settings, read from its environment now."""
    return Settings.from_env(os.environ)


def configure_logging(level: str = "INFO") -> None:
    """The one log format of `fleet serve` and `fleet worker` (stderr, with timestamps)."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT)


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise UserError(f"{name} must be 1/true/yes or 0/false/no, not {raw!r}")


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _number(env, name, default)
    if not (value > 0 and math.isfinite(value)):
        raise UserError(f"{name} must be a positive number of seconds, not {env.get(name)!r}")
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise UserError(f"{name} must be a number of seconds, not {raw!r}") from None


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise UserError(f"{name} must be a share above 0 and at most 1 (0.5 = half), not {raw!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    if not raw.strip().isdigit():
        raise UserError(f"{name} must be a whole number of objects, not {raw!r}")
    return int(raw)
