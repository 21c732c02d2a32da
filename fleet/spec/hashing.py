"""Content hashes and deployment ids.

A deployment id says "this exact desired state": equal ids mean the renderer would produce
the same manifests, so the planner can skip a unit whose id a cluster already runs.

What a bundle's content hash covers: every file under the bundle directory (recursively,
following symlinks that stay inside the repository, skipping `.git`), as sorted pairs of
(posix path relative to the bundle, file bytes). Helm values files named by `valuesFiles`
are left out of it and hashed separately (`input_hashes`), so that changing a values file
only changes the units whose merged options use it. Paths outside the bundle directory but
inside the repository (a shared local chart, a values file, a kustomize dir) are hashed the
same way and added to the units that use them. Kustomize bases that a kustomization in the
bundle reaches outside the bundle directory (`resources: [../../shared/base]`) are hashed
into the bundle's content hash (see `fleet.spec.kustomize_refs`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fleet.spec.pathsafety import walk_files


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal data, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_files(files: Iterable[tuple[str, Path]]) -> str:
    """sha256 over (relative path, size, bytes) of each file, in the given (sorted) order."""
    digest = hashlib.sha256()
    for rel, real in files:
        data = real.read_bytes()
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def hash_path(path: Path, repo_root: Path) -> str:
    """Content hash of a file or a directory tree (see module docstring)."""
    if path.is_dir():
        return hash_files(walk_files(path, repo_root))
    return hash_files([(path.name, path)])


def deployment_id(
    content_hash: str,
    input_hashes: Iterable[str],
    options_json: str,
    renderer: str,
    context_json: str = "",
) -> str:
    """sha256 over the bundle content, extra inputs, merged options and renderer.

    `context_json` is the cluster context, included only when the options read it at render
    time (templated values files), so that otherwise identical clusters share one id.
    """
    digest = hashlib.sha256()
    for part in (content_hash, *input_hashes, options_json, renderer, context_json):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()
