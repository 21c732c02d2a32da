"""`fleet.plan`: the comparison, grouping, redaction, selectors and the markdown size cap,
on raw YAML bundles (no helm, kustomize or git needed; tests/integration/test_plan.py runs
the CLI on real Helm and Kustomize bundles in a real Git repository)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fleet.desired import DesiredState
from fleet.errors import FleetError, Problem
from fleet.plan.as_json import plan_data
from fleet.plan.as_markdown import render_markdown
from fleet.plan.as_text import render_text
from fleet.plan.compute import BASE_BROKEN, PlanScope, compute_plan, relative_problems
from fleet.plan.model import Change, FleetPlan
from fleet.plan.objects import compare_manifests
from fleet.plan.selectors import parse_selector
from fleet.plugin.manager import FleetPlugins
from fleet.render.cache import RenderCache
from fleet.spec.loader import load_repository

PLUGINS = FleetPlugins.load(entry_points=False)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fleet_repo(root: Path, clusters: int, *, waves: str = "", extra: str = "") -> Path:
    lines = ["apiVersion: fleet-gitops.io/v1alpha1", "kind: Fleet", "name: t", "clusters:"]
    for i in range(clusters):
        env = "prod" if i % 2 else "dev"
        lines.append(f"  - {{name: c{i:03d}, labels: {{env: {env}, n: '{i}'}}}}")
    lines += ["groups:", "  - {name: prod, selector: {matchLabels: {env: prod}}}"]
    lines += ["bundles:", "  paths: [{glob: apps/*}]", extra, waves]
    write(root / "fleet.yaml", "\n".join(lines) + "\n")
    write(root / "apps/web/fleet.yaml", "defaultNamespace: web\n")
    write(
        root / "apps/web/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {color: blue}\n",
    )
    return root


def state(root: Path, commit: str, cache: RenderCache) -> DesiredState:
    return DesiredState.target(load_repository(root), commit, PLUGINS, cache=cache)


def plan_of(base: Path, head: Path, scope: PlanScope | None = None) -> FleetPlan:
    cache = RenderCache()
    before, after = state(base, "a" * 40, cache), state(head, "b" * 40, cache)
    return compute_plan(before, after, scope or PlanScope())


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_a_change_identical_on_400_clusters_is_one_group(tmp_path: Path) -> None:
    base = fleet_repo(tmp_path / "base", 800)
    head = copy(base, tmp_path / "head")
    write(
        head / "apps/web/fleet.yaml",
        "defaultNamespace: web\ntargetCustomizations:\n"
        "  - {name: prod, clusterGroup: prod, yaml: {overlays: [prod]}}\n",
    )
    write(head / "apps/web/overlays/prod/cm_patch.yaml", "data: {color: red}\n")
    plan = plan_of(base, head)
    assert len(plan.groups) == 1
    group = plan.groups[0]
    assert (group.bundle, group.change, len(group.clusters)) == ("apps-web", Change.CHANGED, 400)
    assert group.group_name == "prod" and group.selector == "env=prod" and group.selector_exact
    assert [o.ref for o in group.objects] == ["v1 ConfigMap web/web"]
    assert "-  color: blue\n+  color: red\n" in group.objects[0].diff
    # no waves and >= 200 clusters: Rancher's auto-partitions, 4 x 25%
    assert plan.summary == "1 bundle changes on 400 clusters in 4 waves"
    text = render_text(plan)
    assert text.count("color: red") == 1  # shown once, not 400 times
    assert "c001, c003, c005" in text and "+390 more" in text
    assert len(plan_data(plan)["groups"][0]["clusters"]) == 400  # JSON lists them all


def test_same_manifests_under_a_new_deployment_id_are_no_change(tmp_path: Path) -> None:
    base = fleet_repo(tmp_path / "base", 3)
    head = copy(base, tmp_path / "head")
    cm = head / "apps/web/cm.yaml"
    cm.write_text("# a comment changes the content hash, not the objects\n" + cm.read_text())
    cache = RenderCache()
    before, after = state(base, "a" * 40, cache), state(head, "b" * 40, cache)
    assert before.units[0].deployment_id != after.units[0].deployment_id
    plan = compute_plan(before, after)
    assert not plan.changed and plan.groups == []
    assert plan.summary == "no changes: base and head render the same on every cluster"


def test_an_unchanged_unit_is_not_rendered_at_base(tmp_path: Path) -> None:
    base = fleet_repo(tmp_path / "base", 3)
    cache = RenderCache()
    before = state(base, "a" * 40, cache)
    plan = compute_plan(before, state(copy(base, tmp_path / "head"), "b" * 40, cache))
    assert not plan.changed
    assert before._manifests == {}  # same deployment ids: the base rendered nothing


def test_a_base_that_does_not_render_is_compared_as_empty_and_says_so(tmp_path: Path) -> None:
    base = fleet_repo(tmp_path / "base", 2)
    head = copy(base, tmp_path / "head")
    write(base / "apps/web/cm.yaml", "kind: [oops\n")
    plan = plan_of(base, head)
    assert [(g.change, g.note, len(g.clusters)) for g in plan.groups] == [
        (Change.CHANGED, BASE_BROKEN, 2)
    ]
    assert "did not render at base" in render_text(plan)


def test_a_broken_head_raises_every_problem(tmp_path: Path) -> None:
    base = fleet_repo(tmp_path / "base", 2)
    head = copy(base, tmp_path / "head")
    write(head / "apps/web/cm.yaml", "apiVersion: v1\nkind: [oops\n")
    with pytest.raises(FleetError) as caught:
        plan_of(base, head)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == ("apps/web/cm.yaml", 3)  # renderers say it so (EOF: 3)
    loader = FleetError(problems=[Problem("bad key", str(head / "fleet.yaml"), 4)])
    relative = relative_problems(loader, head, "b" * 40, "head")
    assert [str(p) for p in relative.problems] == ["fleet.yaml:4: bad key"]
    based = relative_problems(loader, head, "c" * 40, "base")
    assert [str(p) for p in based.problems] == [f"fleet.yaml:4: base {'c' * 12}: bad key"]


def test_filters_and_unknown_names(tmp_path: Path) -> None:
    base = fleet_repo(tmp_path / "base", 6)
    head = copy(base, tmp_path / "head")
    write(head / "apps/web/cm.yaml", (head / "apps/web/cm.yaml").read_text().replace("blue", "x"))
    assert plan_of(base, head, PlanScope(clusters=("c002",))).clusters == ["c002"]
    assert plan_of(base, head, PlanScope(selector="env=prod,n in (1,3)")).clusters == [
        "c001",
        "c003",
    ]
    assert not plan_of(base, head, PlanScope(selector="env=nowhere")).changed
    with pytest.raises(FleetError, match="--cluster 'zz': no such cluster"):
        plan_of(base, head, PlanScope(clusters=("zz",)))
    with pytest.raises(FleetError, match="--bundle 'zz': no such bundle"):
        plan_of(base, head, PlanScope(bundles=("zz",)))


def test_wave_membership_and_wave_moves(tmp_path: Path) -> None:
    waves = "rollout:\n  waves:\n    - {name: canary, clusters: [c000]}\n"
    base = fleet_repo(tmp_path / "base", 4, waves=waves)
    head = fleet_repo(tmp_path / "head", 4, waves=waves.replace("c000", "c001"))
    write(head / "apps/web/cm.yaml", (head / "apps/web/cm.yaml").read_text().replace("blue", "x"))
    plan = plan_of(base, head)
    assert plan.groups[0].waves == {"canary": 1, "(rest)": 3}
    assert plan.waves_touched == ["canary", "(rest)"]
    assert [(m.cluster, m.base, m.head) for m in plan.wave_moves] == [
        ("c000", "canary", "(rest)"),
        ("c001", "(rest)", "canary"),
    ]
    assert "rollout order: canary -> (rest)" in render_text(plan)


def test_fleet_bookkeeping_is_left_out_of_the_comparison() -> None:
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {}}
    stamped = {
        **plain,
        "metadata": {
            "name": "a",
            "labels": {
                "fleet-gitops.io/bundle": "web",
                "app.kubernetes.io/managed-by": "fleet-gitops",
            },
            "annotations": {"fleet-gitops.io/deployment-id": "abc"},
        },
    }
    assert compare_manifests([plain], [stamped]) == ()
    helm = {**plain, "metadata": {"name": "a", "labels": {"app.kubernetes.io/managed-by": "Helm"}}}
    (change,) = compare_manifests([plain], [helm])
    assert "+    app.kubernetes.io/managed-by: Helm" in change.diff
    assert "fleet-gitops.io" not in compare_manifests([stamped], [helm])[0].diff


def test_secret_values_are_redacted_and_keys_kept() -> None:
    def secret(**data: str) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": data}

    (change,) = compare_manifests(
        [secret(user="YWxpY2U=", token="b2xk")],
        [secret(user="YWxpY2U=", token="bmV3", extra="eA==")],
    )
    lines = change.diff.splitlines()
    assert "-  token: <redacted, old value>" in lines and "+  token: <redacted, new value>" in lines
    assert (
        "   user: <redacted>\n" in change.diff and "+  extra: <redacted, new value>" in change.diff
    )
    for value in ("YWxpY2U=", "b2xk", "bmV3", "eA=="):
        assert value not in change.diff
    (added,) = compare_manifests([], [secret(token="c2VjcmV0")])
    assert added.change is Change.ADDED and "c2VjcmV0" not in added.diff


@pytest.mark.parametrize(
    ("text", "labels", "matches"),
    [
        ("env=prod", {"env": "prod"}, True),
        ("env==prod", {"env": "dev"}, False),
        ("env!=prod", {}, True),
        ("env!=prod", {"env": "prod"}, False),
        ("region in (eu, us),env=prod", {"env": "prod", "region": "us"}, True),
        ("region notin (eu)", {"region": "eu"}, False),
        ("gpu", {"gpu": "yes"}, True),
        ("!gpu", {"gpu": "yes"}, False),
    ],
)
def test_selector_strings(text: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_selector(text).matches(labels) is matches


@pytest.mark.parametrize("text", ["", "env=prod,", "a in ()", "a b", "(x)"])
def test_bad_selector_strings_are_one_line_errors(text: str) -> None:
    with pytest.raises(FleetError, match="--selector"):
        parse_selector(text)


def test_markdown_stays_under_the_cap_and_says_what_it_left_out(tmp_path: Path) -> None:
    base = fleet_repo(tmp_path / "base", 3)
    for i in range(30):
        write(
            base / f"apps/b{i:02d}/cm.yaml",
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: b{i}}}\ndata: {{v: '1'}}\n",
        )
    head = copy(base, tmp_path / "head")
    for i in range(30):
        cm = head / f"apps/b{i:02d}/cm.yaml"
        cm.write_text(cm.read_text().replace("'1'", "'2'"))
    plan = plan_of(base, head)
    assert len(plan.groups) == 30
    full = render_markdown(plan, max_chars=1_000_000)
    assert "Left out" not in full
    assert full.count("<details>") == 30 and full.count("```diff") == 30
    cap = len(full) // 3
    capped = render_markdown(plan, max_chars=cap)
    assert len(capped) <= cap
    assert 0 < capped.count("```diff") < 30
    assert "Left out to stay under" in capped and "the diffs of" in capped
    json.dumps(plan_data(plan))  # serialisable
