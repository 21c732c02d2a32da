"""Flux's source-controller and kustomize-controller, out of cluster, for bench_flux.py.

The binaries and CRDs come from `make testbin-flux` (tests/testbin/build.sh flux: pinned
wrapper modules, cached like the other test binaries; the CRDs copied from the module's
config/crd/bases beside each binary). The controllers run as plain processes with the
local cluster's admin kubeconfig (in $KUBECONFIG: these builds have no --kubeconfig flag),
leader election off, metrics/health/storage on free loopback ports, and
source-controller's artifact server advertised on loopback so kustomize-controller can
fetch its tarballs. `Variant` says which concurrency flags a run
uses (README: "Flux, configured how").
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import localfleet
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes import watch as kwatch

NAMESPACE = "flux-system"
SOURCE = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
KUSTOMIZE = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
ROUND_LABEL = "bench.fleet-gitops.io/round"
CONTROLLERS = ("flux-source-controller", "flux-kustomize-controller")


class FluxError(Exception):
    pass


@dataclass(frozen=True)
class Variant:
    """How one Flux run is configured: kustomize-controller's --concurrent and client QPS."""

    label: str
    kustomize_concurrent: int = 4  # kustomize-controller's default
    source_concurrent: int = 2  # source-controller's default
    kube_api_qps: int = 50  # Flux's defaults (fluxcd/pkg/runtime/client)
    kube_api_burst: int = 300

    def kustomize_args(self) -> list[str]:
        return [
            f"--concurrent={self.kustomize_concurrent}",
            f"--kube-api-qps={self.kube_api_qps}",
            f"--kube-api-burst={self.kube_api_burst}",
        ]

    def source_args(self) -> list[str]:
        return [
            f"--concurrent={self.source_concurrent}",
            f"--kube-api-qps={self.kube_api_qps}",
            f"--kube-api-burst={self.kube_api_burst}",
        ]


def binary(name: str) -> Path:
    path = Path(localfleet.BIN) / name
    if not path.exists():
        raise FluxError(f"{path} missing: run `make testbin-flux` first")
    return path


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a running process (its reaped children too, e.g.
    fleet's git fetches), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    ticks = sum(int(fields[index]) for index in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Controllers:
    """Both controllers of one `Variant`, started and stopped by pid."""

    kubeconfig: Path
    workdir: Path
    variant: Variant
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, timeout: float = 60) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        storage_addr = f"127.0.0.1:{localfleet.free_port()}"
        common = ["--enable-leader-election=false", "--log-level=info", "--log-encoding=json"]
        argv = {
            "flux-source-controller": [
                *self.variant.source_args(),
                f"--storage-path={storage}",
                f"--storage-addr={storage_addr}",
                f"--storage-adv-addr={storage_addr}",
            ],
            "flux-kustomize-controller": self.variant.kustomize_args(),
        }
        health: dict[str, int] = {}
        for name in CONTROLLERS:
            health[name] = localfleet.free_port()
            log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - child keeps it
            self.procs[name] = subprocess.Popen(
                [
                    str(binary(name)),
                    f"--metrics-addr=127.0.0.1:{localfleet.free_port()}",
                    f"--health-addr=127.0.0.1:{health[name]}",
                    *common,
                    *argv[name],
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # (no --kubeconfig flag in these builds: controller-runtime reads $KUBECONFIG)
                env={
                    **os.environ,
                    "KUBECONFIG": str(self.kubeconfig),
                    "RUNTIME_NAMESPACE": NAMESPACE,
                },
            )
            log.close()
        deadline = time.monotonic() + timeout
        for name, port in health.items():
            while not _ready(port):
                if self.procs[name].poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise FluxError(f"{name} not ready (log: {self.workdir / name}.log)")
                time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def kubectl(kubeconfig: Path, *args: str) -> str:
    """Run the test bed's kubectl; a failure is one line with its stderr."""
    result = subprocess.run(
        [str(binary("kubectl")), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise FluxError(f"kubectl {' '.join(args[:2])}: {result.stderr.strip()}")
    return result.stdout


def install_crds(kubeconfig: Path) -> None:
    """Server-side apply both controllers' CRDs (the ones the pinned module ships)."""
    for name in CONTROLLERS:
        crds = Path(localfleet.BIN) / f"{name}.crds"
        if not crds.is_dir():
            raise FluxError(f"{crds} missing: run `make testbin-flux` first")
        kubectl(kubeconfig, "apply", "--server-side", "-f", str(crds.resolve()))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


class FluxApi:
    """The Flux objects of the benchmark, through the Kubernetes API."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = kconfig.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        self.custom = kclient.CustomObjectsApi(self.client)
        core = kclient.CoreV1Api(self.client)
        try:
            core.create_namespace(
                kclient.V1Namespace(metadata=kclient.V1ObjectMeta(name=NAMESPACE))
            )
        except kclient.ApiException as err:
            if err.status != 409:
                raise

    def close(self) -> None:
        self.client.close()

    def create_round(
        self, name: str, url: str, paths: list[str], interval: str, timeout: str = "5m"
    ) -> None:
        """One GitRepository `name` and a Kustomization per path (wait: true, prune: true)."""
        labels = {ROUND_LABEL: name}
        self._create(
            SOURCE,
            "GitRepository",
            name,
            labels,
            {"interval": interval, "url": url, "ref": {"branch": "main"}, "timeout": "60s"},
        )
        for index, path in enumerate(paths):
            spec = {
                "interval": interval,
                "path": f"./{path}",
                "prune": True,
                "wait": True,
                "timeout": timeout,
                "sourceRef": {"kind": "GitRepository", "name": name},
            }
            self._create(KUSTOMIZE, "Kustomization", f"{name}-{index}", labels, spec)

    def _create(
        self,
        gvr: tuple[str, str, str],
        kind: str,
        name: str,
        labels: dict[str, str],
        spec: dict[str, Any],
    ) -> None:
        group, version, plural = gvr
        body = {
            "apiVersion": f"{group}/{version}",
            "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(group, version, NAMESPACE, plural, body)

    def wait_ready(self, name: str, count: int, sha: str, timeout: float) -> None:
        """Until every Kustomization of round `name` is Ready=True at commit `sha` (its
        current generation observed): a list, then a watch from its resourceVersion (no
        polling load on the API server); a watch that ends or errs means a new list."""
        group, version, plural = KUSTOMIZE
        selector = f"{ROUND_LABEL}={name}"
        deadline = time.monotonic() + timeout
        while True:
            listed = cast(
                "dict[str, Any]",
                self.custom.list_namespaced_custom_object(
                    group, version, NAMESPACE, plural, label_selector=selector
                ),
            )
            ready = {i["metadata"]["name"] for i in listed["items"] if _is_ready(i, sha)}
            left = deadline - time.monotonic()
            if len(ready) >= count:
                return
            if left <= 0:
                raise FluxError(f"{name}: {len(ready)}/{count} Kustomizations Ready in {timeout}s")
            stream = kwatch.Watch().stream(  # type: ignore[no-untyped-call]
                self.custom.list_namespaced_custom_object,
                group,
                version,
                NAMESPACE,
                plural,
                label_selector=selector,
                resource_version=listed["metadata"]["resourceVersion"],
                timeout_seconds=max(1, min(30, int(left))),
            )
            event: dict[str, Any]
            for event in stream:
                if event["type"] == "ERROR":
                    break
                item = event["object"]
                if _is_ready(item, sha):
                    ready.add(item["metadata"]["name"])
                else:
                    ready.discard(item["metadata"]["name"])
                if len(ready) >= count:
                    return

    def suspend_round(self, name: str, count: int) -> None:
        """Suspend round `name` so later rounds run on otherwise idle controllers."""
        body = {"spec": {"suspend": True}}
        group, version, plural = SOURCE
        self.custom.patch_namespaced_custom_object(group, version, NAMESPACE, plural, name, body)
        group, version, plural = KUSTOMIZE
        for index in range(count):
            self.custom.patch_namespaced_custom_object(
                group, version, NAMESPACE, plural, f"{name}-{index}", body
            )


def _is_ready(item: dict[str, Any], sha: str) -> bool:
    status = item.get("status") or {}
    if status.get("observedGeneration") != item["metadata"].get("generation"):
        return False
    if not str(status.get("lastAppliedRevision", "")).endswith(sha):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
