"""`fleet plan` benchmark: 1,000 clusters x 50 bundles, one values file changes.

A script, not a test: prints figures and ratios, never fails on them. Run:

    python tests/bench/bench_plan.py [--clusters 1000] [--bundles 50]

The synthetic fleet (a real Git repository in a temporary directory) has clusters labelled
env=dev|staging|prod (round robin) and region, 50 bundles: every tenth a Helm chart (the
real helm; per-env replicas through targetCustomizations, so three renders per commit),
every tenth + 5 a Kustomize directory (the real kustomize), the rest raw YAML. The pull
request edits one chart's values.yaml, which changes that bundle on all 1,000 clusters.

`fleet plan --base main --head pr` runs as a user runs it (the CLI, a fresh process, no
cluster credential). Figures, all measured in this run:

- cold: an empty render cache (a CI job without a cache);
- warm: the render cache on disk from the cold run (a CI job that keeps FLEET_CACHE_DIR);
- no change: `--base main --head main` (the floor: load, target and compare both commits);
- baseline: `fleet validate --no-render` (load and target one commit, one process), so
  the ratios say what the plan costs on top of reading the fleet.

Plus the plan's size: units compared, groups (the 1,000 identical-but-for-env changes
should be 3), renders, and the text and markdown lengths.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENVS = ("dev", "staging", "prod")
REGIONS = ("eu", "us", "ap")
FLEET = [sys.executable, "-m", "fleet"]


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_repo(root: Path, clusters: int, bundles: int, *, tools: set[str]) -> None:
    lines = ["apiVersion: fleet-gitops.io/v1alpha1", "kind: Fleet", "name: bench", "clusters:"]
    for i in range(clusters):
        env, region = ENVS[i % 3], REGIONS[i % 5 % 3]
        lines.append(f"  - {{name: c{i:04d}, labels: {{env: {env}, region: {region}}}}}")
    lines += [
        "groups:",
        *(f"  - {{name: {e}, selector: {{matchLabels: {{env: {e}}}}}}}" for e in ENVS),
        "bundles:",
        "  paths: [{glob: apps/*}]",
        "rollout:",
        "  waves:",
        "    - {name: canary, group: dev}",
        "    - {name: staging, group: staging}",
    ]
    write(root / "fleet.yaml", "\n".join(lines) + "\n")
    for b in range(bundles):
        folder = root / "apps" / f"b{b:02d}"
        if b % 10 == 0 and "helm" in tools:
            write(folder / "chart/Chart.yaml", f"apiVersion: v2\nname: b{b}\nversion: 1.0.0\n")
            write(folder / "chart/values.yaml", "replicas: 1\nimage: example/app:1.0\n")
            write(
                folder / "chart/templates/deployment.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n"
                "  replicas: {{ .Values.replicas }}\n"
                "  selector: {matchLabels: {app: app}}\n"
                "  template:\n    metadata: {labels: {app: app}}\n"
                "    spec: {containers: [{name: app, image: {{ .Values.image | quote }}}]}\n",
            )
            customizations = "".join(
                f"  - name: {e}\n    clusterGroup: {e}\n"
                f"    helm: {{values: {{replicas: {i + 1}}}}}\n"
                for i, e in enumerate(ENVS)
            )
            write(
                folder / "fleet.yaml",
                f"defaultNamespace: b{b}\nhelm: {{chart: ./chart}}\n"
                f"targetCustomizations:\n{customizations}",
            )
        elif b % 10 == 5 and "kustomize" in tools:
            write(folder / "kustomization.yaml", "resources: [service.yaml]\n")
            write(
                folder / "service.yaml",
                f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{b}}}\n"
                "spec: {ports: [{port: 80}]}\n",
            )
            write(folder / "fleet.yaml", f"defaultNamespace: b{b}\n")
        else:
            for k in range(3):
                write(
                    folder / f"cm-{k}.yaml",
                    f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: b{b}-{k}}}\n"
                    f"data: {{key: value-{k}}}\n",
                )
            write(folder / "fleet.yaml", f"defaultNamespace: b{b}\n")


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--bundles", type=int, default=50)
    args = parser.parse_args()
    tools = {t for t in ("helm", "kustomize") if shutil.which(t)}
    missing = {"helm", "kustomize"} - tools
    if missing:
        print(f"  ({', '.join(sorted(missing))} not found: those bundles are raw YAML)")
    with tempfile.TemporaryDirectory(prefix="fleet-bench-plan-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        build_repo(root, args.clusters, args.bundles, tools=tools)
        git("init", "--quiet", "--initial-branch=main", cwd=root)
        git("add", "-A", cwd=root)
        git("-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "base", cwd=root)
        git("checkout", "--quiet", "-b", "pr", cwd=root)
        values = root / "apps/b00/chart/values.yaml" if "helm" in tools else None
        changed = values or root / "apps/b00/cm-0.yaml"
        changed.write_text(changed.read_text().replace("1.0", "1.1").replace("value-0", "v-1"))
        git("-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qam", "pr", cwd=root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
        env["FLEET_CACHE_DIR"] = str(Path(tmp) / "cache")
        plan = [*FLEET, "plan", ".", "--base", "main", "--head", "pr"]

        cold, out = timed([*plan, "-o", "json"], root, env)
        warm, _ = timed([*plan, "-o", "json"], root, env)
        text_s, text = timed(plan, root, env)
        md_s, markdown = timed([*plan, "-o", "markdown"], root, env)
        same, _ = timed([*FLEET, "plan", ".", "--base", "main", "--head", "main"], root, env)
        baseline, _ = timed([*FLEET, "validate", "--no-render", "."], root, env)
    data = json.loads(out)
    changed_units = sum(len(g["clusters"]) for g in data["groups"])
    print(f"plan: {args.clusters} clusters x {args.bundles} bundles, {changed.name} of one bundle")
    print(f"  summary             {data['summary']}")
    print(f"  units compared      {data['unitsInScope']:8d}  ({changed_units} changed)")
    print(f"  change groups       {len(data['groups']):8d}  (identical diffs shown once)")
    print(f"  renders (cold)      {data['renders']:8d}")
    print(f"  text output         {len(text):8d} chars")
    print(f"  markdown output     {len(markdown):8d} chars")
    print(f"  baseline validate   {baseline:8.2f} s  (load + target one commit)")
    print(f"  no-change plan      {same:8.2f} s  ({same / baseline:.1f}x baseline)")
    print(f"  plan, cold cache    {cold:8.2f} s  ({cold / baseline:.1f}x baseline)")
    print(f"  plan, warm cache    {warm:8.2f} s  ({warm / baseline:.1f}x baseline)")
    print(f"  plan -o text        {text_s:8.2f} s")
    print(f"  plan -o markdown    {md_s:8.2f} s")


if __name__ == "__main__":
    main()
