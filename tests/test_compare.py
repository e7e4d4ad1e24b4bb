"""The comparator on hand-made expectations and outcomes: every phase, the message, the statistics.

No TensorFlow and no reference here: ``Expected`` and ``Outcome`` are built directly, so each test states
exactly what the two sides said and which phase must catch the difference.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from harness.case import Case, Expected, Outcome
from harness.compare import KINDS, compare

CASE = Case(id="compare/probe", y_true=np.zeros(3), y_pred=np.zeros(3), true_dtype="float32", pred_dtype="float32")
ONE_UP = float(np.nextafter(np.float32(1.0), np.float32(2.0)))  # 1 + 2**-23, the float32 after 1.0
ROW = re.compile(r"^ \(.*\): ", re.MULTILINE)  # one printed mismatch row: " (i, j): actual, expected, ..."


def want(value: object, bound: object = 0.0, dtype: str = "float32", rule: str = "test rule") -> Expected:
    """An expected value with an elementwise bound (a scalar bound is spread over the value's shape)."""
    v = np.asarray(value, dtype=np.float64)
    b = np.broadcast_to(np.asarray(bound, dtype=np.float64), v.shape).copy()
    return Expected(value=v, bound=b, dtype=dtype, rule=rule)


def got(value: object, dtype: str = "float32") -> Outcome:
    return Outcome(value=np.asarray(value, dtype=np.float64), dtype=dtype)


RAISES = Expected(raises="reduction='avg' is not a supported reduction", dtype="float32")
ERROR = Outcome(error="ValueError: Invalid value for argument `reduction`")


@pytest.mark.parametrize(
    "expected, outcome, kind",
    [
        pytest.param(RAISES, got([0.5]), "exception", id="expected raise, value returned"),
        pytest.param(want([0.5]), ERROR, "exception", id="value expected, error raised"),
        pytest.param(RAISES, ERROR, None, id="both raise"),
        pytest.param(want([0.5, 0.5]), got([[0.5, 0.5]]), "shape", id="shape (2,) vs (1, 2)"),
        pytest.param(want(0.5), got([]), "shape", id="shape () vs (0,)"),
        pytest.param(want([0.5]), got([0.5], dtype="float64"), "dtype", id="dtype float64 vs float32"),
        pytest.param(want([1.0, math.nan]), got([math.nan, 1.0]), "nan_inf", id="NaN at a different place"),
        pytest.param(want([1.0]), got([math.nan], dtype="float32"), "nan_inf", id="NaN where a number is expected"),
        pytest.param(want([math.inf]), got([-math.inf]), "nan_inf", id="+inf vs -inf"),
        pytest.param(want([math.inf]), got([3.4e38]), "nan_inf", id="finite vs +inf"),
        pytest.param(want([1.0], bound=2.0**-24), got([ONE_UP]), "tolerance", id="outside the bound by half"),
        pytest.param(want([1.0], bound=2.0**-23), got([ONE_UP]), None, id="exactly at the bound"),
        pytest.param(want([1.0], bound=math.inf), got([1.0]), "unbounded", id="infinite bound on a finite value"),
        pytest.param(want([1.0], bound=math.nan), got([1.0]), "unbounded", id="NaN bound on a finite value"),
        pytest.param(want([math.inf], bound=math.inf), got([math.inf]), None, id="infinite bound on an infinite value"),
        pytest.param(want([0.25, math.nan, -math.inf]), got([0.25, math.nan, -math.inf]), None, id="agreement"),
        pytest.param(want([0.0]), got([-0.0]), None, id="-0.0 agrees with +0.0"),
    ],
)
def test_phase_and_kind(expected: Expected, outcome: Outcome, kind: str | None) -> None:
    c = compare(CASE, expected, outcome)
    assert c.kind == kind, c.message
    assert c.agrees is (kind is None)
    assert kind is None or kind in KINDS
    assert f"case: {CASE.id}" in c.message.splitlines()


@pytest.mark.parametrize(
    "expected, outcome, kind",
    [
        pytest.param(want([1.0, 2.0]), got([[1.0, 2.0]], dtype="float64"), "shape", id="shape before dtype"),
        pytest.param(want([math.nan, 1.0]), got([1.0, 5.0]), "nan_inf", id="nan_inf before tolerance"),
        pytest.param(
            want([1.0, 1.0], bound=[math.inf, 0.0]), got([1.0, 5.0]), "unbounded", id="unbounded before tolerance"
        ),
    ],
)
def test_first_failing_phase_names_the_kind(expected: Expected, outcome: Outcome, kind: str) -> None:
    assert compare(CASE, expected, outcome).kind == kind


def test_exception_messages_say_which_side_raised() -> None:
    assert "TensorFlow raised ValueError" in compare(CASE, want([0.5]), ERROR).message
    assert "expected an error (reduction='avg'" in compare(CASE, RAISES, got([0.5])).message


def test_mismatch_message_is_numpy_style() -> None:
    e = want(np.ones((2, 3)), bound=0.25, rule="u=2**-24, c_lib=2")
    a = np.ones((2, 3))
    a[0, 1] = 1.5
    a[1, 2] = 0.5
    c = compare(CASE, e, got(a))
    assert c.kind == "tolerance" and (c.mismatched, c.total) == (2, 6)
    lines = c.message.splitlines()
    assert lines[0] == "Not equal to tolerance (u=2**-24, c_lib=2)"
    assert f"case: {CASE.id}" in lines
    assert "Mismatched elements: 2 / 6 (33.3%)" in lines
    # index: actual, expected, |diff|, bound, ULP (1.5 is 2**22 float32 steps above 1.0)
    assert " (0, 1): 1.5, 1, 0.5, 0.25, 4194304" in lines
    assert " (1, 2): 0.5, 1, 0.5, 0.25, 8388608" in lines
    assert "Max absolute difference among finite values: 0.5" in lines
    assert "more" not in c.message


@pytest.mark.parametrize("k, rows, more", [(5, 5, None), (6, 5, 1), (12, 5, 7), (1, 1, None)])
def test_message_prints_at_most_five_rows(k: int, rows: int, more: int | None) -> None:
    a = np.full(20, 1.0)
    a[:k] = 2.0
    c = compare(CASE, want(np.ones(20), bound=0.5), got(a))
    assert c.kind == "tolerance" and c.mismatched == k
    assert f"Mismatched elements: {k} / 20" in c.message
    assert len(ROW.findall(c.message)) == rows
    if more is None:
        assert "more" not in c.message
    else:
        assert f" ... {more} more" in c.message.splitlines()


def test_nan_inf_message_rows_point_at_the_bad_places() -> None:
    c = compare(CASE, want([1.0, 2.0, math.inf]), got([1.0, math.nan, -math.inf]))
    assert c.kind == "nan_inf" and c.mismatched == 2
    assert "NaN/inf location mismatch" in c.message
    assert "Mismatched elements: 2 / 3" in c.message
    assert [line.split(":")[0] for line in ROW.findall(c.message)] == [" (1,)", " (2,)"]
    assert " (1,): nan, 2," in c.message and " (2,): -inf, inf," in c.message


def test_statistics_on_a_passing_comparison() -> None:
    c = compare(CASE, want([1.0, 0.5], bound=2.0**-23), got([ONE_UP, 0.5]))
    assert c.agrees
    assert c.max_ulp == 1
    assert c.max_abs == 2.0**-23
    assert c.max_rel == 2.0**-23
    assert (c.mismatched, c.total) == (0, 2)


def test_statistics_skip_elements_that_are_not_finite() -> None:
    c = compare(CASE, want([math.nan, math.inf, 2.0], bound=1.0), got([math.nan, math.inf, 2.5]))
    assert c.agrees
    assert (c.max_abs, c.max_rel) == (0.5, 0.25)
    assert c.max_ulp == 2**21  # 2.5 is 2**21 float32 steps above 2.0 (spacing 2**-22)


def test_statistics_are_measured_on_failures_too() -> None:
    c = compare(CASE, want([1.0, 4.0], bound=0.0), got([1.0, 5.0]))
    assert c.kind == "tolerance"
    assert (c.max_abs, c.max_rel, c.max_ulp) == (1.0, 0.25, 2**21)


def test_ulps_are_counted_in_the_expected_dtype() -> None:
    c = compare(CASE, want([1.0], bound=1.0, dtype="float16"), got([1.0 + 2.0**-9], dtype="float16"))
    assert c.agrees and c.max_ulp == 2


def test_zero_expected_value_has_infinite_relative_difference() -> None:
    c = compare(CASE, want([0.0], bound=0.0), got([2.0**-149]))
    assert c.kind == "tolerance" and c.max_rel == math.inf and c.max_ulp == 1


def test_empty_arrays_agree() -> None:
    c = compare(CASE, want(np.zeros((0, 3))), got(np.zeros((0, 3))))
    assert c.agrees and c.total == 0 and (c.max_abs, c.max_rel, c.max_ulp) == (0.0, 0.0, 0)


class TestZeroDimensional:
    """A reduced loss is a 0-d array: every phase must work without an index."""

    def test_agreement(self) -> None:
        c = compare(CASE, want(1.0, bound=2.0**-23), got(ONE_UP))
        assert c.agrees and c.total == 1 and c.max_ulp == 1

    def test_tolerance_row_has_an_empty_index(self) -> None:
        c = compare(CASE, want(1.0, bound=0.0), got(ONE_UP))
        assert c.kind == "tolerance"
        assert "Mismatched elements: 1 / 1 (100%)" in c.message
        assert " (): 1.00000012, 1, 1.1920929e-07, 0, 1" in c.message.splitlines()

    def test_nan_inf(self) -> None:
        c = compare(CASE, want(1.0), got(math.nan))
        assert c.kind == "nan_inf" and " (): nan, 1," in c.message

    def test_unbounded(self) -> None:
        assert compare(CASE, want(1.0, bound=math.inf), got(1.0)).kind == "unbounded"


def test_as_dict_is_json_safe() -> None:
    c = compare(CASE, want([0.0], bound=0.0), got([1.0]))
    d = c.as_dict()
    assert d["max_rel"] == "inf"
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_a_nan_mismatch_still_reports_wrong_finite_values() -> None:
    """A registered NaN at one position must not hide a wrong value at another (the record fails)."""
    from harness.registry import Divergence
    from harness.runner import verdict

    case = Case(id="t", y_true=np.array([1.0, 0.0]), y_pred=np.array([0.5, 0.5]), true_dtype="float32", pred_dtype="float32")
    exp = Expected(value=np.array([0.0, 1.0]), bound=np.array([1e-6, 1e-6]), dtype="float32", rule="r")
    out = Outcome(value=np.array([np.nan, 1.5]), dtype="float32")
    comparison = compare(case, exp, out)
    assert comparison.kinds == ("nan_inf", "tolerance")
    known_nan = Divergence("n", "t", "r", ("e",), frozenset({"nan_inf"}), {"id": "*"})
    assert verdict(comparison, known_nan)[0] == "fail"
    only_nan = compare(case, exp, Outcome(value=np.array([np.nan, 1.0]), dtype="float32"))
    assert only_nan.kinds == ("nan_inf",) and verdict(only_nan, known_nan)[0] == "xfail"
