"""The mass-delete guard in `fleet serve`: real Redis, real Git, the recording dispatcher.

A commit that would remove every bundle from the clusters is planned but its removals are
not sent; `/status` says why and how to allow it. A later commit carrying the trailer
`Fleet-Allow-Mass-Delete: true`, or `fleet serve --allow-mass-delete`, lets them go.
"""

from __future__ import annotations

import json

from fleet.runtime.serve_view import metrics_text, status_json
from fleet.runtime.state_cache import CachedUnit
from fleet.runtime.tasks import APPLY_TASK, REMOVE_TASK
from tests.integration.test_scheduler_tick import Bed, Sent, bed, report_refreshed

__all__ = ["bed"]

EVERYWHERE_NOT = """\
targetCustomizations:
  - doNotDeploy: true
    clusterSelector:
      matchExpressions: [{key: env, operator: NotIn, values: [prdo]}]
"""


def report_ready_with(bed: Bed, sent: Sent, objects: int) -> None:
    """A worker's apply result, with the object count its inventory lists."""
    kw = sent.kwargs
    bundle, cluster = str(kw["bundle"]), str(kw["cluster"])
    unit = CachedUnit(str(kw["deployment_id"]), "Ready", str(kw["commit"]), objects=objects,
                      by="test-worker")  # fmt: skip
    bed.cache.record(bundle, cluster, unit)
    bed.cache.release("apply", bundle, cluster, str(kw["deployment_id"]))


def converge_counted(bed: Bed) -> None:
    bed.scheduler.tick()
    report_refreshed(bed, "dev-eu", "prod-us")
    bed.dispatcher.take()
    for _ in range(4):
        bed.scheduler.tick()
        for sent in bed.dispatcher.take():
            if sent.task == APPLY_TASK:
                report_ready_with(bed, sent, objects=1)
    assert bed.scheduler.plan is not None and len(bed.scheduler.plan.in_sync) == 2


def removals(sent: list[Sent]) -> list[tuple[str, str]]:
    return sorted((str(s.kwargs["bundle"]), str(s.kwargs["cluster"])) for s in sent
                  if s.task == REMOVE_TASK)  # fmt: skip


def hold_every_removal(bed: Bed) -> dict[str, object]:
    converge_counted(bed)
    bed.work.write("apps/web/fleet.yaml", EVERYWHERE_NOT)  # a selector typo: no cluster left
    bed.work.commit_and_push("typo")
    bed.scheduler.poller.next_poll_at = 0.0
    bed.scheduler.tick()
    assert removals(bed.dispatcher.take()) == []
    assert bed.scheduler.plan is not None and len(bed.scheduler.plan.removals) == 2
    status = json.loads(status_json(bed.scheduler))
    return dict(status)


def test_removing_every_bundle_is_held_and_status_says_why(bed: Bed) -> None:
    status = hold_every_removal(bed)
    guard = status["massDelete"]
    assert isinstance(guard, dict) and guard["blocked"] is True
    fleet = bed.cache.ns
    assert guard["reasons"] == [
        f"would remove every bundle of fleet {fleet} from cluster dev-eu (1 bundles, 1 objects)",
        f"would remove every bundle of fleet {fleet} from cluster prod-us (1 bundles, 1 objects)",
    ]
    assert str(guard["message"]).endswith(
        "restart fleet serve with --allow-mass-delete, or push a commit whose message has the "
        "trailer 'Fleet-Allow-Mass-Delete: true'"
    )
    rows = status["removed"]
    assert isinstance(rows, list) and len(rows) == 2
    assert all(r["message"] == "left Git: held by the mass-delete guard (see massDelete)"
               for r in rows)  # fmt: skip
    assert "\nfleet_removals_held 2\n" in metrics_text(bed.scheduler)
    bed.scheduler.tick()
    assert removals(bed.dispatcher.take()) == []  # still held, tick after tick

    bed.work.commit_and_push("web goes everywhere\n\nFleet-Allow-Mass-Delete: true\n")
    bed.scheduler.poller.next_poll_at = 0.0
    bed.scheduler.tick()
    assert removals(bed.dispatcher.take()) == [("apps-web", "dev-eu"), ("apps-web", "prod-us")]
    assert json.loads(status_json(bed.scheduler))["massDelete"] is None
    assert "\nfleet_removals_held 0\n" in metrics_text(bed.scheduler)


def test_serve_allow_mass_delete_sends_them(bed: Bed) -> None:
    hold_every_removal(bed)
    bed.scheduler.config.allow_mass_delete = True  # `fleet serve --allow-mass-delete`
    bed.scheduler.tick()
    assert removals(bed.dispatcher.take()) == [("apps-web", "dev-eu"), ("apps-web", "prod-us")]
