"""Sync benchmarks on real local clusters (a script, not a test: figures, never pass/fail).

1. Commit-to-converged, embedded: 5 local clusters x 20 bundles (7 Helm, 7 Kustomize, 6 raw
   YAML, copies of examples/bundles), pushed to a real `git daemon`; seconds from the push
   until `fleet sync <git url>` returns with every unit Ready.
   The same from a push (signed webhook) with `fleet serve` and one `fleet worker` per
   region on a real Redis (the fleet renamed, so it deploys fresh too).
2. No-op pass over the same fleet: API write requests (target 0) and seconds.
3. Apply throughput vs. the physical limit: objects per second through the engine
   (`sync_unit`, no health wait) vs. a bare loop of server-side apply PATCH calls with the
   same API client against the same API server; the ratio (target >= 0.8).

    python tests/bench/bench_sync.py [--clusters 5] [--bundles 20] [--objects 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "testbin"))
sys.path.insert(0, str(ROOT))

import localfleet  # noqa: E402

from fleet.engine.kube import ClusterConnection  # noqa: E402
from fleet.engine.unit import sync_unit  # noqa: E402
from fleet.runtime.embedded import sync_fleet  # noqa: E402
from fleet.spec.bundle_options import BundleOptions  # noqa: E402
from tests.support.servers import GitServer, RedisServer  # noqa: E402

EXAMPLES = ROOT / "examples" / "bundles"


def make_repo(
    work: Path, clusters: list[tuple[str, dict[str, str]]], bundles: int, prefix: str = ""
) -> None:
    """A fleet repository: the clusters and `bundles` copies of the three example kinds."""
    kinds = ["web", "guestbook", "platform-config"]
    for index in range(bundles):
        kind = kinds[index % 3]
        name = f"{prefix}{kind.split('-')[0]}-{index}"
        target = work / "bundles" / name
        shutil.copytree(EXAMPLES / kind, target)
        options = target / "fleet.yaml"
        if kind == "web":
            text = options.read_text().replace("name: web", f"name: {name}", 1)
            text = text.replace("defaultNamespace: web", f"defaultNamespace: {name}")
            options.write_text(text.replace("releaseName: web", f"releaseName: {name}"))
        elif kind == "guestbook":
            text = options.read_text().replace("name: guestbook", f"name: {name}", 1)
            options.write_text(text.replace("namespace: guestbook", f"namespace: {name}"))
        else:
            (target / "namespace.yaml").write_text(
                f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
            )
            options.write_text(f"name: {name}\ndefaultNamespace: {name}\n")
    cluster_yaml = "".join(
        f"  - name: {name}\n    labels: {json.dumps(labels)}\n" for name, labels in clusters
    )
    (work / "fleet.yaml").write_text(
        f"apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: {prefix}bench\n"
        f"clusters:\n{cluster_yaml}"
        "groups:\n  - name: prod\n    selector: {matchLabels: {env: prod}}\n"
        + ("bundles:\n  paths: ['bundles/*']\n" if bundles else "")
    )


def distributed_converge(
    server: GitServer,
    tmp: Path,
    fleet_dir: Path,
    clusters: list[tuple[str, dict[str, str]]],
    bundles: int,
) -> None:
    """Commit-to-converged with `fleet serve` + one worker per region, driven by a webhook."""
    from tests.e2e.dist_support import distributed

    redis = RedisServer(tmp / "redis")
    redis.start()
    work = server.create_repo("bench-dist", tmp / "work-dist")
    make_repo(work.path, clusters, 0, prefix="dist-")
    first = work.commit_and_push("clusters only")
    try:
        with distributed(work.remote_url, tmp / "dist-logs", redis.url, fleet_dir) as dist:
            for region in sorted({labels["region"] for _, labels in clusters}):
                dist.start_worker(region, region)
            dist.start_serve("--poll-interval", "3600")
            dist.wait_converged(first, timeout=300)
            make_repo(work.path, clusters, bundles, prefix="dist-")
            pushed = time.perf_counter()
            sha = work.commit_and_push("bench fleet")
            dist.push_webhook(sha)
            status = dist.wait_converged(sha, timeout=600)
            converged = time.perf_counter() - pushed
            units = len(status.get("units", []))
            print(
                f"commit-to-converged (distributed: fleet serve + {len(dist.workers)} workers, "
                f"webhook): {converged:.1f} s for {units} units, all Ready"
            )
    finally:
        redis.stop()


def bare_apply_loop(conn: ClusterConnection, manifests: list[dict[str, object]]) -> float:
    """Objects per second of plain SSA PATCH calls with the connection's own API client."""
    api = conn._api  # the same urllib3 pool, TLS session and serializer as the engine
    started = time.perf_counter()
    for manifest in manifests:
        meta = manifest["metadata"]
        assert isinstance(meta, dict)
        args = api.param_serialize(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/configmaps/{meta['name']}",
            query_params=[("fieldManager", "bench")],
            header_params={
                "Content-Type": "application/apply-patch+yaml",
                "Accept": "application/json",
            },
            body=json.dumps(manifest).encode(),
            auth_settings=["BearerToken"],
        )
        api.call_api(*args).read()
    return len(manifests) / (time.perf_counter() - started)


def config_maps(namespace: str, count: int) -> list[dict[str, object]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"bench-{i}", "namespace": namespace},
            "data": {"index": str(i), "payload": "x" * 256},
        }
        for i in range(count)
    ]


def ensure_namespace(conn: ClusterConnection, name: str) -> None:
    conn.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        force=True,
        field_manager="bench",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=5)
    parser.add_argument("--bundles", type=int, default=20)
    parser.add_argument("--objects", type=int, default=200)
    args = parser.parse_args()
    regions = ["eu", "us"]
    clusters = [
        (f"bench-{i}", {"env": "prod" if i % 2 else "dev", "region": regions[i % 2]})
        for i in range(args.clusters)
    ]
    with tempfile.TemporaryDirectory(prefix="fleet-bench-sync-") as tmp_text:
        tmp = Path(tmp_text)
        fleet_dir = tmp / "clusters"
        print(f"starting {args.clusters} local clusters ...", flush=True)
        localfleet.up(fleet_dir, clusters)
        server = GitServer(tmp / "git" / "repos")
        server.start()
        try:
            os.environ["FLEET_CREDENTIALS_DIR"] = str(fleet_dir)
            os.environ["FLEET_CACHE_DIR"] = str(tmp / "cache")  # a cold render cache
            work = server.create_repo("bench", tmp / "work")
            make_repo(work.path, clusters, args.bundles)
            pushed = time.perf_counter()
            sha = work.commit_and_push("bench fleet")
            report = sync_fleet(server.url("bench"), branch="main")
            converged = time.perf_counter() - pushed
            ready = "all Ready" if report.ok else "NOT all Ready"
            print(
                f"commit-to-converged (embedded): {converged:.1f} s for {report.units} units "
                f"({args.clusters} clusters x {args.bundles} bundles, {report.renders} renders, "
                f"commit {sha[:8]}, {ready}); writes {report.writes}"
            )
            noop = sync_fleet(server.url("bench"), branch="main")
            print(
                f"no-op pass: {noop.writes} API write requests (target 0), "
                f"{noop.seconds:.1f} s, {'all Ready' if noop.ok else 'NOT all Ready'}"
            )

            distributed_converge(server, tmp, fleet_dir, clusters, args.bundles)

            conn = ClusterConnection.from_kubeconfig(fleet_dir / "bench-0.kubeconfig")
            # Alternate bare and engine rounds into fresh namespaces and take the medians,
            # so neither side gets a warmer server or a quieter machine.
            bare_rates, engine_rates, states = [], [], set()
            for round_no in range(3):
                for namespace in (f"bench-bare-{round_no}", f"bench-engine-{round_no}"):
                    ensure_namespace(conn, namespace)
                bare_rates.append(
                    bare_apply_loop(conn, config_maps(f"bench-bare-{round_no}", args.objects))
                )
                started = time.perf_counter()
                result = sync_unit(
                    conn,
                    f"bench-engine-{round_no}",
                    "0" * 64,
                    sha,
                    config_maps(f"bench-engine-{round_no}", args.objects),
                    BundleOptions(),
                    wait=False,
                )
                engine_rates.append(args.objects / (time.perf_counter() - started))
                states.add(str(result.state))
            bare, engine = statistics.median(bare_rates), statistics.median(engine_rates)
            conn.close()
            print(
                f"apply throughput (median of 3 rounds of {args.objects} objects): engine "
                f"{engine:.0f} objects/s ({', '.join(sorted(states))}), "
                f"bare SSA loop {bare:.0f} objects/s, ratio {engine / bare:.2f} (target >= 0.8)"
            )
        finally:
            server.stop()
            localfleet.down(fleet_dir)


if __name__ == "__main__":
    main()
