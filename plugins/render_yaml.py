"""Built-in renderer `yaml`: the bundle's own manifest files, with Rancher Fleet overlays.

Which files are manifests (Rancher Fleet's rules, plus two safety choices):
- every `*.yaml`, `*.yml` and `*.json` file under the bundle directory, recursively, in
  path order; documents without `apiVersion` and `kind` (values files, ...) are skipped;
- not `fleet.yaml`/`fleet.yml`, not kustomization files, not the `overlays/` directory at
  the bundle root, and not subdirectories holding their own `fleet.yaml` (another bundle) or
  `Chart.yaml` (a chart, rendered by helm);
- not hidden files or directories (`.github/`, ...) - fleet's choice: CI files are not
  manifests. Rancher Fleet's special `templates/` handling (raw files rendered by Helm) is
  not supported: files there are plain manifests.

`yaml.overlays` (applied in the order listed): for overlay NAME, each file
`overlays/NAME/<path>` replaces (or adds) `<path>`, then each
`overlays/NAME/<dir>/<name>_patch.<ext>` patches `<dir>/<name>.<ext>` ("_patch." is replaced by
"."; when that file does not exist, the one file with the same name and another of the
suffixes .yaml/.yml/.json is patched, so `x_patch.json` can patch `x.yaml`). Patches are
JSON patch, JSON merge patch or strategic merge patch, chosen from the content as Rancher
Fleet does (see `fleet.render.patching`). A patch for a file with several
documents applies to the document whose kind and metadata.name match the patch. Unlike
Rancher Fleet, an overlay name with no `overlays/NAME` directory is an error, not a no-op:
a typo there would silently deploy the base configuration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from fleet.plugin import (
    FleetError,
    Manifest,
    PatchError,
    RendererRegistry,
    RenderRequest,
    apply_patch,
    hookimpl,
    load_manifests,
    parse_yaml_documents,
)

PLUGIN_VERSION = "1"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
SKIPPED_FILES = frozenset(
    {"fleet.yaml", "fleet.yml", "kustomization.yaml", "kustomization.yml", "Kustomization"}
)
OVERLAYS = "overlays"


class YamlRenderer:
    name = "yaml"
    version = f"fleet-yaml {PLUGIN_VERSION}"

    def describe(self) -> str:
        return "raw *.yaml/*.yml/*.json manifests with yaml.overlays"

    def render(self, request: RenderRequest) -> list[Manifest]:
        root = request.resolve(".", what="bundle directory")
        files = {
            rel: (request.read_text(rel, what="manifest file", file=request.display(path)), path)
            for rel, path in _files(root)
        }
        overlays = request.options.yaml.overlays if request.options.yaml else []
        for overlay in overlays:
            _apply_overlay(request, root, overlay, files)
        manifests: list[Manifest] = []
        for rel in sorted(files):
            text, source = files[rel]
            manifests.extend(load_manifests(text, file=request.display(source)))
        return manifests


def _files(root: Path) -> list[tuple[str, Path]]:
    """(posix path relative to root, path) of every manifest file, overlays excluded."""
    found: list[tuple[str, Path]] = []
    for current, dirnames, filenames in os.walk(root):
        here = Path(current)
        kept = []
        for dirname in sorted(dirnames):
            sub = here / dirname
            if dirname.startswith(".") or (here == root and dirname == OVERLAYS):
                continue
            if (sub / "fleet.yaml").exists() or (sub / "fleet.yml").exists():
                continue
            if (sub / "Chart.yaml").exists():
                continue
            kept.append(dirname)
        dirnames[:] = kept
        for filename in sorted(filenames):
            if _is_manifest_file(filename):
                path = here / filename
                found.append((path.relative_to(root).as_posix(), path))
    return found


def _is_manifest_file(filename: str) -> bool:
    return (
        filename.endswith(MANIFEST_SUFFIXES)
        and not filename.startswith(".")
        and filename not in SKIPPED_FILES
    )


def _apply_overlay(
    request: RenderRequest, root: Path, overlay: str, files: dict[str, tuple[str, Path]]
) -> None:
    overlay_dir = request.resolve(f"{OVERLAYS}/{overlay}", what="overlay")
    if not overlay_dir.is_dir():
        raise FleetError(
            f"yaml.overlays: overlay {overlay!r} has no directory {OVERLAYS}/{overlay}/ "
            f"in bundle {request.name}",
            file=request.options_file,
        )
    entries = []
    for current, dirnames, filenames in os.walk(overlay_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if _is_manifest_file(filename):
                path = Path(current) / filename
                entries.append((path.relative_to(overlay_dir).as_posix(), path))
    patches = [(rel, path) for rel, path in entries if "_patch." in rel.rsplit("/", 1)[-1]]
    for rel, path in entries:  # replacements first, then patches: deterministic
        if (rel, path) not in patches:
            text = request.read_text(
                os.path.relpath(path, root), what="overlay file", file=request.display(path)
            )
            files[rel] = (text, path)
    for rel, path in patches:
        head, _, name = rel.rpartition("/")
        target = f"{head}/" if head else ""
        target = _patch_target(target + name.replace("_patch.", ".", 1), files)
        if target not in files:
            raise FleetError(f"no file {target} in the bundle to patch", file=request.display(path))
        text, source = files[target]
        patch_text = request.read_text(
            os.path.relpath(path, root), what="overlay patch", file=request.display(path)
        )
        files[target] = (_patched(request, text, source, path, patch_text), source)


def _patch_target(target: str, files: dict[str, tuple[str, Path]]) -> str:
    """`target` itself, else the one file with the same stem and another manifest suffix."""
    if target in files:
        return target
    stem = target.rsplit(".", 1)[0]
    others = [stem + suffix for suffix in MANIFEST_SUFFIXES if stem + suffix in files]
    return others[0] if len(others) == 1 else target


def _patched(
    request: RenderRequest, text: str, source: Path, patch_path: Path, patch_text: str
) -> str:
    where = request.display(patch_path)
    docs = [d for d in parse_yaml_documents(text, file=request.display(source)) if d is not None]
    for patch in parse_yaml_documents(patch_text, file=where):
        if patch is None:
            continue
        index = _target_document(docs, patch, where)
        try:
            docs[index] = apply_patch(docs[index], patch)
        except PatchError as err:
            raise FleetError(str(err), file=where) from None
    return yaml.safe_dump_all(docs, sort_keys=False)


def _target_document(docs: list[Any], patch: Any, where: str) -> int:
    if len(docs) == 1:
        return 0
    if not docs:
        raise FleetError("the file to patch has no documents", file=where)
    if isinstance(patch, dict):
        name = (patch.get("metadata") or {}).get("name")
        for index, doc in enumerate(docs):
            if (
                isinstance(doc, dict)
                and doc.get("kind") == patch.get("kind")
                and (doc.get("metadata") or {}).get("name") == name
            ):
                return index
    raise FleetError(
        "the file to patch has several documents; give kind and metadata.name in the patch "
        "to pick one",
        file=where,
    )


@hookimpl
def fleet_register_renderers(registry: RendererRegistry) -> None:
    registry.add(YamlRenderer())


@hookimpl(trylast=True)
def fleet_detect_renderer(bundle_dir: Path, options: object) -> str | None:
    """The fallback: a bundle nothing else claims is raw YAML."""
    return "yaml"
