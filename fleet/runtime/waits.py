"""How long one unit may wait for health: the bundle asks, the operator caps it.

A bundle's `waitTimeoutSeconds` comes from Git, so it is untrusted: a commit asking for a
day would hold a worker thread for a day, and a task running past the broker's visibility
timeout is handed to a second worker while the first still waits. Both runtimes pass a
unit's options through `bounded_wait` before `fleet.engine.deploy`: a wait over the cap
(`Settings.wait_cap`: `FLEET_MAX_WAIT_SECONDS`, default 600, and at most half the
visibility timeout) becomes the cap, and the runtime puts the note in the unit's status
message and log. The engine's own default (300 s) is capped the same way. The deployment
id does not change: it hashes the options as Git wrote them.
"""

from __future__ import annotations

import logging

from fleet.engine.wait import DEFAULT_WAIT_SECONDS
from fleet.spec.bundle_options import BundleOptions
from fleet.targeting.units import DeploymentUnit

log = logging.getLogger(__name__)


def bounded_wait(options: BundleOptions, cap: float) -> tuple[BundleOptions, str | None]:
    """`options` with their health wait at most `cap` seconds, and a note when it was cut
    (None when the bundle's own wait stands)."""
    limit = max(1, int(cap))
    asked = options.wait_timeout_seconds
    if asked is None or asked <= 0:
        if limit >= DEFAULT_WAIT_SECONDS:
            return options, None
        return options.model_copy(update={"wait_timeout_seconds": limit}), None
    if asked <= limit:
        return options, None
    note = (
        f"waitTimeoutSeconds {asked} is over the operator's limit: waited at most {limit}s "
        "(FLEET_MAX_WAIT_SECONDS)"
    )
    return options.model_copy(update={"wait_timeout_seconds": limit}), note


def deploy_options(unit: DeploymentUnit, cap: float) -> tuple[BundleOptions, str | None]:
    """`bounded_wait` of a unit's options; a cut wait is logged as a warning."""
    options, note = bounded_wait(unit.options, cap)
    if note is not None:
        log.warning("%s/%s: %s", unit.cluster, unit.bundle, note)
    return options, note
