"""fleet vs. Flux on the same bundles, one local cluster (a script: figures, no verdict).

Both tools get the same N bundles of plain manifests (manyapps.py: a Namespace, a
Deployment, a headless Service and a ConfigMap each) from the same Git server (`git http-backend`
over smart HTTP, in a process of its own: Flux's source-controller does not speak git://).
Each round is a fresh repository deploying into fresh namespaces; the tools alternate.

- fleet: `fleet sync <url>` (a new process: the CLI a user runs, interpreter start-up
  included), with its default --cluster-concurrency (8) and with --cluster-concurrency=N;
  seconds from the push until it exits 0 (every unit Ready).
- Flux v1.7.3 (fluxpeer.py): source-controller and kustomize-controller out of cluster;
  one GitRepository and N Kustomizations (wait: true, prune: true) created right after the
  push (what a webhook Receiver does: the push is the trigger for both); seconds until all N
  are Ready=True at the pushed commit. Flux's defaults (kustomize-controller
  --concurrent=4) and tuned (--concurrent=N, client QPS/burst raised to 500/1000 so no
  client-side limit throttles it). Flux's controllers are stopped while fleet runs.
- No-op (noop_cpu.py): with N bundles deployed and nothing changing, CPU seconds over a
  window (default 300 s) with a Git poll and a drift pass every --noop-interval: Flux's two
  controllers vs. `fleet serve` + one worker + Redis (and, with --noop-sync-cron, `fleet
  sync` every interval), the API server's CPU beside each.

    python tests/bench/bench_flux.py [--bundles 10,40,100] [--rounds 1]
        [--noop-bundles 100] [--noop-window 300] [--noop-interval 60] [--noop-sync-cron]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "testbin"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))
sys.path.insert(0, str(ROOT))

import fluxpeer  # noqa: E402
import localfleet  # noqa: E402
import manyapps  # noqa: E402
import noop_cpu  # noqa: E402

from tests.support.servers import GitWorkTree, run_git  # noqa: E402

FLEET = "fleet"
FLEET_TUNED = "fleet --cluster-concurrency=N"
FLUX = "Flux"
FLUX_TUNED = "Flux --concurrent=N"
TOOLS = (FLEET, FLUX, FLEET_TUNED, FLUX_TUNED)
WIDTHS = (5, 7, 7, 11, 10, 9, 12)  # the table's columns


def flux_variant(tool: str, bundles: int) -> fluxpeer.Variant:
    if tool == FLUX_TUNED:
        return fluxpeer.Variant(
            tool, kustomize_concurrent=bundles, kube_api_qps=500, kube_api_burst=1000
        )
    return fluxpeer.Variant(tool)


@dataclass
class Bed:
    """The test bed: one local cluster, the Git server, fleet's environment."""

    tmp: Path
    fleet_dir: Path
    git_base: Path
    git: subprocess.Popen[bytes] | None = None
    git_port: int = 0
    flux: fluxpeer.Controllers | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.fleet_dir / f"{manyapps.CLUSTER}.kubeconfig"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.git_port}/{name}.git"

    def start_git(self) -> None:
        self.git_base.mkdir(parents=True, exist_ok=True)
        self.git = subprocess.Popen(
            [sys.executable, "-m", "tests.support.git_http", str(self.git_base)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.git.stdout is not None
        self.git_port = int(self.git.stdout.readline())

    def new_repo(self, name: str) -> GitWorkTree:
        """A bare repository the server serves and a clone pushing to it by path."""
        bare = self.git_base / f"{name}.git"
        run_git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
        work = self.tmp / "work" / name
        run_git("clone", "--quiet", str(bare), str(work))
        run_git("config", "user.email", "bench@fleet.invalid", cwd=work)
        run_git("config", "user.name", "fleet bench", cwd=work)
        run_git("checkout", "--quiet", "-b", "main", cwd=work)
        return GitWorkTree(work, str(bare))

    def fleet_sync(self, name: str, *extra: str) -> tuple[int, float]:
        """`fleet sync` of repository `name` in a new process: (exit code, CPU seconds of it
        and its children, from wait4's rusage)."""
        log = self.tmp / "logs" / f"fleet-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "FLEET_CREDENTIALS_DIR": str(self.fleet_dir),
            "FLEET_CACHE_DIR": str(self.tmp / "fleet-cache"),
        }
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fleet", "sync", self.url(name), "--branch", "main", *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, usage.ru_utime + usage.ru_stime

    def run_flux(self, variant: fluxpeer.Variant) -> None:
        """Flux's controllers of `variant` running (restarted when the variant changes)."""
        if self.flux is not None and self.flux.variant == variant:
            return
        self.stop_flux()
        self.flux = fluxpeer.Controllers(self.kubeconfig, self.tmp / "flux", variant)
        self.flux.start()
        time.sleep(2)  # informer caches synced before the clock starts

    def stop_flux(self) -> None:
        if self.flux is not None:
            self.flux.stop()
            self.flux = None

    def apiserver_cpu(self) -> float:
        state = localfleet.load_state(self.fleet_dir)[manyapps.CLUSTER]
        pids = state["pids"]
        assert isinstance(pids, dict)
        return fluxpeer.cpu_seconds(int(pids["kube-apiserver"]["pid"]))

    def stop(self) -> None:
        self.stop_flux()
        if self.git is not None:
            self.git.terminate()
            self.git.wait(10)
            self.git = None


def raise_pod_capacity(kubeconfig: Path, pods: int) -> None:
    """Every round deploys into fresh namespaces: give the fake node room for all of their
    pods when it has less (localfleet.FAKE_NODE_PODS); scheduling is the test bed's, not a
    tool's."""
    if pods <= localfleet.FAKE_NODE_PODS:
        return
    names = fluxpeer.kubectl(kubeconfig, "get", "nodes", "-o", "name").split()
    patch = {"status": {"capacity": {"pods": str(pods)}, "allocatable": {"pods": str(pods)}}}
    for node in names:
        fluxpeer.kubectl(kubeconfig, "patch", node, "--subresource=status", "--type=merge",
                         "-p", json.dumps(patch))  # fmt: skip


def fleet_round(bed: Bed, name: str, bundles: int, tool: str) -> float:
    work = bed.new_repo(name)
    manyapps.write_repo(work.path, name, bundles)
    pushed = time.perf_counter()
    work.commit_and_push("bundles")
    extra = [f"--cluster-concurrency={bundles}"] if tool == FLEET_TUNED else []
    code, _ = bed.fleet_sync(name, *extra)
    took = time.perf_counter() - pushed
    if code != 0:
        raise RuntimeError(f"fleet sync {name} exited {code} (log: {bed.tmp}/logs)")
    return took


def flux_round(bed: Bed, api: fluxpeer.FluxApi, name: str, bundles: int, tool: str) -> float:
    bed.run_flux(flux_variant(tool, bundles))
    work = bed.new_repo(name)
    manyapps.write_repo(work.path, name, bundles)
    paths = [manyapps.bundle_path(i) for i in range(bundles)]
    pushed = time.perf_counter()
    sha = work.commit_and_push("bundles")
    # interval 60m: nothing but the push drives this round; suspended afterwards
    api.create_round(name, bed.url(name), paths, interval="60m")
    api.wait_ready(name, bundles, sha, timeout=600 + 5 * bundles)
    took = time.perf_counter() - pushed
    api.suspend_round(name, bundles)
    return took


def timed_rounds(
    bed: Bed, api: fluxpeer.FluxApi, sizes: list[int], rounds: int
) -> dict[int, dict[str, list[float]]]:
    results: dict[int, dict[str, list[float]]] = {}
    turn = 0
    for bundles in sizes:
        results[bundles] = {tool: [] for tool in TOOLS}
        for round_no in range(rounds):
            first = turn % len(TOOLS)
            order = TOOLS[first:] + TOOLS[:first]  # who goes first rotates
            turn += 1
            for tool in order:
                tuned = "-tuned" if tool in (FLEET_TUNED, FLUX_TUNED) else ""
                name = f"{tool.split()[0].lower()}{tuned}"
                name = f"{name}-n{bundles}-r{round_no}"
                if tool in (FLEET, FLEET_TUNED):
                    bed.stop_flux()  # no idle controllers on the 2 cores while fleet runs
                    took = fleet_round(bed, name, bundles, tool)
                else:
                    took = flux_round(bed, api, name, bundles, tool)
                results[bundles][tool].append(took)
                print(f"  N={bundles} round {round_no}: {tool}: {took:.1f} s", flush=True)
    bed.stop_flux()
    return results


def noop(bed: Bed, api: fluxpeer.FluxApi, args: argparse.Namespace) -> None:
    """Print each side's no-op CPU as soon as it is measured (Flux first: the base)."""
    bundles, window, interval = args.noop_bundles, args.noop_window, args.noop_interval
    print(
        f"\nno-op: {bundles} bundles deployed, nothing changing, {window:.0f} s, a Git poll "
        f"and a drift pass every {interval:.0f} s; CPU seconds:",
        flush=True,
    )
    variant = flux_variant(FLUX, bundles)
    sides: list[tuple[str, Callable[[], tuple[float, float]]]] = [
        (FLUX, lambda: noop_cpu.flux(bed, api, variant, bundles, window, interval)),
        ("fleet serve + worker", lambda: noop_cpu.fleet_serve(bed, bundles, window, interval)),
    ]
    if args.noop_sync_cron:
        sides.append(
            ("fleet sync (cron)", lambda: noop_cpu.fleet_cron(bed, bundles, window, interval))
        )
    flux_cpu = 0.0
    for label, measure in sides:
        used, api_used = measure()
        flux_cpu = flux_cpu or used
        ratio = f", ratio to Flux {used / flux_cpu:.2f}" if label != FLUX else ""
        print(f"  {label:<22} {used:>7.1f}  (API server {api_used:.1f}){ratio}", flush=True)


def print_table(results: dict[int, dict[str, list[float]]], rounds: int) -> None:
    print(f"\npush -> all Ready, seconds (median of {rounds}), one cluster:")
    heads = ("N", "fleet", "Flux", "fleet/Flux", "fleet c=N", "Flux c=N", "ratio c=N")
    print(" ".join(f"{head:>{width}}" for head, width in zip(heads, WIDTHS, strict=True)))
    for bundles, times in results.items():
        fleet, flux, fleet_n, flux_n = (statistics.median(times[tool]) for tool in TOOLS)
        cells = (f"{bundles}", f"{fleet:.1f}", f"{flux:.1f}", f"{fleet / flux:.2f}",
                 f"{fleet_n:.1f}", f"{flux_n:.1f}", f"{fleet_n / flux_n:.2f}")  # fmt: skip
        print(" ".join(f"{cell:>{width}}" for cell, width in zip(cells, WIDTHS, strict=True)))


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", default="10,40,100", help="N per step, comma-separated")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per N and tool")
    parser.add_argument("--noop-bundles", type=int, default=100, help="0: skip the no-op part")
    parser.add_argument("--noop-window", type=float, default=300)
    parser.add_argument("--noop-interval", type=float, default=60)
    parser.add_argument(
        "--noop-sync-cron",
        action="store_true",
        help="also `fleet sync` every interval (a new process each time)",
    )
    args = parser.parse_args()
    # a SIGTERM (or a SIGINT a background shell set to be ignored) still runs the clean-up
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    sizes = [int(n) for n in args.bundles.split(",") if n.strip()]
    pods = sum(sizes) * args.rounds * len(TOOLS) + 2 * args.noop_bundles + 110
    with tempfile.TemporaryDirectory(prefix="fleet-bench-flux-") as tmp_text:
        tmp = Path(tmp_text)
        bed = Bed(tmp, tmp / "clusters", tmp / "git")
        print("starting one local cluster and the Git server ...", flush=True)
        localfleet.up(bed.fleet_dir, [(manyapps.CLUSTER, manyapps.CLUSTER_LABELS)])
        api: fluxpeer.FluxApi | None = None
        try:
            bed.start_git()
            raise_pod_capacity(bed.kubeconfig, pods)
            fluxpeer.install_crds(bed.kubeconfig)
            api = fluxpeer.FluxApi(bed.kubeconfig)
            results = timed_rounds(bed, api, sizes, args.rounds)
            print_table(results, args.rounds)
            if args.noop_bundles:
                noop(bed, api, args)
        finally:
            if api is not None:
                api.close()
            bed.stop()
            localfleet.down(bed.fleet_dir)


if __name__ == "__main__":
    main()
