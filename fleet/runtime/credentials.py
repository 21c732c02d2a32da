"""How a worker finds the kubeconfig of a cluster, from its own environment.

The fleet definition is in Git, so it never holds a secret, and it is untrusted input: it
must not make a worker read or reveal anything of its environment. A cluster either names
a kubeconfig file on the worker's disk (`kubeconfig: {path, context}`) or a `credential`
(default: the cluster's name) that each worker resolves like this, first hit wins:

1. `FLEET_KUBECONFIG_<NAME>`: path of a kubeconfig file, where `<NAME>` is the credential
   name upper-cased with every character other than A-Z and 0-9 replaced by `_`
   (credential `prod-eu` -> `FLEET_KUBECONFIG_PROD_EU`);
2. `$FLEET_CREDENTIALS_DIR/<name>.kubeconfig` when `FLEET_CREDENTIALS_DIR` is set.

The kubeconfig's current context is used unless `FLEET_KUBECONTEXT_<NAME>` names another.

A `kubeconfig.path` from Git is taken literally (the definition model refuses `~` and `$`)
and confined to the operator's `FLEET_KUBECONFIG_DIR` (default `~/.kube`): relative paths
are resolved against it, and the real path (symlinks followed) must stay inside it, or the
error names the definition's file and line. Values the operator set (`FLEET_KUBECONFIG_*`,
`FLEET_CREDENTIALS_DIR`) keep `~` and `$VAR` expansion: they are the operator's own.

Errors never show an expanded value: `KubeconfigLocation.shown` is what the definition or
the variable literally says, and that is what "not found" and "cannot load" print (in a
`fleet sync` line, a worker's log, Redis and the unauthenticated `/status`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleet import config
from fleet.errors import FleetError
from fleet.spec.definition import ClusterSpec, KubeconfigRef

CREDENTIALS_DIR_ENV = "FLEET_CREDENTIALS_DIR"
KUBECONFIG_DIR_ENV = "FLEET_KUBECONFIG_DIR"


@dataclass(frozen=True)
class KubeconfigLocation:
    """Where to load a cluster's kubeconfig from; `context` None means its current one.

    `shown` is how errors name it (never an expanded value); `file`/`line` the place in
    the definition it came from, when it came from Git.
    """

    path: Path
    context: str | None = None
    shown: str = ""
    file: str | None = None
    line: int | None = None

    def error(self, message: str) -> FleetError:
        """A one-line error about this kubeconfig, at its place in the definition."""
        return FleetError(message, file=self.file, line=self.line)


def env_suffix(name: str) -> str:
    """`prod-eu` -> `PROD_EU`: the credential name as it appears in variable names."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def resolve_kubeconfig(cluster: ClusterSpec, env: Mapping[str, str]) -> KubeconfigLocation:
    """Kubeconfig location for `cluster` under environment `env` (`Settings.env`).

    Opens no file; a `kubeconfig.path` is resolved through its symlinks (to confine it),
    and the caller checks that the file exists when it connects.
    """
    if cluster.kubeconfig is not None:
        kube_dir = config.kubeconfig_dir_from(env)
        return confined_kubeconfig(cluster.name, cluster.kubeconfig, kube_dir)
    name = cluster.credential_name
    suffix = env_suffix(name)
    context = env.get(f"FLEET_KUBECONTEXT_{suffix}") or None
    variable = f"FLEET_KUBECONFIG_{suffix}"
    explicit = env.get(variable)
    if explicit:
        return KubeconfigLocation(Path(_expand(explicit, env)), context, f"{explicit} ({variable})")
    directory = env.get(CREDENTIALS_DIR_ENV)
    if directory:
        path = Path(_expand(directory, env)) / f"{name}.kubeconfig"
        shown = f"{name}.kubeconfig in {CREDENTIALS_DIR_ENV} ({directory})"
        return KubeconfigLocation(path, context, shown)
    raise FleetError(
        f"no credential '{name}' for cluster '{cluster.name}': set FLEET_KUBECONFIG_{suffix} "
        f"to a kubeconfig file, or {CREDENTIALS_DIR_ENV} to a directory holding {name}.kubeconfig"
    )


def confined_kubeconfig(cluster: str, ref: KubeconfigRef, directory: Path) -> KubeconfigLocation:
    """`ref.path` (from Git) inside `directory`, or a user error at its definition line.

    Relative paths start at `directory`; absolute ones must name a file inside it. The real
    path counts (symlinks and `..` resolved), so a link pointing out of the directory is
    refused as well. Nothing is expanded.
    """
    file, line = ref.origin or (None, None)
    shown = repr(ref.path)
    base = Path(os.path.realpath(directory))
    try:
        real = Path(os.path.realpath(base / ref.path))
    except (OSError, ValueError):
        raise FleetError(
            f"cluster '{cluster}': kubeconfig.path {shown} is not a usable path",
            file=file,
            line=line,
        ) from None
    if not real.is_relative_to(base):
        raise FleetError(
            f"cluster '{cluster}': kubeconfig.path {shown} is outside {KUBECONFIG_DIR_ENV} "
            "(paths from Git are relative to that directory and may not leave it, "
            "through '..' or a symlink)",
            file=file,
            line=line,
        )
    return KubeconfigLocation(
        real, ref.context, f"kubeconfig.path {shown} in {KUBECONFIG_DIR_ENV}", file, line
    )


def _expand(raw: str, env: Mapping[str, str]) -> str:
    """`~` and `$VAR` of an operator's value (never of a path from Git)."""

    def var(match: re.Match[str]) -> str:
        key = match.group(1) or match.group(2)
        return env.get(key, match.group(0))

    expanded = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", var, raw)
    if expanded.startswith("~"):
        home = env.get("HOME") or os.path.expanduser("~")
        expanded = home + expanded[1:]
    return expanded
