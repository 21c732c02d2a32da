"""Built-in renderer `kustomize`: `kustomize build DIR`, or `kubectl kustomize DIR`.

- the binary: `$FLEET_KUSTOMIZE` (a kustomize binary, or kubectl when its name starts with
  "kubectl"), else `kustomize` on PATH or next to the Python interpreter (where `make
  testbin` links it), else `kubectl` there; `fleet plugins` says which, and from where.
- the directory: `kustomize.dir` (relative to the bundle, resolved inside the repository),
  default the bundle directory; it must hold a kustomization file.
- kustomize's default load restrictor (LoadRestrictionsRootOnly) is kept: a kustomization
  cannot read files outside its own root. Exec/container plugins and `helmCharts` stay
  disabled (no `--enable-alpha-plugins`, no `--enable-helm`): a repository cannot make a
  worker run programs.
- as a post-renderer (`fleet_post_renderer` below: over any renderer's output when
  `kustomize.dir` is set, over a Helm chart's when the bundle root holds a kustomization;
  Rancher Fleet's behaviour), `request.input_manifests` is set: the bundle is copied to a
  temporary directory, the previous stage's output is written there as
  `fleet-manifests.yaml` and put first in the kustomization's `resources`, and that copy
  is built. Relative symlinks that leave the bundle do not survive the copy.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from fleet.plugin import (
    KUSTOMIZATION_FILES,
    BundleOptions,
    FleetError,
    Manifest,
    RendererRegistry,
    RenderRequest,
    Tool,
    ToolNotConfigured,
    dump_manifests,
    find_tool,
    hookimpl,
    load_manifests,
    parse_yaml_documents,
    run_tool,
)

PLUGIN_VERSION = "1"
MANIFESTS_FILE = "fleet-manifests.yaml"


def kustomize_tool() -> Tool:
    """The kustomize (or kubectl) binary and where it was found (see the module doc)."""
    try:
        found = find_tool(("kustomize", "kubectl"), variable="FLEET_KUSTOMIZE")
    except ToolNotConfigured as err:
        raise FleetError(
            f"kustomize not found: {err.variable}={err.value} is not executable"
        ) from None
    if found is None:
        raise FleetError("kustomize not found on PATH, nor kubectl (set FLEET_KUSTOMIZE)")
    return found


@functools.lru_cache(maxsize=8)
def _command_for(exe: str) -> tuple[tuple[str, ...], str]:
    if Path(exe).name.startswith("kubectl"):
        return (exe, "kustomize"), _kubectl_version(exe)
    return (exe, "build"), _kustomize_version(exe)


def kustomize_command() -> tuple[tuple[str, ...], str]:
    """(argv prefix, kustomize version) for the binary fleet will run."""
    return _command_for(kustomize_tool().path)


def _kustomize_version(exe: str) -> str:
    output = _run([exe, "version"], what=f"{exe} version")
    text = output.strip()
    if "kustomize/" in text:  # v4: {Version:kustomize/v4.5.7 GitCommit:...}
        text = text.split("kustomize/", 1)[1]
    return text.split()[0] if text else "unknown"


def _kubectl_version(exe: str) -> str:
    output = _run([exe, "version", "--client", "-o", "json"], what=f"{exe} version")
    try:
        return str(json.loads(output).get("kustomizeVersion", "unknown"))
    except json.JSONDecodeError:
        return "unknown"


def _run(argv: list[str], *, what: str, file: Path | None = None) -> str:
    """Run kustomize (or kubectl) with fleet's tool runner: no shell, its own process
    group, killed after `FLEET_RENDER_TIMEOUT` seconds (`ToolTimeout` says so)."""
    done = run_tool(argv, what=what, file=file)
    if done.returncode != 0:
        message = f"{what} failed: {_one_line(done.stderr.decode(errors='replace'))}"
        raise FleetError(message, file=file)
    return done.stdout.decode(errors="replace")


def _one_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("Error:").strip() for line in lines if line.startswith("Error:")]
    return "; ".join(errors or lines[-1:]) or "unknown error"


class KustomizeRenderer:
    name = "kustomize"

    @property
    def version(self) -> str:
        argv, version = kustomize_command()
        tool = "kubectl-kustomize" if argv[1] == "kustomize" else "kustomize"
        return f"{tool} {version} fleet-kustomize {PLUGIN_VERSION}"

    def describe(self) -> str:
        try:
            found = kustomize_tool()
            argv, version = kustomize_command()
        except FleetError as err:
            return f"unavailable: {err}"
        tool = "kubectl kustomize" if argv[1] == "kustomize" else "kustomize build"
        return f"{tool} ({argv[0]} {found.source}, kustomize {version})"

    def check(self, request: RenderRequest) -> None:
        """Refuse a missing kustomization before any stage runs (e.g. before a Helm chart)."""
        _kustomization(request)

    def render(self, request: RenderRequest) -> list[Manifest]:
        kdir, kfile = _kustomization(request)
        display = request.display(kdir)
        argv, _ = kustomize_command()
        what = f"kustomize build {display} (bundle {request.name!r})"
        file = Path(request.display(kfile))  # kustomize's errors are about what it says
        if request.input_manifests is None:
            output = _run([*argv, "--", str(kdir)], what=what, file=file)
            return load_manifests(output, file=f"kustomize build {display}")
        with tempfile.TemporaryDirectory(prefix="fleet-kustomize-") as tmp:
            build_dir = _staged_copy(request, kdir, kfile, Path(tmp))
            output = _run([*argv, "--", str(build_dir)], what=what, file=file)
        return load_manifests(output, file=f"kustomize build {display}")


def _kustomization(request: RenderRequest) -> tuple[Path, Path]:
    """(kustomize dir, its kustomization file) inside the repository, or FleetError."""
    kdir_rel = (request.options.kustomize.dir if request.options.kustomize else None) or "."
    kdir = request.resolve(kdir_rel, what="kustomize.dir")
    kfile = next((kdir / f for f in KUSTOMIZATION_FILES if (kdir / f).is_file()), None)
    if kfile is None:
        raise FleetError(
            f"kustomize.dir {kdir_rel!r} has no kustomization.yaml", file=request.options_file
        )
    return kdir, kfile


def _staged_copy(request: RenderRequest, kdir: Path, kfile: Path, tmp: Path) -> Path:
    """Copy of the bundle with the previous stage's output added to the kustomization."""
    bundle = request.resolve(".", what="bundle directory")
    source, rel = (
        (bundle, kdir.relative_to(bundle)) if kdir.is_relative_to(bundle) else (kdir, Path("."))
    )
    copy_root = tmp / "bundle"
    shutil.copytree(source, copy_root, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    build_dir = copy_root / rel
    (build_dir / MANIFESTS_FILE).write_text(dump_manifests(request.input_manifests or ()))
    text = request.read_text(
        os.path.relpath(kfile, request.resolve(".", what="bundle directory")), what="kustomization"
    )
    docs = parse_yaml_documents(text, file=request.display(kfile))
    kustomization = docs[0] if docs and isinstance(docs[0], dict) else {}
    resources = list(kustomization.get("resources") or [])
    if MANIFESTS_FILE not in resources:
        kustomization["resources"] = [MANIFESTS_FILE, *resources]
    (build_dir / kfile.name).write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return build_dir


@hookimpl
def fleet_register_renderers(registry: RendererRegistry) -> None:
    registry.add(KustomizeRenderer())


@hookimpl
def fleet_detect_renderer(bundle_dir: Path, options: BundleOptions) -> str | None:
    """`kustomize` for a bundle with `kustomize.dir` or a kustomization file at its root."""
    if options.kustomize is not None and options.kustomize.dir:
        return "kustomize"
    if any((bundle_dir / name).is_file() for name in KUSTOMIZATION_FILES):
        return "kustomize"
    return None


@hookimpl
def fleet_post_renderer(renderer: str, bundle_dir: Path, options: BundleOptions) -> str | None:
    """`kustomize` over another renderer's output (Rancher Fleet's helm + kustomize).

    With `kustomize.dir` set, any renderer but kustomize itself is post-rendered (its
    kustomization must exist: `check` says so before the first stage runs). Without it, a
    `helm` bundle is post-rendered when its root directory holds a kustomization file
    (Rancher's default `kustomize.dir` is the bundle root).
    """
    if renderer == "kustomize":
        return None
    if options.kustomize is not None and options.kustomize.dir:
        return "kustomize"
    if renderer == "helm" and any((bundle_dir / f).is_file() for f in KUSTOMIZATION_FILES):
        return "kustomize"
    return None
