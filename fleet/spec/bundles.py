"""One bundle: a directory, its merged options, its content hash, its external inputs.

A bundle's options are layered, lowest precedence first: the definition's `defaults`, the
bundle directory's own `fleet.yaml` (Rancher Fleet's format), then the inline entry of the
root definition (`bundles.inline[]`) when there is one. Layers deep-merge: mappings merge,
lists and scalars replace (so a bundle's `targetCustomizations` replace the defaults' list).
Each layer is validated on its own first, so errors point at the file and line that wrote
them. Every path an option names (values files, a local chart, `kustomize.dir`, yaml
overlays), in the base options and in every target customization, is checked to exist and
to stay inside the repository before anything is read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

from fleet.errors import FleetError, Problem, TransientError
from fleet.spec.bundle_options import BundleOptions, HelmOptions, KustomizeOptions, YamlOptions
from fleet.spec.definition import NAME_PATTERN, BundleTarget, has_criterion, undefined_group
from fleet.spec.hashing import hash_files, hash_path
from fleet.spec.kustomize_refs import external_kustomize_refs
from fleet.spec.kustomize_remote import RemoteRef, pin
from fleet.spec.merge import deep_merge
from fleet.spec.pathsafety import resolve_inside, walk_files
from fleet.spec.validation import validate_document
from fleet.spec.yamlload import Loc, YamlDocument, load_yaml_file

BUNDLE_FILE = "fleet.yaml"
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class OptionSource:
    """One layer of a bundle's options and where it was written (for file:line)."""

    doc: YamlDocument
    prefix: Loc
    data: Mapping[str, Any]


@dataclass(eq=False)
class Bundle:
    """A loaded, validated bundle. `renderer` is only an explicit `renderer:` option.

    `input_hashes` maps each path an option names (as written, relative to the bundle
    directory) to the content hash of what it points at; `templated_inputs` are the values
    files among them that contain `${` templating.
    """

    name: str
    path: Path
    rel_path: str
    options: BundleOptions
    options_file: Path | None
    content_hash: str
    renderer: str | None = None
    targets: tuple[BundleTarget, ...] = ()
    input_hashes: Mapping[str, str] = field(default_factory=dict)
    templated_inputs: frozenset[str] = frozenset()
    sources: tuple[OptionSource, ...] = ()

    def where(self, loc: Loc) -> tuple[str | None, int | None]:
        """File and line that wrote option `loc` (the highest-precedence layer that has it)."""
        for source in reversed(self.sources):
            if _has(source.data, loc):
                return str(source.doc.file), source.doc.line_of((*source.prefix, *loc))
        if self.sources:
            top = self.sources[-1]
            return str(top.doc.file), top.doc.line_of(top.prefix)
        return (str(self.options_file) if self.options_file else None), None


def derive_name(rel_path: str, fallback: str) -> str:
    """Rancher-style bundle name: path with `/` -> `-`, lowercased, DNS-label safe."""
    raw = rel_path if rel_path not in ("", ".") else fallback
    name = _NOT_NAME_CHARS.sub("-", raw.lower().replace("/", "-")).strip("-")
    return name[:63].rstrip("-") or "bundle"


def read_bundle_file(
    bundle_dir: Path, repo_root: Path | None = None
) -> tuple[OptionSource | None, list[Problem]]:
    """The bundle directory's own `fleet.yaml` as a validated layer (None when absent).

    With `repo_root`, a fleet.yaml that links out of the repository is refused unread.
    """
    file = bundle_dir / BUNDLE_FILE
    if not file.is_file():
        return None, []
    try:
        if repo_root is not None:
            resolve_inside(repo_root, bundle_dir, BUNDLE_FILE, what="bundle file", file=file)
        doc = load_yaml_file(file)
    except FleetError as err:
        return None, err.problems
    if doc.data is None:
        return OptionSource(doc, (), {}), []
    if not isinstance(doc.data, dict):
        return None, [Problem("a bundle fleet.yaml must be a mapping", str(file), doc.line_of(()))]
    if doc.data.get("kind") == "Fleet":
        return None, [Problem("'kind: Fleet' is only allowed at the repository root", str(file), 1)]
    _, problems = validate_document(BundleOptions, doc)
    return OptionSource(doc, (), doc.data), problems


def build_bundle(
    *,
    repo_root: Path,
    bundle_dir: Path,
    layers: Sequence[OptionSource],
    explicit_name: str | None = None,
    targets: Sequence[BundleTarget] = (),
    groups: set[str] | None = None,
    remote_hosts: Sequence[str] = (),
) -> Bundle:
    """Merge the layers, check names and paths, hash the content. Raises all problems.

    `remote_hosts` are the hosts kustomize remote references may name (the definition's
    `kustomizeRemoteHosts`); what those references resolve to is part of the content hash.
    A remote that cannot be resolved now is a `TransientError`.
    """
    root = repo_root.resolve()
    rel_path = bundle_dir.relative_to(root).as_posix()
    options_file = bundle_dir / BUNDLE_FILE
    empty: dict[str, Any] = {}
    merged: dict[str, Any] = reduce(deep_merge, (layer.data for layer in layers), empty)
    top_file = layers[-1].doc.file if layers else options_file
    try:
        options = BundleOptions.model_validate(merged)
    except ValueError as err:  # layers were valid alone; a merge clash is still reported
        raise FleetError(f"merged bundle options are invalid: {err}", file=top_file) from None
    bundle = Bundle(
        name=explicit_name or options.name or derive_name(rel_path, bundle_dir.name),
        path=bundle_dir,
        rel_path=rel_path,
        options=options,
        options_file=options_file if options_file.is_file() else None,
        content_hash="",
        renderer=options.renderer,
        targets=tuple(targets),
        sources=tuple(layers),
    )
    problems: list[Problem] = []
    if not re.match(NAME_PATTERN, bundle.name) or len(bundle.name) > 63:
        file, line = bundle.where(("name",))
        problems.append(Problem(f"bundle name '{bundle.name}' is not a DNS-1123 label", file, line))
    _check_customizations(bundle, groups, problems)
    refs = _check_paths(bundle, root, problems, remote_hosts)
    if problems:
        raise FleetError(problems=problems)
    _hash(bundle, root, refs)
    return bundle


def _check_customizations(bundle: Bundle, groups: set[str] | None, out: list[Problem]) -> None:
    for i, custom in enumerate(bundle.options.target_customizations):
        loc: Loc = ("targetCustomizations", i)
        if not has_criterion(custom):
            file, line = bundle.where(loc)
            out.append(
                Problem(
                    f"targetCustomizations[{i}] needs clusterName, clusterSelector, clusterGroup "
                    "or clusterGroupSelector (use clusterSelector: {} for all clusters)",
                    file,
                    line,
                )
            )
        if groups is not None and custom.cluster_group and custom.cluster_group not in groups:
            file, line = bundle.where((*loc, "clusterGroup"))
            out.append(Problem(undefined_group(custom.cluster_group, groups), file, line))


@dataclass
class _Refs:
    values_files: dict[str, Path] = field(default_factory=dict)
    external: dict[str, Path] = field(default_factory=dict)
    kustomize_dirs: list[Path] = field(default_factory=list)
    kustomize_external: list[Path] = field(default_factory=list)
    kustomize_remotes: list[RemoteRef] = field(default_factory=list)


def _check_paths(
    bundle: Bundle, root: Path, out: list[Problem], remote_hosts: Sequence[str] = ()
) -> _Refs:
    """Check every path in base options and customizations; collect hashed inputs."""
    refs = _Refs()
    opts = bundle.options
    parts: list[tuple[Loc, HelmOptions | None, KustomizeOptions | None, YamlOptions | None]] = [
        ((), opts.helm, opts.kustomize, opts.yaml)
    ]
    for i, c in enumerate(opts.target_customizations):
        parts.append((("targetCustomizations", i), c.helm, c.kustomize, c.yaml))

    def check(loc: Loc, raw: str, what: str, kind: str) -> Path | None:
        file, line = bundle.where(loc)
        try:
            real = resolve_inside(root, bundle.path, raw, what=what, file=file, line=line)
        except FleetError as err:
            out.extend(err.problems)
            return None
        ok = real.is_file() if kind == "file" else real.is_dir() if kind == "dir" else real.exists()
        if not ok:
            out.append(Problem(f"{what} '{raw}' not found", file, line))
            return None
        return real

    for loc, helm, kustomize, yaml_opts in parts:
        if helm is not None:
            for j, raw in enumerate(helm.values_files):
                real = check((*loc, "helm", "valuesFiles", j), raw, "values file", "file")
                if real is not None and _values_file_ok(real, out):
                    refs.values_files[raw] = real
            if helm.chart and _is_local_chart(helm):
                real = check((*loc, "helm", "chart"), helm.chart, "chart", "any")
                if real is not None and not real.is_relative_to(bundle.path.resolve()):
                    refs.external[helm.chart] = real
        if kustomize is not None and kustomize.dir:
            real = check((*loc, "kustomize", "dir"), kustomize.dir, "kustomize dir", "dir")
            if real is not None:
                refs.kustomize_dirs.append(real)
            if real is not None and not real.is_relative_to(bundle.path.resolve()):
                refs.external[kustomize.dir] = real
        if yaml_opts is not None:
            for j, name in enumerate(yaml_opts.overlays):
                check((*loc, "yaml", "overlays", j), f"overlays/{name}", "overlay", "dir")
    starts = [bundle.path, *refs.kustomize_dirs]
    refs.kustomize_external = external_kustomize_refs(
        starts, bundle.path, root, out, remote_hosts=remote_hosts, remotes=refs.kustomize_remotes
    )
    return refs


def _values_file_ok(path: Path, out: list[Problem]) -> bool:
    try:
        doc = load_yaml_file(path)
    except FleetError as err:
        out.extend(err.problems)
        return False
    if doc.data is not None and not isinstance(doc.data, dict):
        out.append(Problem("a values file must be a mapping", str(path), doc.line_of(())))
        return False
    return True


def _is_local_chart(helm: HelmOptions) -> bool:
    """A chart is a local path unless it comes from a repo, OCI or a go-getter URL."""
    chart = helm.chart or ""
    if helm.repo:
        return False
    return not ("://" in chart or chart.startswith(("oci:", "git::", "git@", "http:", "https:")))


def _hash(bundle: Bundle, root: Path, refs: _Refs) -> None:
    excluded = {real for real in refs.values_files.values()}
    files = [(rel, real) for rel, real in walk_files(bundle.path, root) if real not in excluded]
    content = hash_files(files)
    if refs.kustomize_external:  # shared kustomize bases outside the bundle directory
        parts = [content]
        for real in refs.kustomize_external:
            parts.append(f"{real.relative_to(root).as_posix()}={hash_path(real, root)}")
        content = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    if refs.kustomize_remotes:  # what each allowed remote reference is right now
        pins = sorted(_pins(refs.kustomize_remotes))
        content = hashlib.sha256("\n".join([content, *pins]).encode()).hexdigest()
    bundle.content_hash = content
    hashes: dict[str, str] = {}
    templated: set[str] = set()
    for raw, real in refs.values_files.items():
        hashes[raw] = hash_path(real, root)
        if "${" in real.read_text(encoding="utf-8"):
            templated.add(raw)
    for raw, real in refs.external.items():
        hashes[raw] = hash_path(real, root)
    bundle.input_hashes = hashes
    bundle.templated_inputs = frozenset(templated)


def _pins(remotes: Sequence[RemoteRef]) -> list[str]:
    """`pin` of every remote; all failures at once, transient if any of them is."""
    pins: list[str] = []
    problems: list[Problem] = []
    transient = False
    for remote in remotes:
        try:
            pins.append(pin(remote))
        except FleetError as err:
            transient = transient or isinstance(err, TransientError)
            for problem in err.problems:
                problems.append(Problem(problem.message, remote.file, remote.line))
    if problems:
        raise (TransientError if transient else FleetError)(problems=problems)
    return pins


def _has(data: Any, loc: Loc) -> bool:
    for part in loc:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return False
        elif not isinstance(data, Mapping) or part not in data:
            return False
        data = data[part]
    return True
