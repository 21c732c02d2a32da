"""CLI start-up benchmark: wall time of `fleet --help`, `fleet version`, `fleet validate`.

`fleet validate --no-render` is the start-up figure of a command that does work (load,
validate, target 9 units); plain `fleet validate` adds rendering every unit (helm,
kustomize), so it mostly measures the renderers.

A script, not a test: prints figures and ratios, never fails on them. Run:

    python tests/bench/bench_cli.py [--runs 15]

Each command runs `--runs` times in a fresh interpreter (`python -m fleet ...`, the same
interpreter as this script); the best and the median wall time are printed. Baselines
measured in the same run put the figures in proportion on a shared, noisy machine: a bare
interpreter (`python -c pass`) and the CLI framework alone (`python -c "import typer"`).
The target for `fleet --help` is 0.3 s (kubectl and flux answer in about 0.05 s).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_HELP_SECONDS = 0.3


def wall_times(argv: list[str], runs: int, cwd: Path) -> list[float]:
    """Wall time of `runs` fresh runs of `argv` (after one untimed warm-up run)."""
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        if i:  # the first run only warms the OS file cache
            times.append(time.perf_counter() - start)
    return times


def example_repo(into: Path) -> Path:
    """fleet.example.yaml + examples/ as a repository: 3 clusters, 3 bundles."""
    repo = into / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "fleet.example.yaml", repo / "fleet.yaml")
    shutil.copytree(ROOT / "examples", repo / "examples")
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        repo = example_repo(Path(tmp))
        cases = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import typer'": [py, "-c", "import typer"],
            "fleet --help": [py, "-m", "fleet", "--help"],
            "fleet worker --help": [py, "-m", "fleet", "worker", "--help"],
            "fleet version": [py, "-m", "fleet", "version"],
            "fleet validate --no-render": [py, "-m", "fleet", "validate", "--no-render", str(repo)],
            "fleet validate (renders 9 units)": [py, "-m", "fleet", "validate", str(repo)],
        }
        results = {name: wall_times(argv, args.runs, ROOT) for name, argv in cases.items()}
    bare = min(results["python -c pass"])
    typer_alone = min(results["python -c 'import typer'"])
    print(f"{args.runs} runs each, fresh interpreter ({py})")
    print(f"{'':32} {'best':>7} {'median':>7}   best - python   x typer alone")
    for name, times in results.items():
        best = min(times)
        print(
            f"{name:32} {best:6.3f}s {statistics.median(times):6.3f}s"
            f"   {best - bare:+6.3f}s       {best / typer_alone:5.2f}"
        )
    best_help = min(results["fleet --help"])
    print(
        f"fleet --help: {best_help:.3f}s best, {best_help / TARGET_HELP_SECONDS:.0%} of the "
        f"{TARGET_HELP_SECONDS} s target; {best_help - typer_alone:+.3f}s over typer alone"
    )


if __name__ == "__main__":
    main()
