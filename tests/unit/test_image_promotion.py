"""The step of a tag promoted wave by wave (fleet.images.promotion), pure: markers as a
survey found them, the bundles' waves, and what each wave's rollout says."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.images.model import BEHIND, BROKEN, CURRENT, MarkerSite
from fleet.images.promotion import (
    DONE,
    HELD,
    PASSED,
    REST,
    STEP,
    WAITING,
    BundleLayout,
    GateLookup,
    WaveGate,
    bundle_of,
    plan_promotion,
)
from fleet.spec.loader import load_repository

WEB = BundleLayout("web", "apps/web", ("canary", "prod-eu", "prod-us", "(rest)"))
TAGS = {"web": "1.3.0"}


def site(path: str, line: int, wave: str | None, state: str = BEHIND) -> MarkerSite:
    return MarkerSite(path, line, "web", wave, state)


def layout(canary: str, eu: str, rest: str) -> list[MarkerSite]:
    return [
        site("apps/web/values.yaml", 2, None, rest),
        site("apps/web/canary.yaml", 1, "canary", canary),
        site("apps/web/eu.yaml", 1, "prod-eu", eu),
    ]


def gates(**said: WaveGate) -> tuple[list[tuple[str, str]], GateLookup]:
    asked: list[tuple[str, str]] = []

    def gate(bundle: str, wave: str) -> WaveGate:
        asked.append((bundle, wave))
        return said.get(wave.replace("-", "_"), WaveGate(WAITING, "not yet"))

    return asked, gate


def test_first_group_is_rewritten_without_asking_any_wave() -> None:
    asked, gate = gates()
    plan = plan_promotion(TAGS, layout(BEHIND, BEHIND, BEHIND), [WEB], gate)
    (progress,) = plan.progress
    assert (progress.state, progress.group, progress.after) == (STEP, "canary", None)
    assert [(s.path, s.line) for s in progress.sites] == [("apps/web/canary.yaml", 1)]
    assert asked == []
    assert plan.select("apps/web/canary.yaml", 1, "web")
    assert not plan.select("apps/web/eu.yaml", 1, "web")
    assert not plan.select("apps/web/values.yaml", 2, "web")
    assert plan.select("apps/web/values.yaml", 2, "api")  # not promoted: always rewritten
    assert progress.summary() == "web 1.3.0 -> wave canary (bundle web)"


def test_next_group_waits_for_the_previous_wave_then_goes() -> None:
    asked, gate = gates(canary=WaveGate(WAITING, "wave canary is pending"))
    plan = plan_promotion(TAGS, layout(CURRENT, BEHIND, BEHIND), [WEB], gate)
    (progress,) = plan.progress
    assert (progress.state, progress.group, progress.after) == (WAITING, "prod-eu", "canary")
    assert progress.sites == () and asked == [("web", "canary")]
    assert "waiting before wave prod-eu: wave canary is pending" in progress.line()
    assert not plan.steps and not plan.select("apps/web/eu.yaml", 1, "web")

    _, gate = gates(canary=WaveGate(PASSED))
    plan = plan_promotion(TAGS, layout(CURRENT, BEHIND, BEHIND), [WEB], gate)
    assert [(p.state, p.group) for p in plan.progress] == [(STEP, "prod-eu")]
    assert plan.select("apps/web/eu.yaml", 1, "web")
    assert not plan.select("apps/web/values.yaml", 2, "web")


def test_rest_group_follows_the_last_wave_group_and_then_it_is_done() -> None:
    asked, gate = gates(prod_eu=WaveGate(PASSED))
    plan = plan_promotion(TAGS, layout(CURRENT, CURRENT, BEHIND), [WEB], gate)
    assert [(p.state, p.group, p.after) for p in plan.progress] == [(STEP, REST, "prod-eu")]
    assert asked == [("web", "prod-eu")]  # prod-us has no markers: not a group
    assert "the markers without $wave" in plan.progress[0].summary()
    plan = plan_promotion(TAGS, layout(CURRENT, CURRENT, CURRENT), [WEB], gate)
    assert [p.state for p in plan.progress] == [DONE]


def test_a_failed_wave_holds_and_a_newer_tag_restarts_at_the_first_group() -> None:
    _, gate = gates(canary=WaveGate(HELD, "wave canary failed: error rate"))
    plan = plan_promotion(TAGS, layout(CURRENT, BEHIND, BEHIND), [WEB], gate)
    assert [(p.state, p.group, p.reason) for p in plan.held] == [
        (HELD, "prod-eu", "wave canary failed: error rate")
    ]
    # T2: every marker is behind again; canary is rewritten whatever canary said of T
    plan = plan_promotion({"web": "1.4.0"}, layout(BEHIND, BEHIND, BEHIND), [WEB], gate)
    assert [(p.state, p.group) for p in plan.progress] == [(STEP, "canary")]


def test_groups_follow_the_bundles_wave_order_not_the_files() -> None:
    sites = [site("apps/web/a.yaml", 1, "prod-eu"), site("apps/web/z.yaml", 1, "canary")]
    _, gate = gates()
    plan = plan_promotion(TAGS, sites, [WEB], gate)
    assert [(p.state, p.group) for p in plan.progress] == [(STEP, "canary")]


def test_unknown_wave_and_markers_outside_bundles_are_problems_left_alone() -> None:
    sites = [
        site("apps/web/x.yaml", 4, "staging"),
        site("shared/values.yaml", 2, None),
        site("apps/web/canary.yaml", 1, "canary"),
    ]
    _, gate = gates()
    plan = plan_promotion(TAGS, sites, [WEB], gate)
    assert plan.problems[0].startswith("apps/web/x.yaml:4: the marker names wave 'staging'")
    assert "its waves: canary, prod-eu, prod-us, (rest)" in plan.problems[0]
    assert plan.problems[1].startswith("shared/values.yaml:2: ")
    assert [(p.state, p.group) for p in plan.progress] == [(STEP, "canary")]
    assert not plan.select("apps/web/x.yaml", 4, "web")
    assert not plan.select("shared/values.yaml", 2, "web")


def test_broken_markers_hold_their_group_and_each_bundle_goes_its_own_way() -> None:
    api = BundleLayout("api", "apps/api", ("canary", "prod-eu"))
    sites = [
        site("apps/web/canary.yaml", 1, "canary", BROKEN),
        site("apps/api/canary.yaml", 1, "canary", CURRENT),
        site("apps/api/eu.yaml", 1, "prod-eu", BEHIND),
    ]
    _, gate = gates(canary=WaveGate(PASSED))
    plan = plan_promotion(TAGS, sites, [WEB, api], gate)
    found = {p.bundle: (p.state, p.group) for p in plan.progress}
    assert found == {"web": (HELD, "canary"), "api": (STEP, "prod-eu")}
    assert "apps/web/canary.yaml:1" in plan.held[0].reason


def test_bundle_of_takes_the_deepest_directory() -> None:
    root = BundleLayout("root", "", ())
    inner = BundleLayout("inner", "apps/web/inner", ())
    bundles = [root, WEB, inner]
    assert bundle_of("apps/web/inner/v.yaml", bundles) == inner
    assert bundle_of("apps/web/v.yaml", bundles) == WEB
    assert bundle_of("apps/webx/v.yaml", bundles) == root
    assert bundle_of("v.yaml", [WEB]) is None


def test_promotion_is_validated_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: t\nregistries: []\n"
        "imagePolicies:\n"
        "  - name: web\n    image: reg.example/web\n    policy: {numerical: {}}\n"
        "    promotion: sideways\n"
    )
    with pytest.raises(FleetError) as err:
        load_repository(tmp_path)
    (problem,) = err.value.problems
    assert problem.line == 9 and "'all' or 'waves'" in problem.message
    (tmp_path / "fleet.yaml").write_text(
        (tmp_path / "fleet.yaml").read_text().replace("sideways", "waves")
    )
    spec = load_repository(tmp_path).definition.image_policies[0]
    assert spec.promotion == "waves"
