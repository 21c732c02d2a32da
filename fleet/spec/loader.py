"""Loading a fleet repository: the root definition and every bundle it names.

Bundle discovery, decided and documented here:

- `bundles.inline[]` entries name their directory (`path`, relative to the repository root)
  and their name explicitly. Their options are merged over that directory's own fleet.yaml.
- `bundles.paths[]` are globs relative to the repository root (`**` recurses). Every match
  that is a directory is one bundle; file matches are ignored; a glob that matches no
  directory is an error (almost always a typo). Unlike Rancher Fleet, nested directories
  that merely contain a fleet.yaml are not bundles unless a glob matches them: what gets
  deployed is exactly what the definition names.
- A directory claimed by an inline bundle or an earlier glob is not loaded twice.
- Bundle names: an explicit `name` (inline entry or the bundle's fleet.yaml), else the
  repository-relative path with `/` replaced by `-`, lowercased (Rancher's convention,
  without the GitRepo prefix). Two bundles with one name are an error.

`load_repository` reports every problem it finds (one per line, file:line) in a single
FleetError rather than stopping at the first, so one `fleet validate` run shows them all.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.errors import FleetError, Problem, TransientError
from fleet.spec.bundles import Bundle, OptionSource, build_bundle, read_bundle_file
from fleet.spec.definition import (
    BundleTarget,
    ClusterSpec,
    FleetDefinition,
    GroupSpec,
    check_references,
    problems_at,
)
from fleet.spec.pathsafety import resolve_inside
from fleet.spec.validation import validate_document
from fleet.spec.yamlload import YamlDocument, load_yaml_file

__all__ = ["Bundle", "FleetRepo", "load_bundle", "load_repository", "resolve_inside"]

DEFINITION_FILE = "fleet.yaml"
_INLINE_ONLY_KEYS = ("name", "path", "targets")


@dataclass
class FleetRepo:
    """A loaded, validated repository: the definition and its bundles in discovery order."""

    root: Path
    definition: FleetDefinition
    bundles: list[Bundle]
    definition_file: Path
    document: YamlDocument | None = field(default=None, repr=False)

    @property
    def clusters(self) -> list[ClusterSpec]:
        return self.definition.clusters

    @property
    def groups(self) -> list[GroupSpec]:
        return self.definition.groups


def load_repository(repo_dir: Path) -> FleetRepo:
    """Load and validate `repo_dir/fleet.yaml` and every bundle; FleetError lists all problems."""
    root = Path(repo_dir).resolve()
    def_file = root / DEFINITION_FILE
    if not root.is_dir():
        raise FleetError(f"repository directory not found: {repo_dir}")
    if not def_file.is_file():
        raise FleetError(
            f"no {DEFINITION_FILE} with 'kind: Fleet' at the repository root", file=root
        )
    resolve_inside(root, root, DEFINITION_FILE, what="fleet definition", file=def_file)
    doc = load_yaml_file(def_file)
    if not isinstance(doc.data, dict):
        raise FleetError(
            "the fleet definition must be a mapping", file=def_file, line=doc.line_of(())
        )
    if doc.data.get("kind") != "Fleet":
        raise FleetError(
            "the root fleet.yaml needs 'kind: Fleet' (a bundle fleet.yaml cannot be the root)",
            file=def_file,
            line=doc.line_of(("kind",)),
        )
    definition, problems = validate_document(FleetDefinition, doc)
    if definition is None:
        raise FleetError(problems=problems)
    problems = problems_at(doc, str(def_file), check_references(definition))
    for index, cluster in enumerate(definition.clusters):
        if cluster.kubeconfig is not None:
            where = doc.line_of(("clusters", index, "kubeconfig", "path"))
            cluster.kubeconfig.locate(str(def_file), where)
    transient: list[TransientError] = []  # remote references that could not be resolved now
    bundles = _load_bundles(root, definition, doc, problems, transient)
    seen: dict[str, Bundle] = {}
    for bundle in bundles:
        if bundle.name in seen:
            file, line = bundle.where(("name",))
            problems.append(
                Problem(
                    f"duplicate bundle name '{bundle.name}' ({seen[bundle.name].rel_path} and "
                    f"{bundle.rel_path}); set 'name' in one of their fleet.yaml files",
                    file,
                    line,
                )
            )
        seen[bundle.name] = bundle
    if problems:
        raise (TransientError if transient else FleetError)(problems=_unique(problems))
    return FleetRepo(root, definition, bundles, def_file, doc)


def load_bundle(bundle_dir: Path, repo_root: Path | None = None) -> Bundle:
    """A standalone bundle (no root definition, no defaults, no group checks).

    `repo_root` bounds what may be read; it defaults to the bundle directory itself.
    """
    path = Path(bundle_dir).resolve()
    root = Path(repo_root).resolve() if repo_root is not None else path
    if not path.is_dir():
        raise FleetError(f"bundle directory not found: {bundle_dir}")
    if not path.is_relative_to(root):
        raise FleetError(f"bundle directory {bundle_dir} is outside the repository {repo_root}")
    layer, problems = read_bundle_file(path, root)
    if problems:
        raise FleetError(problems=problems)
    return build_bundle(repo_root=root, bundle_dir=path, layers=[layer] if layer else [])


def _load_bundles(
    root: Path,
    definition: FleetDefinition,
    doc: YamlDocument,
    problems: list[Problem],
    transient_out: list[TransientError],
) -> list[Bundle]:
    def_file = doc.file
    groups = {g.name for g in definition.groups}
    raw_bundles: dict[str, Any] = doc.data.get("bundles") or {}
    defaults: list[OptionSource] = []
    if isinstance(doc.data.get("defaults"), dict):
        defaults.append(OptionSource(doc, ("defaults",), doc.data["defaults"]))
    claimed: set[Path] = set()
    found: list[Bundle] = []
    transient = transient_out

    def add(
        bundle_dir: Path,
        extra: list[OptionSource],
        name: str | None,
        targets: list[BundleTarget],
    ) -> None:
        claimed.add(bundle_dir)
        own, own_problems = read_bundle_file(bundle_dir, root)
        problems.extend(own_problems)
        if own_problems:
            return
        layers = [*defaults, *([own] if own else []), *extra]
        try:
            found.append(
                build_bundle(
                    repo_root=root,
                    bundle_dir=bundle_dir,
                    layers=layers,
                    explicit_name=name,
                    targets=targets,
                    groups=groups,
                    remote_hosts=definition.kustomize_remote_hosts,
                )
            )
        except TransientError as err:
            transient.append(err)
            problems.extend(err.problems)
        except FleetError as err:
            problems.extend(err.problems)

    for i, inline in enumerate(definition.bundles.inline):
        loc = ("bundles", "inline", i)
        line = doc.line_of((*loc, "path"))
        try:
            bundle_dir = resolve_inside(
                root, root, inline.path, what="bundle path", file=def_file, line=line
            )
        except FleetError as err:
            problems.extend(err.problems)
            continue
        if not bundle_dir.is_dir():
            problems.append(
                Problem(f"bundle directory '{inline.path}' not found", str(def_file), line)
            )
            continue
        raw = {k: v for k, v in raw_bundles["inline"][i].items() if k not in _INLINE_ONLY_KEYS}
        add(bundle_dir, [OptionSource(doc, loc, raw)], inline.name, inline.targets)

    for i, spec in enumerate(definition.bundles.paths):
        line = doc.line_of(("bundles", "paths", i))
        for bundle_dir in _glob_dirs(root, spec.glob, str(def_file), line, problems):
            if bundle_dir not in claimed:
                add(bundle_dir, [], None, spec.targets)
    return found


def _glob_dirs(
    root: Path, pattern: str, file: str, line: int | None, problems: list[Problem]
) -> list[Path]:
    """Directories matched by `pattern`, each checked to be inside the repository.

    Python's glob would list directories behind symlinks and `..`; this walks the
    repository itself (never following a symlink while walking) and matches relative
    paths, so nothing outside is even listed.
    """
    parts = pattern.strip("/").split("/")
    if pattern.startswith(("/", "~")) or ".." in parts or Path(pattern).is_absolute():
        problems.append(
            Problem(f"bundle path '{pattern}' must be relative, inside the repository", file, line)
        )
        return []
    regex = _glob_regex(pattern)
    dirs: list[Path] = []
    for rel in _repo_dirs(root):
        if not regex.fullmatch(rel):
            continue
        try:
            real = resolve_inside(root, root, rel, what="bundle path", file=file, line=line)
        except FleetError as err:
            problems.extend(err.problems)
            continue
        if real.is_dir() and real != root:
            dirs.append(real)
    if not dirs and not any(p.line == line and p.file == file for p in problems):
        problems.append(Problem(f"bundle path '{pattern}' matches no directory", file, line))
    return dirs


def _repo_dirs(root: Path) -> list[str]:
    """Every directory (and symlink to one) under root, posix-relative, without `.git`."""
    found: list[str] = []
    for current, subdirs, _files in os.walk(root, followlinks=False):
        subdirs[:] = sorted(d for d in subdirs if d != ".git")
        base = Path(current).relative_to(root).as_posix()
        for name in subdirs:
            found.append(name if base == "." else f"{base}/{name}")
    return sorted(found)


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Glob -> regex: `**` spans directories, `*`/`?`/`[...]` stay within one segment."""
    out = ""
    segments = pattern.strip("/").split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            out += ".*" if last else "(?:.*/)?"
            continue
        out += _segment_regex(segment) + ("" if last else "/")
    return re.compile(out)


def _segment_regex(segment: str) -> str:
    out, i = "", 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[" and "]" in segment[i + 2 :]:
            end = segment.index("]", i + 2)
            body = segment[i + 1 : end]
            negate = body.startswith("!")
            body = re.sub(r"([\\^\]\[])", r"\\\1", body[1:] if negate else body)
            out += f"[{'^' if negate else ''}{body}]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return out


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    out: list[Problem] = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            out.append(problem)
    return out
