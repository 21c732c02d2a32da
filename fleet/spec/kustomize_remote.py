"""Kustomize remote references: refused unless the definition allows their host, and pinned.

`kustomize build` fetches whatever a kustomization names by URL, with the worker's network
and identity: `resources: [https://github.com/org/repo//base?ref=v1]`, `git::` and
`git@host:` repositories, `github.com/org/repo` shorthands, and plain https files (which
kustomize also accepts in `patches`, generators' `files`, `crds`, ...). Such content is not
in the commit, so without care it would be outside the deployment id, and a `file://` URL
would read other checkouts on the worker. The rules:

- a remote reference is refused (file:line) unless its host is in the definition's
  `kustomizeRemoteHosts` (`host` or `host:port`); a standalone bundle allows none;
- only https, ssh (`git@host:...`, `ssh://`) and the github.com/gitlab.com/bitbucket.org
  shorthands (fetched over https) are accepted; `file://`, plain `http://` and `git://`
  are always refused, as is a `ref`/`version` starting with `-` (kustomize passes it to
  `git fetch`, which would read it as a flag);
- an allowed reference is resolved when the bundle loads: a git reference to the commit
  `git ls-remote` gives for its ref (a full sha is taken as is), an https file to the
  sha256 of its content (no redirects, at most 8 MiB), both within `FLEET_RENDER_TIMEOUT`;
  `pinned` is folded into the bundle's content hash, so a change upstream changes the
  deployment id (and the render cache key). Remote bases that themselves name floating
  remote references are not followed; pin those in the base.
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from fleet import config
from fleet.errors import FleetError, TransientError
from fleet.process import run_tool
from fleet.spec.yamlload import MAX_YAML_BYTES, Loc

SHORTHAND_HOSTS = ("github.com/", "gitlab.com/", "bitbucket.org/")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_SHA = re.compile(r"^[0-9a-f]{40}$")
# kustomization keys whose entries are read as files (kustomize's loader fetches http(s)
# URLs there too); only `resources`, `bases` and `components` may also be git repositories
_REPO_KEYS = ("resources", "bases", "components")
_FILE_KEYS = (
    "crds",
    "configurations",
    "generators",
    "transformers",
    "validators",
    "patchesStrategicMerge",
)


@dataclass(frozen=True)
class RemoteRef:
    """One remote reference of a kustomization, parsed (see `parse_remote`)."""

    written: str
    kind: Literal["git", "https"]
    host: str  # lower-cased, with the port when the URL has one
    url: str  # git: the repository for `git ls-remote`; https: the file
    revision: str | None = None  # git: `?ref=` / `?version=`
    file: str = field(default="", compare=False)  # where it is written, for messages
    line: int | None = field(default=None, compare=False)


def is_remote(ref: str) -> bool:
    """Does kustomize fetch `ref` rather than read it from the checkout?"""
    return bool(_SCHEME.match(ref)) or ref.startswith(("git::", "git@", "gh:", *SHORTHAND_HOSTS))


def parse_remote(ref: str, *, files_only: bool = False) -> RemoteRef:
    """`ref` parsed, or ValueError saying why it is refused whatever the allow-list says."""
    text = ref.removeprefix("git::")
    git_forced = text != ref
    scheme_match = _SCHEME.match(text)
    if text.startswith("git@") and not files_only:
        host_part, _, path = text[4:].partition(":")
        return _git(ref, host_part, f"git@{host_part}:{path}")
    if text.startswith("gh:"):
        text = "github.com/" + text[3:]
    if scheme_match is None:
        if text.startswith(SHORTHAND_HOSTS) and not files_only:
            return _git(ref, text.split("/", 1)[0], "https://" + text)
        raise ValueError(f"'{ref}' is not a URL kustomize can fetch")
    scheme = scheme_match.group(1).lower()
    if scheme == "file":
        raise ValueError(f"'{ref}': file:// URLs are refused (they read outside the repository)")
    if scheme in ("http", "git"):
        raise ValueError(f"'{ref}': plain {scheme}:// is refused (use https or ssh)")
    if scheme not in ("https", "ssh"):
        raise ValueError(f"'{ref}': {scheme}:// is not accepted (use https or ssh)")
    parts = urlsplit(text)
    if not parts.hostname:
        raise ValueError(f"'{ref}' has no host")
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    looks_git = (
        git_forced
        or scheme == "ssh"
        or "//" in parts.path.lstrip("/")
        or ".git" in parts.path
        or "_git/" in parts.path
        or bool(set(parse_qs(parts.query)) & {"ref", "version"})
        or parts.hostname in ("github.com", "gitlab.com", "bitbucket.org")
    )
    if looks_git and files_only:
        raise ValueError(f"'{ref}': only resources, bases and components may be git repositories")
    if looks_git:
        return _git(ref, host, text)
    return RemoteRef(ref, "https", host.lower(), text)


def _git(written: str, host: str, url: str) -> RemoteRef:
    """A git reference: split kustomize's `//subdir` and `?ref=` off the repository URL."""
    base, _, query = url.partition("?")
    params = parse_qs(query)
    found = params.get("ref") or params.get("version")
    revision = found[0] if found else None
    if revision is not None and revision.startswith("-"):
        raise ValueError(f"'{written}': ref '{revision}' starts with '-' (git would read a flag)")
    host = host.rsplit("@", 1)[-1].lower()
    if not host or host.startswith("-"):
        raise ValueError(f"'{written}' has no host")
    prefix, sep, path = base.partition("://") if "://" in base else ("", "", base)
    head, slash, rest = path.partition("/") if sep else path.partition(":")
    repo = f"{prefix}{sep}{head}{slash}{_repository_path(rest)}"
    if repo.startswith("-"):
        raise ValueError(f"'{written}' starts with '-'")
    return RemoteRef(written, "git", host, repo, revision)


def _repository_path(path: str) -> str:
    """The repository part of kustomize's `org/repo[.git][//subdir]` (Azure: `_git/repo`)."""
    if "//" in path:
        return path.split("//", 1)[0].strip("/")
    segments = path.strip("/").split("/")
    for index, segment in enumerate(segments):
        if segment.endswith(".git"):
            return "/".join(segments[: index + 1])
        if segment == "_git":
            return "/".join(segments[: index + 2])
    return "/".join(segments[:2])


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """`host` (maybe with a port) matches an entry `name` (any port) or `name:port`."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return any(entry.lower() in (host, name) for entry in allowed)


def remote_entries(kustomization: Mapping[str, Any]) -> Iterator[tuple[Loc, str, bool]]:
    """(location, reference, files_only) of every remote reference a kustomization names."""
    for key in (*_REPO_KEYS, *_FILE_KEYS):
        entries = kustomization.get(key)
        if isinstance(entries, list):
            for index, entry in enumerate(entries):
                if isinstance(entry, str) and is_remote(entry):
                    yield (key, index), entry, key not in _REPO_KEYS
    for key in ("patches", "patchesJson6902", "replacements"):
        entries = kustomization.get(key)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            path = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(path, str) and is_remote(path):
                yield (key, index, "path"), path, True
    for key in ("configMapGenerator", "secretGenerator"):
        generators = kustomization.get(key)
        for index, generator in enumerate(generators if isinstance(generators, list) else []):
            if not isinstance(generator, dict):
                continue
            for name in ("files", "envs"):
                values = generator.get(name)
                for j, value in enumerate(values if isinstance(values, list) else []):
                    source = value.split("=", 1)[-1] if isinstance(value, str) else ""
                    if is_remote(source):
                        yield (key, index, name, j), source, True
            env = generator.get("env")
            if isinstance(env, str) and is_remote(env):
                yield (key, index, "env"), env, True
    openapi = kustomization.get("openapi")
    path = openapi.get("path") if isinstance(openapi, dict) else None
    if isinstance(path, str) and is_remote(path):
        yield ("openapi", "path"), path, True


def pin(remote: RemoteRef, settings: config.Settings | None = None) -> str:
    """What `remote` is now: `git URL@SHA` or `https URL sha256:HEX` (FleetError if not)."""
    settings = settings or config.current()
    if remote.kind == "git":
        return f"git {remote.url}@{_ls_remote(remote, settings)}"
    return f"https {remote.url} sha256:{_content_hash(remote, settings)}"


def _ls_remote(remote: RemoteRef, settings: config.Settings) -> str:
    revision = remote.revision or "HEAD"
    if _SHA.match(revision):
        return revision
    argv = ["git", "-c", "protocol.allow=never", "-c", "protocol.https.allow=always"]
    argv += ["-c", "protocol.ssh.allow=always", "ls-remote", "--", remote.url, revision]
    what = f"git ls-remote {remote.url} {revision}"
    done = run_tool(argv, what=what, settings=settings)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise TransientError(f"{what} failed: {lines[-1] if lines else 'no output'}")
    found: dict[str, str] = {}
    for line in done.stdout.decode(errors="replace").splitlines():
        sha, _, name = line.partition("\t")
        found[name] = sha
    for name in (
        revision,
        f"refs/tags/{revision}^{{}}",
        f"refs/tags/{revision}",
        f"refs/heads/{revision}",
    ):
        if name in found:
            return found[name]
    raise FleetError(f"kustomize remote '{remote.written}': no ref '{revision}' in {remote.url}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an error: the allow-list names the host that is fetched


def _content_hash(remote: RemoteRef, settings: config.Settings) -> str:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(remote.url, timeout=settings.render_timeout) as response:
            data = response.read(MAX_YAML_BYTES + 1)
    except urllib.error.HTTPError as err:
        raise TransientError(f"kustomize remote '{remote.written}': HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TransientError(f"kustomize remote '{remote.written}': {reason}") from None
    if len(data) > MAX_YAML_BYTES:
        raise FleetError(f"kustomize remote '{remote.written}' is larger than 8 MiB")
    return hashlib.sha256(data).hexdigest()
