#!/usr/bin/env python3
"""localfleet: several complete, real Kubernetes clusters on one machine, without Docker.

Each cluster is etcd + kube-apiserver (TLS, RBAC, on loopback) + kube-controller-manager +
kube-scheduler + kwok with fake nodes, so Deployments' pods become Running and Ready without
a kubelet. Binaries come from tests/testbin/build.sh (or KUBEBUILDER_ASSETS for etcd and
kube-apiserver, and FLEET_KUBE_CONTROLLER_MANAGER / FLEET_KUBE_SCHEDULER / FLEET_KWOK for
the rest). Ports are chosen free, never fixed, so several fleets run side by side.

    localfleet up --dir DIR --cluster dev-eu:env=dev,region=eu --cluster prod-us:env=prod
    localfleet status --dir DIR
    localfleet down --dir DIR

`up` writes DIR/NAME.kubeconfig (admin client certificate) and DIR/clusters.json (labels,
kubeconfig, server, pids). `down` stops exactly the processes it started, by pid (checked
against the process start time, so a recycled pid is never signalled).

Only the standard library and the `openssl` command are used, so this runs from a plain
shell as well as from pytest (tests/conftest.py imports it).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = HERE / "bin"
STATE_FILE = "clusters.json"
AUDIT_LOG = "audit.log"  # in DIR/NAME/logs: one JSON line per DELETE request
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["delete", "deletecollection"]
- level: None
"""
SERVICE_CIDR = "10.0.0.0/24"
FAKE_NODES = 1
# Pods the fake node accepts: a kubelet's default is 110, which capped the benchmarks'
# rounds (40 bundles x 3 rounds); kwok runs no container, so a node holds many more.
FAKE_NODE_PODS = 1000

# binary -> (environment variable naming it, build.sh tool that builds it)
BINARIES: dict[str, tuple[str, str]] = {
    "etcd": ("FLEET_ETCD", "etcd"),
    "kube-apiserver": ("FLEET_KUBE_APISERVER", "kubernetes"),
    "kube-controller-manager": ("FLEET_KUBE_CONTROLLER_MANAGER", "kubernetes"),
    "kube-scheduler": ("FLEET_KUBE_SCHEDULER", "kubernetes"),
    "kwok": ("FLEET_KWOK", "kwok"),
}


class LocalFleetError(Exception):
    """Something the user can fix (missing binary, bad argument, cluster failed to start)."""


def find_binary(name: str) -> str:
    """Explicit env var, then KUBEBUILDER_ASSETS (envtest), then testbin/bin, then PATH."""
    env_var, tool = BINARIES[name]
    candidates = []
    if os.environ.get(env_var):
        candidates.append(Path(os.environ[env_var]))
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and name in ("etcd", "kube-apiserver"):
        candidates.append(Path(assets) / name)
    candidates.append(BIN / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found:
        return found
    raise LocalFleetError(
        f"{name} not found (looked at ${env_var}, KUBEBUILDER_ASSETS, {BIN}, PATH); "
        f"build it with: tests/testbin/build.sh {tool}"
    )


# Listen ports come from below Linux's ephemeral range (32768-60999), so an outgoing
# connection of some other process cannot take one between our check and the bind.
PORT_RANGE = (20000, 32000)
START_ATTEMPTS = 3


def free_port() -> int:
    """A loopback port that is free now (another fleet may still race us: see up())."""
    for _ in range(200):
        port = random.randrange(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise LocalFleetError(f"no free loopback port in {PORT_RANGE[0]}-{PORT_RANGE[1]}")


def parse_cluster_arg(text: str) -> tuple[str, dict[str, str]]:
    """`NAME:key=value,key=value` -> (NAME, labels)."""
    name, _, label_text = text.partition(":")
    if not name or not all(c.isalnum() or c == "-" for c in name) or name != name.lower():
        raise LocalFleetError(f"bad cluster name {name!r}: use lowercase letters, digits and '-'")
    labels: dict[str, str] = {}
    for pair in filter(None, label_text.split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LocalFleetError(f"bad label {pair!r} in --cluster {text!r}: use key=value")
        labels[key] = value
    return name, labels


# ---------------------------------------------------------------- certificates (openssl)


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise LocalFleetError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _ec_key(path: str, cwd: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path, cwd=cwd)


def _signed_cert(name: str, subject: str, ext: str, pki: Path) -> None:
    _ec_key(f"{name}.key", pki)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    (pki / f"{name}.ext").write_text(ext)
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-sha256",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.crt",
        cwd=pki,
    )


def make_pki(pki: Path) -> None:
    """A CA, the API server's serving cert, an admin client cert and the SA signing key."""
    pki.mkdir(parents=True, exist_ok=True)
    _ec_key("ca.key", pki)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=localfleet-ca",
        "-days",
        "3650",
        "-sha256",
        "-out",
        "ca.crt",
        cwd=pki,
    )
    sans = ",".join(
        [
            "IP:127.0.0.1",
            "DNS:localhost",
            "IP:10.0.0.1",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    _signed_cert(
        "apiserver",
        "/CN=kube-apiserver",
        f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n",
        pki,
    )
    _signed_cert(
        "admin",
        "/O=system:masters/CN=localfleet-admin",
        "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n",
        pki,
    )
    _ec_key("sa.key", pki)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, name: str, server: str, pki: Path) -> None:
    def b64(file: str) -> str:
        return base64.b64encode((pki / file).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": f"{name}-admin",
                "user": {
                    "client-certificate-data": b64("admin.crt"),
                    "client-key-data": b64("admin.key"),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
    }
    # JSON is valid YAML, and every kubeconfig reader accepts it.
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)


# ---------------------------------------------------------------- processes


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a pid (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int, start_time: str | None) -> bool:
    current = _start_time(pid)
    if current is None or (start_time is not None and current != start_time):
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


@dataclass
class Cluster:
    name: str
    labels: dict[str, str]
    dir: Path
    kubeconfig: Path
    server: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, dict[str, object]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "labels": self.labels,
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "dir": str(self.dir),
            "ports": self.ports,
            "pids": self.pids,
        }

    def spawn(self, role: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.dir / "logs" / f"{role}.log", "ab")  # noqa: SIM115 - child keeps it
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.dir,
        )
        log.close()
        self.pids[role] = {
            "pid": proc.pid,
            "start": _start_time(proc.pid),
            "argv0": argv[0],
            "argv": argv,  # paths and ports only (keys live in files), for `start`
        }
        return proc


def _https_context(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def _request(
    cluster: Cluster, path: str, *, method: str = "GET", body: object = None, timeout: float = 5
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(cluster.server + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(
            req, context=_https_context(cluster.dir / "pki"), timeout=timeout
        ) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, b""


def _wait(what: str, check, cluster: Cluster, deadline: float, procs) -> None:  # type: ignore[no-untyped-def]
    while time.monotonic() < deadline:
        if check():
            return
        for role, proc in procs.items():
            if proc.poll() is not None:
                tail = (cluster.dir / "logs" / f"{role}.log").read_text(errors="replace")[-1500:]
                raise LocalFleetError(
                    f"{cluster.name}: {role} exited with {proc.returncode} while waiting for "
                    f"{what}; log {cluster.dir}/logs/{role}.log ends:\n{tail}"
                )
        time.sleep(0.25)
    raise LocalFleetError(
        f"{cluster.name}: timed out waiting for {what} (logs in {cluster.dir}/logs)"
    )


def _etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _node_manifest(name: str) -> dict[str, object]:
    resources = {"cpu": "32", "memory": "256Gi", "pods": str(FAKE_NODE_PODS)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {"allocatable": resources, "capacity": resources},
    }


def start_cluster(cluster: Cluster, timeout: float) -> None:
    """Start one cluster; a port taken between choosing and binding it means a new try."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            _start_cluster_once(cluster, timeout)
            return
        except LocalFleetError as err:
            if "address already in use" not in str(err) or attempt == START_ATTEMPTS:
                raise
            stop_pids(cluster.pids)
            cluster.pids.clear()
            shutil.rmtree(cluster.dir / "etcd", ignore_errors=True)


def _start_cluster_once(cluster: Cluster, timeout: float) -> None:
    """Start every component of one cluster and wait until it is usable."""
    pki = cluster.dir / "pki"
    (cluster.dir / "logs").mkdir(parents=True, exist_ok=True)
    make_pki(pki)
    binaries = {name: find_binary(name) for name in BINARIES}
    ports = {"etcd": free_port(), "etcd-peer": free_port(), "apiserver": free_port()}
    cluster.ports = ports
    cluster.server = f"https://127.0.0.1:{ports['apiserver']}"
    write_kubeconfig(cluster.kubeconfig, cluster.name, cluster.server, pki)
    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    deadline = time.monotonic() + timeout

    procs["etcd"] = cluster.spawn(
        "etcd",
        [
            binaries["etcd"],
            "--name",
            "default",
            "--data-dir",
            str(cluster.dir / "etcd"),
            "--listen-client-urls",
            etcd_url,
            "--advertise-client-urls",
            etcd_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"default={peer_url}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes",
            str(2 * 1024**3),
            "--log-level",
            "warn",
        ],
    )
    _wait("etcd /health", lambda: _etcd_healthy(etcd_url), cluster, deadline, procs)
    audit_policy = cluster.dir / "audit-policy.yaml"
    audit_policy.write_text(AUDIT_POLICY)
    procs["kube-apiserver"] = cluster.spawn(
        "kube-apiserver",
        [
            binaries["kube-apiserver"],
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki}/apiserver.crt",
            f"--tls-private-key-file={pki}/apiserver.key",
            f"--client-ca-file={pki}/ca.crt",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki}/sa.pub",
            f"--service-account-signing-key-file={pki}/sa.key",
            "--allow-privileged=true",
            # Loopback addresses are not valid endpoints for the `kubernetes` Service.
            "--endpoint-reconciler-type=none",
            "--storage-media-type=application/vnd.kubernetes.protobuf",
            # every DELETE is recorded (tests count them: "no object Git wants is deleted")
            f"--audit-policy-file={audit_policy}",
            f"--audit-log-path={cluster.dir / 'logs' / AUDIT_LOG}",
            "--audit-log-maxsize=100",
            "--v=0",
        ],
    )
    _wait(
        "etcd and kube-apiserver /readyz",
        lambda: _request(cluster, "/readyz")[0] == 200,
        cluster,
        deadline,
        procs,
    )
    kubeconfig = str(cluster.kubeconfig)
    procs["kube-controller-manager"] = cluster.spawn(
        "kube-controller-manager",
        [
            binaries["kube-controller-manager"],
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki}/sa.key",
            f"--root-ca-file={pki}/ca.crt",
            "--use-service-account-credentials=false",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
            "--concurrent-gc-syncs=10",
            # The client-side rate limit (default 20 requests/s, burst 30) made the
            # controller-manager, not the tool under test, the bottleneck: 40 Deployments
            # took 8 s to be Ready however fast they were applied. A local API server
            # takes far more; peers are measured on the same bed (tests/bench).
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--concurrent-deployment-syncs=20",
            "--concurrent-replicaset-syncs=20",
            "--v=0",
        ],
    )
    procs["kube-scheduler"] = cluster.spawn(
        "kube-scheduler",
        [
            binaries["kube-scheduler"],
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--v=0",
        ],
    )
    procs["kwok"] = cluster.spawn(
        "kwok",
        [
            binaries["kwok"],
            f"--kubeconfig={kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.244.0.1",
            "--server-address=127.0.0.1:0",
        ],
    )
    _wait(
        "namespace default",
        lambda: _request(cluster, "/api/v1/namespaces/default")[0] == 200,
        cluster,
        deadline,
        procs,
    )
    for index in range(FAKE_NODES):
        node = f"kwok-{cluster.name}-{index}"
        status, body = _request(cluster, "/api/v1/nodes", method="POST", body=_node_manifest(node))
        if status not in (201, 409):
            raise LocalFleetError(f"{cluster.name}: creating node {node} failed: {status} {body!r}")

    def nodes_ready() -> bool:
        status, body = _request(cluster, "/api/v1/nodes")
        if status != 200:
            return False
        items = json.loads(body).get("items", [])
        ready = [
            n
            for n in items
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= FAKE_NODES

    _wait("a Ready kwok node", nodes_ready, cluster, deadline, procs)

    def default_sa() -> bool:
        return _request(cluster, "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200

    _wait("the default service account (controller-manager)", default_sa, cluster, deadline, procs)


def stop_pids(pids: dict[str, dict[str, object]], grace: float = 10.0) -> list[str]:
    """SIGTERM each recorded process (kwok first, etcd last), SIGKILL after `grace`."""
    order = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
    roles = sorted(pids, key=lambda r: order.index(r) if r in order else -1)
    stopped = []
    for role in roles:
        pid = int(pids[role]["pid"])  # type: ignore[call-overload]
        start = pids[role].get("start")
        if not pid_alive(pid, start if isinstance(start, str) else None):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        stopped.append(role)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and pid_alive(
            pid, start if isinstance(start, str) else None
        ):
            _reap(pid)
            time.sleep(0.1)
        if pid_alive(pid, start if isinstance(start, str) else None):
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            _reap(pid)
    return stopped


def _reap(pid: int) -> None:
    """Reap our own child (when `up` and `down` run in one process, e.g. under pytest)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# ---------------------------------------------------------------- state and commands


def load_state(fleet_dir: Path) -> dict[str, dict[str, object]]:
    path = fleet_dir / STATE_FILE
    if not path.exists():
        return {}
    data: dict[str, dict[str, object]] = json.loads(path.read_text())
    return data


def save_state(fleet_dir: Path, state: dict[str, dict[str, object]]) -> None:
    tmp = fleet_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(fleet_dir / STATE_FILE)


def up(
    fleet_dir: Path, clusters: list[tuple[str, dict[str, str]]], timeout: float = 240
) -> dict[str, dict[str, object]]:
    """Start every cluster (in parallel), wait until all are ready, record them."""
    fleet_dir = fleet_dir.resolve()
    fleet_dir.mkdir(parents=True, exist_ok=True)
    state = load_state(fleet_dir)
    names = [name for name, _ in clusters]
    if len(set(names)) != len(names):
        raise LocalFleetError("duplicate cluster names in --cluster")
    running = [n for n in names if n in state and any_alive(state[n])]
    if running:
        raise LocalFleetError(f"already running in {fleet_dir}: {', '.join(running)}")
    objs = [
        Cluster(name, labels, fleet_dir / name, fleet_dir / f"{name}.kubeconfig")
        for name, labels in clusters
    ]
    for cluster in objs:
        if cluster.dir.exists():
            shutil.rmtree(cluster.dir)
        cluster.dir.mkdir(parents=True)
    started = time.monotonic()
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(objs) or 1) as pool:
        futures = {pool.submit(start_cluster, c, timeout): c for c in objs}
        for future, cluster in futures.items():
            try:
                future.result()
            except LocalFleetError as err:
                errors.append(str(err))
            finally:
                state[cluster.name] = cluster.to_json()
                save_state(fleet_dir, state)
    if errors:
        for cluster in objs:
            stop_pids(cluster.pids)
        for name in names:
            state.pop(name, None)
        save_state(fleet_dir, state)
        raise LocalFleetError("\n".join(errors))
    elapsed = time.monotonic() - started
    for cluster in objs:
        state[cluster.name]["startup_seconds"] = round(elapsed, 1)
    save_state(fleet_dir, state)
    return {c.name: state[c.name] for c in objs}


def any_alive(entry: dict[str, object]) -> bool:
    pids = entry.get("pids", {})
    assert isinstance(pids, dict)
    return any(pid_alive(int(p["pid"]), p.get("start")) for p in pids.values())


def down(fleet_dir: Path, names: list[str] | None = None) -> list[str]:
    fleet_dir = fleet_dir.resolve()
    state = load_state(fleet_dir)
    stopped = []
    for name in list(state):
        if names and name not in names:
            continue
        pids = state[name].get("pids", {})
        assert isinstance(pids, dict)
        stop_pids(pids)
        stopped.append(name)
        del state[name]
    save_state(fleet_dir, state)
    return stopped


def stop_component(fleet_dir: Path, name: str, role: str) -> None:
    """Stop one process of a running cluster (e.g. its kube-apiserver, for outage tests)."""
    fleet_dir = fleet_dir.resolve()
    state = load_state(fleet_dir)
    pids = _component(state, name, role)
    stop_pids({role: pids[role]})


def start_component(fleet_dir: Path, name: str, role: str, timeout: float = 120) -> None:
    """Start a stopped process again with its original arguments (same ports and keys)."""
    fleet_dir = fleet_dir.resolve()
    state = load_state(fleet_dir)
    pids = _component(state, name, role)
    record = pids[role]
    start = record.get("start")
    if pid_alive(int(str(record["pid"])), start if isinstance(start, str) else None):
        raise LocalFleetError(f"{name}: {role} is already running")
    argv = record.get("argv")
    if not isinstance(argv, list):
        raise LocalFleetError(f"{name}: no recorded command line for {role}")
    entry = state[name]
    cluster = Cluster(
        name,
        dict(entry["labels"]),  # type: ignore[call-overload]
        Path(str(entry["dir"])),
        Path(str(entry["kubeconfig"])),
        server=str(entry["server"]),
        pids=pids,
    )
    proc = cluster.spawn(role, [str(arg) for arg in argv])
    save_state(fleet_dir, state)
    if role == "kube-apiserver":
        deadline = time.monotonic() + timeout
        _wait(
            "kube-apiserver /readyz",
            lambda: _request(cluster, "/readyz")[0] == 200,
            cluster,
            deadline,
            {role: proc},
        )


def _component(
    state: dict[str, dict[str, object]], name: str, role: str
) -> dict[str, dict[str, object]]:
    if name not in state:
        raise LocalFleetError(f"no cluster {name!r} in this fleet")
    pids = state[name].get("pids", {})
    assert isinstance(pids, dict)
    if role not in pids:
        raise LocalFleetError(f"{name} has no component {role!r} (known: {', '.join(pids)})")
    return pids


def status(fleet_dir: Path) -> dict[str, dict[str, object]]:
    report: dict[str, dict[str, object]] = {}
    for name, entry in load_state(fleet_dir.resolve()).items():
        pids = entry.get("pids", {})
        assert isinstance(pids, dict)
        alive = {role: pid_alive(int(p["pid"]), p.get("start")) for role, p in pids.items()}
        memory = {role: _memory_mib(int(p["pid"])) for role, p in pids.items() if alive.get(role)}
        report[name] = {
            **entry,
            "alive": alive,
            "healthy": bool(alive) and all(alive.values()),
            "rss_mib": sum(m[0] for m in memory.values()),
            "pss_mib": sum(m[1] for m in memory.values()),
        }
    return report


def _memory_mib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in MiB; PSS shares the binaries' pages among the clusters."""
    values = {"Rss:": 0, "Pss:": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(":")[0] + ":"
            if key in values:
                values[key] = int(line.split()[1]) // 1024
    except OSError:
        pass
    return values["Rss:"], values["Pss:"]


def _labels_text(labels: object) -> str:
    assert isinstance(labels, dict)
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localfleet", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start clusters and wait until they are ready")
    p_up.add_argument("--dir", required=True, type=Path, help="state directory")
    p_up.add_argument(
        "--cluster",
        action="append",
        required=True,
        metavar="NAME[:k=v,...]",
        help="a cluster and its labels; repeat for several",
    )
    p_up.add_argument("--timeout", type=float, default=240, help="seconds per cluster")
    p_down = sub.add_parser("down", help="stop the processes `up` started (by pid)")
    p_down.add_argument("--dir", required=True, type=Path)
    p_down.add_argument("names", nargs="*", help="only these clusters")
    for verb, text in (("stop", "stop one component"), ("start", "start a stopped component")):
        p_comp = sub.add_parser(verb, help=f"{text} of a cluster (outage tests)")
        p_comp.add_argument("--dir", required=True, type=Path)
        p_comp.add_argument("name", help="the cluster")
        p_comp.add_argument("component", choices=list(BINARIES), help="which process")
    p_status = sub.add_parser("status", help="report clusters and their processes")
    p_status.add_argument("--dir", required=True, type=Path)
    p_status.add_argument("-o", "--output", choices=["table", "json"], default="table")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            clusters = [parse_cluster_arg(text) for text in args.cluster]
            started = up(args.dir, clusters, args.timeout)
            for name, entry in started.items():
                print(
                    f"{name}\t{entry['server']}\t{entry['kubeconfig']}\t"
                    f"{_labels_text(entry['labels'])}\tready in {entry['startup_seconds']}s"
                )
        elif args.command == "stop":
            stop_component(args.dir, args.name, args.component)
            print(f"{args.name}\t{args.component} stopped")
        elif args.command == "start":
            start_component(args.dir, args.name, args.component)
            print(f"{args.name}\t{args.component} started")
        elif args.command == "down":
            for name in down(args.dir, args.names or None):
                print(f"{name}\tstopped")
        else:
            report = status(args.dir)
            if args.output == "json":
                print(json.dumps(report, indent=2, sort_keys=True))
            for name, entry in report.items():
                if args.output == "table":
                    alive = entry["alive"]
                    assert isinstance(alive, dict)
                    down_roles = [r for r, ok in alive.items() if not ok]
                    state = (
                        "running"
                        if entry["healthy"]
                        else f"degraded ({', '.join(down_roles)} down)"
                    )
                    print(
                        f"{name}\t{entry['server']}\t{_labels_text(entry['labels'])}\t{state}"
                        f"\trss={entry['rss_mib']}MiB pss={entry['pss_mib']}MiB"
                    )
            if not report and args.output == "table":
                print(f"no clusters in {args.dir}")
    except LocalFleetError as err:
        print(f"localfleet: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"localfleet: {err.strerror}: {err.filename}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
