"""`fleet serve`'s `/status` rollouts, and a Redis wipe after a rollback: real Redis and Git.

The scheduler (`tests.integration.test_scheduler_tick`'s bed: only the dispatcher records
instead of publishing) rolls a bundle out with an approval gate on its first wave. `/status`
shows the rollout as `fleet rollout status` does (waves, verdicts, gate messages) next to
the unit rows saying why each unit waits. Then Redis loses everything after the second
revision was rolled back; the workers' refresh of each cluster reports what the clusters'
history says was rolled back (written here exactly as `UnitWorker.refresh` writes it), and
the scheduler holds the revision instead of rolling it out again.
"""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from fleet.rollout.record import Controls, revision_of
from fleet.runtime.rollout_store import RedisRolloutStore
from fleet.runtime.serve_view import metrics_text, status_json
from fleet.runtime.state_cache import CachedUnit
from fleet.runtime.tasks import APPLY_TASK
from tests.integration.test_scheduler_tick import (
    CONFIGMAP,
    DEFINITION,
    Bed,
    bed,
    report_ready,
    report_refreshed,
)

__all__ = ["bed"]

GATED = DEFINITION.replace(
    "      selector: {{matchLabels: {{env: dev}}}}\n",
    "      selector: {{matchLabels: {{env: dev}}}}\n      gates: [{{type: approval}}]\n",
)
BUNDLE = "apps-web"


def status(bed: Bed) -> dict[str, object]:
    return dict(json.loads(status_json(bed.scheduler)))


def rows(body: dict[str, object]) -> dict[str, str]:
    units = body["units"]
    assert isinstance(units, list)
    return {str(u["cluster"]): str(u["message"]) for u in units}


def applies(bed: Bed) -> list[str]:
    sent = bed.dispatcher.take()
    for one in sent:
        if one.task == APPLY_TASK:
            report_ready(bed, one)
    return sorted(str(s.kwargs["cluster"]) for s in sent if s.task == APPLY_TASK)


def wave_phases(bed: Bed) -> dict[str, str]:
    families = {f.name: f for f in text_string_to_metric_families(metrics_text(bed.scheduler))}
    return {s.labels["wave"]: s.labels["phase"] for s in families["fleet_rollout_wave"].samples}


def gate_results(bed: Bed) -> dict[tuple[str, str], str]:
    families = {f.name: f for f in text_string_to_metric_families(metrics_text(bed.scheduler))}
    samples = families["fleet_gate_result"].samples
    return {(s.labels["wave"], s.labels["gate"]): s.labels["result"] for s in samples}


def current_revision(bed: Bed) -> str:
    assert bed.scheduler.desired is not None
    return revision_of(u.deployment_id for u in bed.scheduler.desired.units)


def walk_to_the_gate(bed: Bed) -> None:
    """The dev wave deployed and Ready: its approval gate waits."""
    bed.scheduler.tick()
    assert applies(bed) == ["dev-eu"]
    bed.scheduler.tick()
    assert applies(bed) == []


def first_rollout(bed: Bed) -> str:
    bed.work.write("fleet.yaml", GATED.format(name=bed.cache.ns))
    bed.work.commit_and_push("gated")
    bed.scheduler.tick()
    report_refreshed(bed, "dev-eu", "prod-us")
    bed.dispatcher.take()
    walk_to_the_gate(bed)
    return current_revision(bed)


def test_status_shows_each_rollout_and_why_its_units_wait(bed: Bed) -> None:
    revision = first_rollout(bed)
    body = status(bed)
    [rollout] = body["rollouts"]  # type: ignore[misc]
    assert rollout["bundle"] == BUNDLE and rollout["revision"] == revision
    assert rollout["outcome"] == "progressing"
    dev = rollout["waves"][0]
    assert (dev["name"], dev["phase"], dev["verdict"]) == ("dev", "verifying", "pending")
    [gate] = dev["gates"]
    wanted = f"approval: waiting for `fleet rollout approve {BUNDLE} --wave dev`"
    assert gate["type"] == "approval" and gate["message"] == wanted
    said = wanted.removeprefix("approval: ")  # the line names the gate already
    assert f"    gate approval (approval): pending: {said}" in rollout["lines"]
    assert rows(body)["prod-us"] == f"wave prod waits for the gates of wave dev: {wanted}"
    assert wave_phases(bed) == {"dev": "verifying", "prod": "pending"}
    assert gate_results(bed) == {("dev", "approval"): "pending"}

    store = RedisRolloutStore(bed.scheduler.redis, bed.cache.ns)

    def approve(control: Controls) -> None:
        control.approved = {revision: ["dev"]}

    store.update_control(BUNDLE, approve)  # `fleet rollout approve apps-web --wave dev`
    bed.scheduler.tick()
    assert applies(bed) == ["prod-us"]
    bed.scheduler.tick()
    [rollout] = status(bed)["rollouts"]  # type: ignore[misc]
    assert rollout["outcome"] == "succeeded", rollout
    assert [w["phase"] for w in rollout["waves"]] == ["passed", "passed"]
    assert gate_results(bed) == {("dev", "approval"): "passed"}


def test_after_a_redis_wipe_a_rolled_back_revision_stays_held(bed: Bed) -> None:
    first = first_rollout(bed)
    store = RedisRolloutStore(bed.scheduler.redis, bed.cache.ns)
    store.update_control(BUNDLE, lambda c: c.approved.update({first: ["dev"]}))
    bed.scheduler.tick()
    assert applies(bed) == ["prod-us"]
    bed.scheduler.tick()
    assert bed.scheduler.desired is not None
    v1 = {u.cluster: u.deployment_id for u in bed.scheduler.desired.units}
    commit1 = bed.scheduler.desired.commit

    bed.work.write("apps/web/cm.yaml", CONFIGMAP.format(name="web", value="two"))
    bed.work.commit_and_push("two")
    bed.scheduler.poller.next_poll_at = 0.0
    walk_to_the_gate(bed)
    second = current_revision(bed)
    assert second != first

    # the dev wave failed and was rolled back (the history says so), then Redis lost it all
    client = bed.scheduler.redis
    client.delete(*client.keys(f"fleet:{bed.cache.ns}:*"))
    bed.scheduler.tick()
    assert applies(bed) == []  # nothing is known: the clusters are read first
    # each cluster's refresh: its rolled-back revisions, then its inventories
    why = "wave dev: gate approval: not approved within 1h"
    assert store.add_rolled_back({BUNDLE: {second: why}}) == 1
    assert store.add_rolled_back({BUNDLE: {second: why}}) == 0  # known: nothing written
    for cluster in ("dev-eu", "prod-us"):
        running = CachedUnit(v1[cluster], "Ready", commit1, by="inventory")
        bed.cache.replace_cluster(cluster, {BUNDLE: running})
    bed.scheduler.tick()
    assert applies(bed) == []  # neither wave gets the rolled-back revision again
    body = status(bed)
    [rollout] = body["rollouts"]  # type: ignore[misc]
    assert rollout["revision"] == second and rollout["outcome"] == "rolledBack"
    assert rollout["rejected"] == {second: f"{why} (from the clusters' revision history)"}
    for cluster, message in rows(body).items():
        assert message.startswith(f"revision {second} was rolled back ({why}"), (cluster, message)
    assert wave_phases(bed) == {"dev": "pending", "prod": "pending"}
    assert RedisRolloutStore(client, bed.cache.ns).records()[BUNDLE].outcome == "rolledBack"

    bed.work.write("apps/web/cm.yaml", CONFIGMAP.format(name="web", value="three"))
    bed.work.commit_and_push("three")
    bed.scheduler.poller.next_poll_at = 0.0
    walk_to_the_gate(bed)  # a new commit rolls out as usual
    [rollout] = status(bed)["rollouts"]  # type: ignore[misc]
    assert rollout["outcome"] == "progressing" and second in rollout["rejected"]
