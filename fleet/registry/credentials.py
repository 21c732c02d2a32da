"""Registry credentials from the worker's environment, by the definition's `credential` name.

`registries[].credential: quay-robot` names `FLEET_REGISTRY_USERNAME_QUAY_ROBOT` and
`FLEET_REGISTRY_PASSWORD_QUAY_ROBOT` (upper-cased, every character but A-Z and 0-9 as `_`,
as for kubeconfigs). Git never holds them; `Credential`'s repr hides the password. Each
is handed out for one registry host only, checked against the operator's
`FLEET_REGISTRY_HOSTS_<NAME>` (`fleet.credhosts`), so a commit that changes a registry's
`host` cannot send the credential to its own server.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleet import credhosts
from fleet.errors import UserError


@dataclass(frozen=True)
class Credential:
    username: str
    password: str = field(repr=False)


def env_suffix(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def credential_from_env(name: str, env: Mapping[str, str], *, host: str) -> Credential:
    """The credential called `name`, to be sent to registry `host[:port]`; a UserError
    naming the variables when one is unset, `CredentialRefused` when the operator's
    binding (`FLEET_REGISTRY_HOSTS_<NAME>`) does not list `host`."""
    credhosts.require(credhosts.REGISTRY, name, *credhosts.registry_endpoint(host), env)
    suffix = env_suffix(name)
    user_var = f"FLEET_REGISTRY_USERNAME_{suffix}"
    password_var = f"FLEET_REGISTRY_PASSWORD_{suffix}"
    username, password = env.get(user_var), env.get(password_var)
    if not username or not password:
        raise UserError(f"registry credential {name!r}: set {user_var} and {password_var}")
    return Credential(username, password)


def docker_config(host: str, credential: Credential) -> bytes:
    """A Docker/containers auth file (`{"auths": {host: {"auth": ...}}}`) holding one
    credential, for a tool that reads credentials only from such a file (helm's
    `--registry-config`): never a credential on a command line."""
    token = base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": token}}}).encode()
