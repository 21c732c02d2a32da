"""`successCondition`: the small expression language, parsed without eval()."""

from __future__ import annotations

import math

import pytest

from fleet.plugin import ConditionError, parse_condition

NAN = float("nan")


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("result < 0.05", 0.01, True),
        ("result < 0.05", 0.05, False),
        ("result <= 0.05", 0.05, True),
        ("result > 10", 11, True),
        ("result >= 10", 9.99, False),
        ("result == 1", 1.0, True),
        ("result != 1", 1.0, False),
        ("0.95 <= result", 0.99, True),  # the number may come first
        ("result[0] >= 0.95", 0.96, True),  # Argo Rollouts' spelling
        ("result > -1e-3", -0.0001, True),
        ("result > -1", -2, False),
        ("result > 1 and result < 2", 1.5, True),
        ("result > 1 and result < 2", 2.5, False),
        ("result > 1 && result < 2", 1.5, True),
        ("result < 1 or result > 2", 1.5, False),
        ("result < 1 || result > 2", 3, True),
        ("not result < 1", 0.5, False),
        ("!(result < 1)", 2, True),
        ("not (result > 1 and result < 2) or result == 1.5", 1.5, True),
        ("result > 1 or result < 0 and false", 2, True),  # and binds tighter than or
        ("(result > 1 or result < 0) and false", 2, False),
        ("true", 0, True),
        ("isNaN(result)", NAN, True),
        ("isNaN(result)", 0.1, False),
        ("isNaN(result) or result < 0.05", NAN, True),
        ("isInf(result)", math.inf, True),
        ("result < 0.05", NAN, False),  # IEEE 754: NaN compares false
        ("result != 0.05", NAN, True),
    ],
)
def test_conditions_hold_as_written(text: str, value: float, expected: bool) -> None:
    assert parse_condition(text).holds(value) is expected


def test_a_condition_says_whether_it_decides_nan_itself() -> None:
    assert parse_condition("isNaN(result) || result < 1").uses_nan
    assert not parse_condition("result < 1").uses_nan


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected a condition"),
        ("result <", "ends too early"),
        ("result = 1", "use == to compare"),
        ("result", "compares nothing"),
        ("0.5", "compares nothing"),
        ("rate < 1", "unknown name 'rate'"),
        ("__import__('os').system('true')", "unexpected character"),
        ("result.real < 1", "unexpected character '.'"),
        ("(result < 1) < 2", "needs a number"),
        ("result < 1 and 2", "needs a comparison"),
        ("not 1", "needs a comparison"),
        ("(result < 1", "expected ')'"),
        ("result < 1)", "unexpected ')'"),
        ("result[1] < 1", "expected '0'"),
        ("result < 1 result > 2", "unexpected 'result'"),
        ("result < 0.05 & true", "unexpected character '&'"),
        ("result * 100 < 5", "unexpected character '*'"),
        ("isNaN result", "expected '('"),
        ("x" * 501, "longer than 500"),
    ],
)
def test_what_is_not_a_condition_is_an_error_that_says_why(text: str, reason: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert reason in str(caught.value)


def test_the_text_is_kept_for_messages() -> None:
    assert str(parse_condition("  result < 0.05 ")) == "result < 0.05"
