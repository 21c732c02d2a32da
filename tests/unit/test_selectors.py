"""Label selectors follow Kubernetes semantics."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fleet.spec.bundle_options import LabelSelector
from fleet.targeting.selectors import compile_selector, selector_matches


def sel(**raw: object) -> LabelSelector:
    return LabelSelector.model_validate(raw)


def expr(key: str, operator: str, *values: str) -> dict[str, object]:
    return {"key": key, "operator": operator, "values": list(values)}


PROD_EU = {"env": "prod", "region": "eu"}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (sel(), {}, True),
        (sel(), PROD_EU, True),
        (sel(matchLabels={"env": "prod"}), PROD_EU, True),
        (sel(matchLabels={"env": "dev"}), PROD_EU, False),
        (sel(matchLabels={"env": "prod", "tier": "x"}), PROD_EU, False),
        (sel(matchExpressions=[expr("region", "In", "eu", "us")]), PROD_EU, True),
        (sel(matchExpressions=[expr("region", "In", "us")]), PROD_EU, False),
        (sel(matchExpressions=[expr("zone", "In", "a")]), PROD_EU, False),
        (sel(matchExpressions=[expr("region", "NotIn", "us")]), PROD_EU, True),
        (sel(matchExpressions=[expr("region", "NotIn", "eu")]), PROD_EU, False),
        (sel(matchExpressions=[expr("zone", "NotIn", "a")]), PROD_EU, True),  # absent key
        (sel(matchExpressions=[expr("env", "Exists")]), PROD_EU, True),
        (sel(matchExpressions=[expr("zone", "Exists")]), PROD_EU, False),
        (sel(matchExpressions=[expr("zone", "DoesNotExist")]), PROD_EU, True),
        (sel(matchExpressions=[expr("env", "DoesNotExist")]), PROD_EU, False),
        # matchLabels AND matchExpressions
        (
            sel(matchLabels={"env": "prod"}, matchExpressions=[expr("region", "In", "us")]),
            PROD_EU,
            False,
        ),
        (
            sel(matchLabels={"env": "prod"}, matchExpressions=[expr("region", "In", "eu")]),
            PROD_EU,
            True,
        ),
    ],
)
def test_matching(selector: LabelSelector, labels: dict[str, str], expected: bool) -> None:
    assert compile_selector(selector).matches(labels) is expected
    assert selector_matches(selector, labels) is expected


def test_none_matches_everything() -> None:
    assert compile_selector(None).matches({}) and compile_selector(None).matches_everything


@pytest.mark.parametrize(
    "bad",
    [
        expr("a", "In"),
        expr("a", "NotIn"),
        expr("a", "Exists", "x"),
        expr("a", "DoesNotExist", "x"),
        expr("a", "Equals", "x"),
    ],
)
def test_invalid_requirements(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        sel(matchExpressions=[bad])
