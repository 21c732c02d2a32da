"""Tag selection of image policies (`fleet.images.policy`) and their definition models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fleet.errors import FleetError
from fleet.images.checks import check_image_policies
from fleet.images.policy import select_tag
from fleet.plugin import FleetPlugins
from fleet.spec.image_policies import ImagePolicySpec, ImageUpdatesSpec
from fleet.spec.loader import load_repository

TAGS = ["1.0.0", "1.1.0", "2.0.0", "1.2.0-rc.1", "sha256-abc.sig", "latest"]


def policy(kind: dict[str, Any], **extra: Any) -> ImagePolicySpec:
    return ImagePolicySpec.model_validate(
        {"name": "web", "image": "registry.example:5000/team/web", "policy": kind, **extra}
    )


def test_semver_range_picks_highest_release_inside() -> None:
    assert select_tag(policy({"semver": {"range": "^1"}}), TAGS) == "1.1.0"
    assert select_tag(policy({"semver": {"range": ">=1.0.0"}}), TAGS) == "2.0.0"


def test_semver_prereleases_only_when_the_range_asks() -> None:
    assert select_tag(policy({"semver": {"range": ">=1.2.0-rc.0 <2"}}), TAGS) == "1.2.0-rc.1"
    assert select_tag(policy({"semver": {"range": ">=1.2.0 <2"}}), TAGS) is None


def test_bad_semver_range_is_an_error() -> None:
    with pytest.raises(FleetError, match="not a semver range"):
        select_tag(policy({"semver": {"range": "banana"}}), TAGS)


@pytest.mark.parametrize(("order", "expected"), [("asc", "main-bb-20"), ("desc", "main-aa-3")])
def test_numerical_with_extract(order: str, expected: str) -> None:
    spec = policy(
        {"numerical": {"order": order}},
        filterTags={"pattern": r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$", "extract": "$ts"},
    )
    tags = ["main-aa-3", "main-bb-20", "main-cc-11", "feature-dd-99", "main-zz-x"]
    assert select_tag(spec, tags) == expected


def test_numerical_skips_values_that_are_not_numbers() -> None:
    spec = policy({"numerical": {"order": "asc"}})
    assert select_tag(spec, ["9", "10", "1_000", "inf", "nan", "abc", "2.5"]) == "10"
    assert select_tag(spec, ["abc", "latest"]) is None


@pytest.mark.parametrize(("order", "expected"), [("asc", "c"), ("desc", "a")])
def test_alphabetical_both_orders(order: str, expected: str) -> None:
    assert select_tag(policy({"alphabetical": {"order": order}}), ["b", "a", "c"]) == expected


def test_extract_with_braces_and_numbers() -> None:
    spec = policy(
        {"alphabetical": {}},
        filterTags={"pattern": r"^rel-(\d+)-(\w+)$", "extract": "${2}$1"},
    )
    # values: "x9", "y1": alphabetical asc picks the one whose value sorts last
    assert select_tag(spec, ["rel-9-x", "rel-1-y"]) == "rel-1-y"


def test_filter_without_extract_orders_by_tag() -> None:
    spec = policy({"alphabetical": {}}, filterTags={"pattern": "^main-"})
    assert select_tag(spec, ["main-a", "main-b", "zeta"]) == "main-b"


def test_exclusion_default_drops_signatures_and_empty_list_keeps_them() -> None:
    tags = ["a", "sha256-ff.sig"]
    assert select_tag(policy({"alphabetical": {}}), tags) == "a"
    assert select_tag(policy({"alphabetical": {}}, exclusionList=[]), tags) == "sha256-ff.sig"
    assert select_tag(policy({"alphabetical": {}}, exclusionList=["^a$"]), tags) == "sha256-ff.sig"


def test_empty_result() -> None:
    assert select_tag(policy({"semver": {"range": "^3"}}), TAGS) is None
    assert select_tag(policy({"alphabetical": {}}), []) is None


def test_order_of_listing_does_not_matter() -> None:
    spec = policy({"numerical": {}}, filterTags={"pattern": r"^(\d+)-", "extract": "$1"})
    tags = ["5-a", "5-b", "4-z"]
    assert select_tag(spec, tags) == select_tag(spec, list(reversed(tags))) == "5-b"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"policy": {"semver": {"range": "^1"}, "numerical": {}}}, "exactly one"),
        ({"policy": {}}, "exactly one"),
        ({"filterTags": {"pattern": "("}}, "not a valid regular expression"),
        ({"filterTags": {"pattern": "a" * 1001}}, "1000"),
        ({"filterTags": {"pattern": "^(?P<ts>x)$", "extract": "$nope"}}, "group 'nope'"),
        ({"filterTags": {"pattern": "^(x)$", "extract": "$2"}}, "group 2"),
        ({"exclusionList": ["[z"]}, "not a valid regular expression"),
        ({"image": "registry.example/team/web:1.0"}, "without tag or digest"),
        ({"image": "team/web@sha256:" + "a" * 64}, "without tag or digest"),
        ({"policy": {"semver": {"range": "^1"}}, "typo": 1}, "Extra inputs"),
    ],
)
def test_definition_refuses(extra: dict[str, Any], message: str) -> None:
    data: dict[str, Any] = {
        "name": "web",
        "image": "registry.example:5000/team/web",
        "policy": {"alphabetical": {}},
        **extra,
    }
    with pytest.raises(ValidationError, match=message):
        ImagePolicySpec.model_validate(data)


def test_image_updates_defaults_and_paths() -> None:
    spec = ImageUpdatesSpec.model_validate({"author": {"name": "bot", "email": "b@x.example"}})
    assert (spec.interval, spec.paths, spec.branch, spec.push_branch) == ("5m", ["."], None, None)
    for bad in ({"paths": ["../x"]}, {"paths": ["/etc"]}, {"branch": "a..b"}, {"interval": "x"}):
        with pytest.raises(ValidationError):
            ImageUpdatesSpec.model_validate({"author": {"name": "b", "email": "b@x"}, **bad})


def _repo(tmp_path: Path, policies: str, registries: str) -> Path:
    (tmp_path / "fleet.yaml").write_text(
        "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: t\n"
        f"registries: {registries}\nimagePolicies:\n{policies}"
    )
    return tmp_path


def test_load_checks_range_host_and_duplicates_at_their_lines(tmp_path: Path) -> None:
    policies = (
        "  - {name: a, image: reg.example:5000/x, policy: {semver: {range: banana}}}\n"
        "  - {name: b, image: other.example/x, policy: {numerical: {}}}\n"
        "  - {name: c, image: nginx, policy: {numerical: {}}}\n"
    )
    repo = load_repository(
        _repo(tmp_path, policies, "[{name: r, type: oci, host: reg.example:5000}]")
    )
    with pytest.raises(FleetError) as err:
        check_image_policies(repo, FleetPlugins.load(entry_points=False))
    lines = [(p.line, p.message) for p in err.value.problems]
    assert lines[0] == (6, "image policy a: 'banana' is not a semver range")
    assert lines[1][0] == 7 and "'other.example'" in lines[1][1]
    assert lines[2][0] == 8 and "'docker.io'" in lines[2][1]
    with pytest.raises(FleetError, match="duplicate image policy name 'a'"):
        load_repository(_repo(tmp_path, policies + policies.splitlines(True)[0], "[]"))


def test_unaddressed_dockerhub_entry_serves_docker_hub_images(tmp_path: Path) -> None:
    policies = "  - {name: c, image: nginx, policy: {numerical: {}}}\n"
    repo = load_repository(_repo(tmp_path, policies, "[{name: hub, type: dockerhub}]"))
    check_image_policies(repo, FleetPlugins.load(entry_points=False))  # no error
