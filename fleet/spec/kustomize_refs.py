"""Local paths a kustomization reads outside its bundle, checked and collected for hashing.

`kustomize build` follows `resources`, `bases` and `components` to other directories
(`../../base`). Two things depend on knowing them before anything renders:

- safety: a reference that leaves the repository would make kustomize read it, so it is an
  error here with the kustomization's file and line, like any other path;
- deployment ids: a shared base outside the bundle directory is part of what the bundle
  deploys, so its content goes into the bundle's hash.

Remote references (URLs, `github.com/...`, `git@...`) are checked against the definition's
allow-list here too, with file and line, and collected so that loading can pin them (see
`fleet.spec.kustomize_remote`). Only the reference graph is parsed; a kustomization that is
not valid YAML is ignored here (the renderer reports it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path

from fleet.errors import FleetError, Problem
from fleet.spec.kustomize_remote import (
    RemoteRef,
    host_allowed,
    is_remote,
    parse_remote,
    remote_entries,
)
from fleet.spec.pathsafety import resolve_inside
from fleet.spec.yamlload import YamlDocument, load_yaml_file

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_REFERENCE_KEYS = ("resources", "bases", "components")


def external_kustomize_refs(
    start_dirs: list[Path],
    bundle_dir: Path,
    repo_root: Path,
    out: list[Problem],
    *,
    remote_hosts: Collection[str] = (),
    remotes: list[RemoteRef] | None = None,
) -> list[Path]:
    """Directories and files outside `bundle_dir` reached from kustomizations in `start_dirs`.

    Follows references transitively (each directory once). Problems (references leaving
    the repository, remote references refused or not allowed by `remote_hosts`) are
    appended to `out`; the allowed remote references to `remotes`.
    """
    bundle = bundle_dir.resolve()
    pending = [d.resolve() for d in start_dirs]
    seen: set[Path] = set()
    external: list[Path] = []
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        file = next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)
        if file is None:
            continue
        try:  # a kustomization that links out of the repository is refused unread
            resolve_inside(repo_root, directory, file.name, what="kustomization", file=file)
        except FleetError as err:
            out.extend(err.problems)
            continue
        try:
            doc = load_yaml_file(file)
        except FleetError:
            continue
        if not isinstance(doc.data, dict):
            continue
        _check_remotes(doc, file, remote_hosts, out, remotes)
        for key in _REFERENCE_KEYS:
            refs = doc.data.get(key)
            if not isinstance(refs, list):
                continue
            for index, ref in enumerate(refs):
                if not isinstance(ref, str) or not ref or is_remote(ref):
                    continue
                line = doc.line_of((key, index))
                try:
                    real = resolve_inside(
                        repo_root,
                        directory,
                        ref,
                        what=f"kustomize {key[:-1]}",
                        file=file,
                        line=line,
                    )
                except FleetError as err:
                    out.extend(err.problems)
                    continue
                if real.is_dir():
                    pending.append(real)
                if real.exists() and not real.is_relative_to(bundle) and real not in external:
                    external.append(real)
    return sorted(external)


def _check_remotes(
    doc: YamlDocument,
    file: Path,
    remote_hosts: Collection[str],
    out: list[Problem],
    remotes: list[RemoteRef] | None,
) -> None:
    for loc, ref, files_only in remote_entries(doc.data):
        line = doc.line_of(loc)
        try:
            remote = parse_remote(ref, files_only=files_only)
        except ValueError as err:
            out.append(Problem(f"kustomize remote reference {err}", str(file), line))
            continue
        if not host_allowed(remote.host, remote_hosts):
            allowed = ", ".join(remote_hosts) or "none"
            out.append(
                Problem(
                    f"kustomize remote reference '{ref}': host {remote.host} is not in the "
                    f"definition's kustomizeRemoteHosts (allowed: {allowed})",
                    str(file),
                    line,
                )
            )
        elif remotes is not None and remote not in remotes:
            remotes.append(dataclasses.replace(remote, file=str(file), line=line))
