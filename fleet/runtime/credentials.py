"""How a worker finds the kubeconfig of a cluster, from its own environment.

The fleet definition is in Git, so it never holds a secret. A cluster either names a
kubeconfig file on the worker's disk (`kubeconfig: {path, context}`) or a `credential`
(default: the cluster's name) that each worker resolves like this, first hit wins:

1. `FLEET_KUBECONFIG_<NAME>`: path of a kubeconfig file, where `<NAME>` is the credential
   name upper-cased with every character other than A-Z and 0-9 replaced by `_`
   (credential `prod-eu` -> `FLEET_KUBECONFIG_PROD_EU`);
2. `$FLEET_CREDENTIALS_DIR/<name>.kubeconfig` when `FLEET_CREDENTIALS_DIR` is set.

The kubeconfig's current context is used unless `FLEET_KUBECONTEXT_<NAME>` names another.
Only the scheduler-free worker side calls this; `fleet validate` never does. The function is
pure (environment passed in, no file is opened) so it is trivially testable; the caller
checks that the file exists when it connects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import FleetError
from fleet.spec.definition import ClusterSpec

CREDENTIALS_DIR_ENV = "FLEET_CREDENTIALS_DIR"


@dataclass(frozen=True)
class KubeconfigLocation:
    """Where to load a cluster's kubeconfig from; `context` None means its current one."""

    path: Path
    context: str | None = None


def env_suffix(name: str) -> str:
    """`prod-eu` -> `PROD_EU`: the credential name as it appears in variable names."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def resolve_kubeconfig(cluster: ClusterSpec, env: Mapping[str, str]) -> KubeconfigLocation:
    """Kubeconfig location for `cluster` under environment `env` (`Settings.env`)."""
    if cluster.kubeconfig is not None:
        raw = _expand(cluster.kubeconfig.path, env)
        return KubeconfigLocation(Path(raw), cluster.kubeconfig.context)
    name = cluster.credential_name
    suffix = env_suffix(name)
    context = env.get(f"FLEET_KUBECONTEXT_{suffix}") or None
    explicit = env.get(f"FLEET_KUBECONFIG_{suffix}")
    if explicit:
        return KubeconfigLocation(Path(_expand(explicit, env)), context)
    directory = env.get(CREDENTIALS_DIR_ENV)
    if directory:
        return KubeconfigLocation(Path(_expand(directory, env)) / f"{name}.kubeconfig", context)
    raise FleetError(
        f"no credential '{name}' for cluster '{cluster.name}': set FLEET_KUBECONFIG_{suffix} "
        f"to a kubeconfig file, or {CREDENTIALS_DIR_ENV} to a directory holding {name}.kubeconfig"
    )


def _expand(raw: str, env: Mapping[str, str]) -> str:
    def var(match: re.Match[str]) -> str:
        key = match.group(1) or match.group(2)
        return env.get(key, match.group(0))

    expanded = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", var, raw)
    if expanded.startswith("~"):
        home = env.get("HOME") or os.path.expanduser("~")
        expanded = home + expanded[1:]
    return expanded
