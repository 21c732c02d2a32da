"""Built-in renderer `helm`: `helm template`, run by fleet (`fleet.plugin.run_tool`).

pyhelm3 runs helm through a shell without a timeout; fleet runs the binary itself, without
a shell, in its own process group, killed whole after `FLEET_RENDER_TIMEOUT` seconds (a hung
chart server must not block the load of a commit).

Choices, where Rancher Fleet leaves room:
- chart source: no `helm.chart` -> the bundle directory itself (it has a Chart.yaml);
  `oci://...` -> that reference; `helm.repo` set -> `chart` is a chart name in that
  repository; a URL -> that archive; otherwise a local path (directory or .tgz) resolved
  inside the repository. `helm.version` (a version or semver range) goes to `--version` for
  remote charts and is ignored for local ones, as Helm itself does.
- values files containing `${ }` are templated per cluster like `helm.values` (see
  `fleet.plugin.render_values`; off with `helm.disablePreProcess`); `helm.values` arrive templated.
- values: `helm.valuesFiles` in order, then `helm.values` on top (Helm's `-f` then `--set`
  order; targetCustomization values, already merged into `values`, win over the base
  files). Rancher Fleet merges the files over inline values of the same level - write a key
  in one place only if you rely on that. Values reach `helm template` as JSON on stdin.
- release name: `helm.releaseName`, else the bundle name made DNS-safe; names longer than
  Helm's 53 characters keep 44 characters plus a hash, so they stay unique.
- namespace: `namespace`, else `defaultNamespace`, else "default" (`--namespace`).
- `--kube-version` is the cluster's Kubernetes version when known, so a chart's own
  `kubeVersion:` constraint and `.Capabilities.KubeVersion` see the real cluster.
- CRDs from `crds/` are included; test hooks (`helm.sh/hook: test`) are skipped; other hooks
  are rendered as plain objects (fleet applies them; there is no release mode).
- helm's executable: `$FLEET_HELM`, else `helm` on PATH, else `helm` next to the Python
  interpreter (where `make testbin` links it; see `fleet.plugin.find_tool`).
- `oci://` charts: when the definition's `registries` has an entry for the chart's host
  with a `credential`, helm gets that credential in a registry config file written for
  this run only (`--registry-config`, a 0600 file in a private temporary directory,
  removed afterwards), never on its command line. A version range (`helm.version:
  ">=1.0 <2"`) was resolved when the commit was targeted (`request.chart_version`: a
  version and its manifest digest, both in the deployment id), and helm pulls exactly
  those bytes (`oci://...@sha256:...` plus `--version`); a chart from a `helm.repo`
  index is pinned the same way (the version and the archive's sha256 the index gave):
  fleet runs `helm pull` of exactly that version, refuses an archive whose sha256 is not
  the pinned one, and renders the archive; without a pin (`fleet render` of a bundle
  directory) helm resolves the range itself.
- no value from Git becomes a flag: chart, repo, version, releaseName and the namespaces
  are refused when they start with `-` (by the options model, with file:line, and again
  here), every flag is passed as `--flag=value`, and `--` ends the flags before the release
  name and the chart.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleet.plugin import (
    BundleOptions,
    FleetError,
    HelmOptions,
    Manifest,
    RendererRegistry,
    RenderRequest,
    TemplateError,
    Tool,
    ToolNotConfigured,
    TransientError,
    UrlRefused,
    build_context,
    check_url,
    deep_merge,
    docker_config,
    find_tool,
    has_template,
    hookimpl,
    load_manifests,
    parse_reference,
    parse_yaml_documents,
    registry_credential,
    render_values,
    run_tool,
)

PLUGIN_VERSION = "1"
RELEASE_NAME_MAX = 53


def helm_tool() -> Tool:
    """The helm binary and where it was found (see the module doc for the order)."""
    try:
        found = find_tool("helm", variable="FLEET_HELM")
    except ToolNotConfigured as err:
        raise FleetError(f"helm not found: {err}") from None
    if found is None:
        raise FleetError("helm not found on PATH (set FLEET_HELM)")
    return found


def helm_executable() -> str:
    """Path of the helm binary fleet runs."""
    return helm_tool().path


@functools.lru_cache(maxsize=8)
def _helm_version(executable: str) -> str:
    what = f"{executable} version"
    done = run_tool([executable, "version", "--template={{ .Version }}"], what=what)
    version = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0 or not version:
        raise FleetError(f"cannot run {what}: {_helm_message(done.stderr.decode())}")
    return version if version.startswith("v") else f"v{version}"


class HelmRenderer:
    name = "helm"

    @property
    def version(self) -> str:
        return f"helm {_helm_version(helm_executable())} fleet-helm {PLUGIN_VERSION}"

    def describe(self) -> str:
        try:
            tool = helm_tool()
            return f"helm template ({tool.path} {tool.source}, {self.version})"
        except FleetError as err:
            return f"unavailable: {err}"

    def cache_context(self, request: RenderRequest) -> str:
        """The cluster, when a values file is templated per cluster (part of the cache key)."""
        if not _templated_values_files(request):
            return ""
        return json.dumps(_template_context(request), sort_keys=True)

    def render(self, request: RenderRequest) -> list[Manifest]:
        options = request.options
        helm = options.helm or HelmOptions()
        chart_ref, display, remote = _chart_source(request, helm)
        if remote:
            _check_chart_host(request, helm.repo or chart_ref)
        release = release_name(helm.release_name or request.name)
        namespace = options.namespace or options.default_namespace or "default"
        flags = ["--include-crds", "--skip-tests", "--values=-", f"--namespace={namespace}"]
        pin_key = f"{helm.repo.rstrip('/')}/{chart_ref}" if helm.repo else chart_ref
        pinned = request.chart_version(pin_key, helm.version) if remote else None
        stack = contextlib.ExitStack()
        if pinned is not None and helm.repo:  # resolved from the index when the commit was
            version, digest = pinned  # targeted: pull that version, check its bytes
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fleet-helm-")))
            try:
                chart_ref = _pull_verified(request, helm, chart_ref, version, digest, workdir)
            except BaseException:
                stack.close()
                raise
        elif pinned is not None:  # OCI: every cluster pulls exactly these bytes
            version, digest = pinned
            flags.append(f"--version={version}")
            chart_ref = f"{chart_ref}@{digest}"
        elif remote:
            if helm.repo:
                flags.append(f"--repo={helm.repo}")
            if helm.version:
                flags.append(f"--version={helm.version}")
        if request.cluster.kube_version:
            flags.append(f"--kube-version={request.cluster.kube_version}")
        if helm.skip_schema_validation:
            flags.append("--skip-schema-validation")
        for what, value in (("release name", release), ("chart", chart_ref)):
            _refuse_flag(what, value, request)
        values = json.dumps(merged_values(request, helm)).encode()
        what = f"helm template of bundle {request.name!r} (chart {display})"
        with stack, _registry_config(request, chart_ref) as config_flags:
            done = run_tool(
                [helm_executable(), "template", *flags, *config_flags, "--", release, chart_ref],
                what=what,
                stdin=values,
                file=request.options_file,
            )
        if done.returncode != 0:
            message = _helm_message(done.stderr.decode(errors="replace"))
            # a chart server that cannot be reached may answer later: never remembered
            failed = TransientError if remote and _FETCH_FAILED.search(message) else FleetError
            raise failed(
                f"helm template failed for chart {display}: {message}", file=request.options_file
            )
        return load_manifests(done.stdout.decode(errors="replace"), file=f"helm template {display}")


def _pull_verified(
    request: RenderRequest, helm: HelmOptions, chart: str, version: str, digest: str, into: Path
) -> str:
    """`helm pull` of `chart` at exactly `version` from `helm.repo` into `into`; the
    archive's path, once its sha256 is the pinned `digest` (from the repository's index
    when the commit was targeted). Another archive under the same version (published
    again) is refused: the commit renders what it was pinned to, or nothing."""
    display = f"{helm.repo}/{chart}@{version}"
    _refuse_flag("chart", chart, request)
    done = run_tool(
        [helm_executable(), "pull", f"--repo={helm.repo}", f"--version={version}",
         f"--destination={into}", "--", chart],
        what=f"helm pull of chart {display}",
        file=request.options_file,
    )  # fmt: skip
    if done.returncode != 0:
        message = _helm_message(done.stderr.decode(errors="replace"))
        failed = TransientError if _FETCH_FAILED.search(message) else FleetError
        raise failed(f"helm pull failed for chart {display}: {message}", file=request.options_file)
    archives = sorted(into.glob("*.tgz"))
    if len(archives) != 1:
        raise FleetError(f"helm pull of chart {display} gave no archive", file=request.options_file)
    found = "sha256:" + hashlib.sha256(archives[0].read_bytes()).hexdigest()
    if found != digest:
        raise FleetError(
            f"chart {display} is not the archive this commit was pinned to (its sha256 is "
            f"{found}, the index said {digest} when the commit was loaded): the version was "
            "published again; a new commit pins what the repository has now",
            file=request.options_file,
        )
    return str(archives[0])


@contextlib.contextmanager
def _registry_config(request: RenderRequest, chart: str) -> Iterator[list[str]]:
    """`--registry-config=FILE` for an `oci://` chart whose registry has a credential in
    the definition's `registries`: a Docker auth file with that one credential, in a
    private temporary directory that is removed when helm is done. The credential is never
    on helm's command line (visible to every user in `ps`) or in a log; without one, helm
    uses its own registry config (`helm registry login` by the operator) or anonymous pulls.
    """
    if not chart.startswith("oci://"):
        yield []
        return
    host = parse_reference(chart).host
    credential = registry_credential(request.registries, host) if host else None
    if credential is None:
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="fleet-helm-registry-") as tmp:
        path = Path(tmp) / "config.json"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(docker_config(host, credential))
        yield [f"--registry-config={path}"]


def _check_chart_host(request: RenderRequest, where: str) -> None:
    """A remote chart's host through fleet's outgoing-request check (FLEET_ALLOWED_HOSTS,
    never link-local or fleet's Redis) before helm is started; helm's own fetches (the
    archive URL an index names, redirects) are helm's, which is why the check is here."""
    url = "https://" + where.removeprefix("oci://") if where.startswith("oci://") else where
    try:
        check_url(url)
    except UrlRefused as err:
        raise FleetError(f"helm chart {_host_of(url)}: {err}", file=request.options_file) from None
    except OSError:
        return  # helm reports a name that does not resolve, as a transient failure


def _host_of(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[2]


def _refuse_flag(what: str, value: str, request: RenderRequest) -> None:
    """A value from Git that helm would read as a flag (the options model refuses these
    first, with file:line; this is the last line of defence for a request built in code)."""
    if value.startswith("-"):
        raise FleetError(
            f"helm {what} {value!r} starts with '-' and would be read as a flag",
            file=request.options_file,
        )


def _chart_source(request: RenderRequest, helm: HelmOptions) -> tuple[str, str, bool]:
    """(chart reference for helm, name for messages, is it remote?)."""
    chart = helm.chart
    if not chart:
        if not (request.bundle_dir / "Chart.yaml").is_file():
            raise FleetError(
                "helm: no chart (set helm.chart or put a Chart.yaml in the bundle)",
                file=request.options_file,
            )
        path = request.resolve(".", what="chart")
        return str(path), request.display(path), False
    if helm.repo or "://" in chart:
        where = f"{helm.repo.rstrip('/')}/{chart}" if helm.repo else chart
        return chart, where + (f"@{helm.version}" if helm.version else ""), True
    path = request.resolve(chart, what="helm.chart")
    if not path.exists():
        raise FleetError(f"helm.chart {chart!r} not found", file=request.options_file)
    return str(path), request.display(path), False


def merged_values(request: RenderRequest, helm: HelmOptions) -> dict[str, Any]:
    """valuesFiles in order, then `values` on top (deep merge: maps merge, rest replaces)."""
    merged: dict[str, Any] = {}
    for relpath in helm.values_files:
        path = request.resolve(relpath, what="values file")
        if not path.is_file():
            raise FleetError(f"values file {relpath!r} not found", file=request.options_file)
        display = request.display(path)
        text = request.read_text(relpath, what="values file")
        docs = [d for d in parse_yaml_documents(text, file=display) if d is not None]
        data = docs[0] if docs else {}
        if not isinstance(data, dict):
            raise FleetError("values file is not a mapping", file=display)
        if not helm.disable_pre_process and has_template(data):
            try:
                data = render_values(data, _template_context(request))
            except TemplateError as err:
                where = ".".join(str(p) for p in err.path)
                raise FleetError(
                    f"template error at {where}: {err.message}", file=display
                ) from None
        merged = deep_merge(merged, data)
    return deep_merge(merged, helm.values)


def _template_context(request: RenderRequest) -> dict[str, Any]:
    cluster = request.cluster
    annotations = getattr(cluster, "annotations", None) or {}
    return build_context(cluster.name, cluster.labels, annotations)


def _templated_values_files(request: RenderRequest) -> bool:
    helm = request.options.helm
    if helm is None or helm.disable_pre_process:
        return False
    for relpath in helm.values_files:
        path = request.resolve(relpath, what="values file")
        if path.is_file() and "${" in request.read_text(relpath, what="values file"):
            return True
    return False


def release_name(name: str) -> str:
    """A valid Helm release name (DNS-1123, at most 53 characters) for a bundle name."""
    safe = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "release"
    if len(safe) <= RELEASE_NAME_MAX:
        return safe
    digest = hashlib.sha256(safe.encode()).hexdigest()[:8]
    return f"{safe[:44].rstrip('-')}-{digest}"


# helm's words for "the chart could not be downloaded" (as opposed to "it does not exist")
_FETCH_FAILED = re.compile(
    r"cannot be reached|dial tcp|connection refused|no such host|timeout|"
    r"connection reset|TLS handshake|\b(429|50[0-9]) "
)


def _helm_message(stderr: str) -> str:
    """helm's error as one line: the `Error:` line(s), without the prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("Error:").strip() for line in lines if line.startswith("Error:")]
    return "; ".join(errors or lines[-1:]) or "unknown error"


@hookimpl
def fleet_register_renderers(registry: RendererRegistry) -> None:
    registry.add(HelmRenderer())


@hookimpl
def fleet_detect_renderer(bundle_dir: Path, options: BundleOptions) -> str | None:
    """`helm` for a bundle with `helm.chart` (or `helm.repo`) or a Chart.yaml at its root."""
    if options.helm is not None and (options.helm.chart or options.helm.repo):
        return "helm"
    return "helm" if (bundle_dir / "Chart.yaml").is_file() else None
