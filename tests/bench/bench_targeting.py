"""Targeting benchmark: 1,000 clusters x 50 bundles = 50,000 deployment units.

A script, not a test: prints figures, never fails on them. Run:

    python tests/bench/bench_targeting.py [--clusters 1000] [--bundles 50]

The synthetic fleet mixes what real fleets do: raw YAML bundles, Helm bundles whose values
are templated with cluster labels (re-templated per cluster), target customizations by
selector and by group, doNotDeploy, and per-glob targets. Time is measured on a run
without tracing; peak Python memory on a second run under tracemalloc.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fleet.spec.loader import load_repository  # noqa: E402
from fleet.targeting.units import compute_units  # noqa: E402

REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south"]
ENVS = ["dev", "staging", "prod"]


def build_repo(root: Path, clusters: int, bundles: int, *, skips: bool) -> None:
    """Write the synthetic fleet; `skips` adds per-glob targets and doNotDeploy."""
    lines = [
        "apiVersion: fleet-gitops.io/v1alpha1",
        "kind: Fleet",
        "name: bench",
        "clusters:",
    ]
    for i in range(clusters):
        env, region = ENVS[i % 3], REGIONS[i % 5]
        lines.append(
            f"  - {{name: c{i:04d}, labels: {{env: {env}, region: {region}, shard: s{i % 10}}}}}"
        )
    lines += [
        "groups:",
        "  - {name: prod, selector: {matchLabels: {env: prod}}, labels: {tier: production}}",
        "  - name: eu",
        "    selector:",
        "      matchExpressions: [{key: region, operator: In, values: [eu-west, eu-central]}]",
        "bundles:",
        "  paths:",
        "    - glob: apps/*",
        "    - glob: edge/*",
    ]
    if skips:
        lines += [
            "      targets:",
            "        - clusterSelector:",
            "            matchExpressions: [{key: env, operator: NotIn, values: [dev]}]",
        ]
    (root / "fleet.yaml").write_text("\n".join(lines) + "\n")
    for b in range(bundles):
        folder = root / ("edge" if b % 5 == 4 else "apps") / f"b{b:02d}"
        folder.mkdir(parents=True)
        if b % 2 == 0:
            (folder / "chart").mkdir()
            (folder / "chart/Chart.yaml").write_text(f"name: b{b}\nversion: 1.0.{b}\n")
            (folder / "chart/values.yaml").write_text("replicas: 1\n")
            templated = "      region: ${ .ClusterLabels.region }\n" if b % 4 == 0 else ""
            if b % 8 == 0:  # unique per cluster: the worst case for id caching
                templated += "      cluster: ${ .ClusterName | upper }\n"
            (folder / "fleet.yaml").write_text(
                "helm:\n  chart: ./chart\n  values:\n"
                f"    image: {{repo: example/b{b}, tag: '1.{b}'}}\n"
                + templated.replace("      ", "    ")
                + "targetCustomizations:\n"
                "  - name: prod\n    clusterGroup: prod\n"
                "    helm: {values: {replicas: 3}}\n"
                "  - name: eu\n    clusterSelector: {matchLabels: {region: eu-west}}\n"
                "    helm: {values: {replicas: 2}}\n"
                + (
                    "  - name: skip\n    clusterSelector: {matchLabels: {shard: s9}}\n"
                    f"    doNotDeploy: {'true' if skips else 'false'}\n"
                )
            )
        else:
            (folder / "cm.yaml").write_text(
                f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: b{b}}}\n"
            )
            (folder / "fleet.yaml").write_text(
                "defaultNamespace: apps\ntargetCustomizations:\n"
                "  - name: prod\n    clusterGroupSelector: {matchLabels: {tier: production}}\n"
                "    namespace: prod-apps\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--bundles", type=int, default=50)
    args = parser.parse_args()
    for skips in (False, True):
        run(args.clusters, args.bundles, skips=skips)


def run(clusters: int, bundles: int, *, skips: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        root = Path(tmp)
        build_repo(root, clusters, bundles, skips=skips)
        start = time.perf_counter()
        repo = load_repository(root)
        loaded = time.perf_counter() - start

        start, cpu_start = time.perf_counter(), time.process_time()
        units = compute_units(repo)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu_start

        tracemalloc.start()
        compute_units(repo)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    distinct = len({u.deployment_id for u in units})
    kind = "with targets/doNotDeploy" if skips else "every bundle on every cluster"
    print(f"targeting: {clusters} clusters x {bundles} bundles ({kind})")
    print(f"  load repository     {loaded:8.3f} s")
    print(f"  units               {len(units):8d}  ({distinct} distinct deployment ids)")
    print(f"  compute_units       {seconds:8.3f} s  ({len(units) / seconds:,.0f} units/s)")
    print(f"  compute_units CPU   {cpu:8.3f} s  (CPU time: steadier on a busy machine)")
    print(f"  peak traced memory  {peak / 1e6:8.1f} MB  (compute_units only)")
    print(f"  max RSS             {rss_mb:8.1f} MB  (whole process so far)")


if __name__ == "__main__":
    main()
