"""`localfleet up/status/down` from the shell: starts a cluster, stops exactly its processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import localfleet

from tests.conftest import TESTBIN

LOCALFLEET = str(TESTBIN / "localfleet")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LOCALFLEET, *args], capture_output=True, text=True, timeout=600)


def test_up_status_down_leaves_no_process_behind(tmp_path: Path) -> None:
    fleet_dir = tmp_path / "fleet"
    up = run("up", "--dir", str(fleet_dir), "--cluster", "solo:env=test,region=lab")
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith("solo\thttps://127.0.0.1:")
    state = json.loads((fleet_dir / "clusters.json").read_text())
    assert state["solo"]["labels"] == {"env": "test", "region": "lab"}
    assert (fleet_dir / "solo.kubeconfig").exists()
    pids = {role: (p["pid"], p["start"]) for role, p in state["solo"]["pids"].items()}
    assert set(pids) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }
    assert all(localfleet.pid_alive(pid, start) for pid, start in pids.values())

    status = run("status", "--dir", str(fleet_dir))
    assert status.returncode == 0
    assert "solo" in status.stdout and "running" in status.stdout

    # one component can be stopped and started again (outage tests), same port and keys
    assert run("stop", "--dir", str(fleet_dir), "solo", "kube-apiserver").returncode == 0
    degraded = run("status", "--dir", str(fleet_dir))
    assert "degraded (kube-apiserver down)" in degraded.stdout
    started = run("start", "--dir", str(fleet_dir), "solo", "kube-apiserver")
    assert started.returncode == 0, started.stderr
    assert "running" in run("status", "--dir", str(fleet_dir)).stdout
    restarted = json.loads((fleet_dir / "clusters.json").read_text())["solo"]["pids"]
    pids["kube-apiserver"] = (
        restarted["kube-apiserver"]["pid"],
        restarted["kube-apiserver"]["start"],
    )

    down = run("down", "--dir", str(fleet_dir))
    assert down.returncode == 0, down.stderr
    assert "solo\tstopped" in down.stdout
    alive = [role for role, (pid, start) in pids.items() if localfleet.pid_alive(pid, start)]
    assert alive == []
    assert json.loads((fleet_dir / "clusters.json").read_text()) == {}


def test_up_rejects_bad_labels(tmp_path: Path) -> None:
    result = run("up", "--dir", str(tmp_path), "--cluster", "bad:novalue")
    assert result.returncode == 1
    assert "use key=value" in result.stderr
