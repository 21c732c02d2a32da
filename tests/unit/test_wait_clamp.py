"""A bundle's `waitTimeoutSeconds` (from Git) is capped by the operator before the engine waits.

Before, `waitTimeoutSeconds: 86400` made a worker thread wait a day for an unhealthy
bundle, far past the broker's visibility timeout (the task is then redelivered to another
worker while the first still waits). Now both runtimes pass the options through
`fleet.runtime.waits` and the engine's `SyncPass` gets the capped wait.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import pytest
import redis

from fleet.config import Settings
from fleet.desired import load_desired
from fleet.engine.kube import ClusterConnection
from fleet.engine.sync_pass import SyncPass
from fleet.engine.wait import DEFAULT_WAIT_SECONDS
from fleet.plugin.manager import FleetPlugins
from fleet.runtime.embedded import SyncRun
from fleet.runtime.waits import bounded_wait
from fleet.runtime.worker import UnitWorker
from fleet.spec.bundle_options import BundleOptions

DEFINITION = """\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: waits
clusters:
  - name: edge
bundles:
  paths: [apps/*]
"""


def options(wait: int | None) -> BundleOptions:
    return BundleOptions.model_validate({} if wait is None else {"waitTimeoutSeconds": wait})


def test_a_wait_over_the_cap_becomes_the_cap_with_a_note() -> None:
    capped, note = bounded_wait(options(86400), 600)
    assert capped.wait_timeout_seconds == 600
    assert note == (
        "waitTimeoutSeconds 86400 is over the operator's limit: waited at most 600s "
        "(FLEET_MAX_WAIT_SECONDS)"
    )
    assert options(86400).wait_timeout_seconds == 86400  # the unit's own options: untouched


@pytest.mark.parametrize(
    ("wait", "cap", "expected"),
    [
        (120, 600, 120),  # under the cap: as asked
        (600, 600, 600),
        (None, 600, None),  # the engine's default (300 s) is under the cap
        (None, 60, 60),  # ... and capped when the operator allows less
        (0, 60, 60),
    ],
)
def test_waits_under_the_cap_stand(wait: int | None, cap: float, expected: int | None) -> None:
    capped, note = bounded_wait(options(wait), cap)
    assert (capped.wait_timeout_seconds, note) == (expected, None)


def test_the_cap_follows_the_setting_and_stays_under_the_visibility_timeout() -> None:
    assert Settings.from_env({}).wait_cap == 600
    assert Settings.from_env({"FLEET_MAX_WAIT_SECONDS": "60"}).wait_cap == 60
    # a task still waiting at its visibility timeout would be redelivered: at most half of it
    assert Settings.from_env({"FLEET_MAX_WAIT_SECONDS": "5000"}).wait_cap == 900
    env = {"FLEET_MAX_WAIT_SECONDS": "600", "FLEET_CELERY_VISIBILITY_TIMEOUT": "300"}
    assert Settings.from_env(env).wait_cap == 150
    assert Settings().wait_cap >= DEFAULT_WAIT_SECONDS


def test_both_runtimes_hand_the_engine_the_capped_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "fleet.yaml").write_text(DEFINITION)
    app = tmp_path / "apps" / "slow"
    app.mkdir(parents=True)
    (app / "fleet.yaml").write_text("waitTimeoutSeconds: 86400\n")
    (app / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
    desired = load_desired(tmp_path, "0" * 40, FleetPlugins.load(entry_points=False))
    (unit,) = desired.units
    env = {"FLEET_MAX_WAIT_SECONDS": "45"}
    worker = UnitWorker(redis.Redis(), name="w", env=env)  # connects to nothing until used
    embedded = SyncRun(desired, lambda line: None, wait_cap=Settings.from_env(env).wait_cap)
    conn = cast(ClusterConnection, None)  # SyncPass.of only keeps it
    caplog.set_level(logging.WARNING)
    for runtime in (worker, embedded):
        given, note = runtime.deploy_options(unit)
        assert SyncPass.of(conn, unit.bundle, given, dry_run=False).timeout == 45
        assert note is not None and "waitTimeoutSeconds 86400" in note
    assert SyncPass.of(conn, unit.bundle, unit.options, dry_run=False).timeout == 86400
    assert caplog.text.count("edge/apps-slow: waitTimeoutSeconds 86400 is over") == 2
