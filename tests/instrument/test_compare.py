"""The comparator on hand-made expectations and outcomes: every phase, the message, the statistics.

No TensorFlow and no reference here: ``Expected`` and ``Outcome`` are built directly, so each test states
exactly what the two sides said and which phase must catch the difference.  ``compare_many``, the vectorised
comparator, must give exactly what ``compare`` gives, record by record: on crafted groups, on the default
suite's expectations (the reference, no TensorFlow) and on a planted fault.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

import harness.judge.compare
from harness.case import Case, Expected, Outcome
from harness.dtypes import FLOAT_DTYPES, float_format, round_to
from harness.judge.compare import KINDS, Comparison, compare, compare_many

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
    from harness.judge.registry import Divergence
    from harness.run.runner import verdict

    case = Case(id="t", y_true=np.array([1.0, 0.0]), y_pred=np.array([0.5, 0.5]), true_dtype="float32", pred_dtype="float32")
    exp = Expected(value=np.array([0.0, 1.0]), bound=np.array([1e-6, 1e-6]), dtype="float32", rule="r")
    out = Outcome(value=np.array([np.nan, 1.5]), dtype="float32")
    comparison = compare(case, exp, out)
    assert comparison.kinds == ("nan_inf", "tolerance")
    known_nan = Divergence("n", "t", "r", ("e",), frozenset({"nan_inf"}), {"id": "*"})
    assert verdict(comparison, known_nan)[0] == "fail"
    only_nan = compare(case, exp, Outcome(value=np.array([np.nan, 1.0]), dtype="float32"))
    assert only_nan.kinds == ("nan_inf",) and verdict(only_nan, known_nan)[0] == "xfail"


# --- compare_many: the vectorised comparator equals compare, record by record --------------------------------


def many_case(j: int) -> Case:
    return Case(
        id=f"compare/many/{j}", y_true=np.zeros(1), y_pred=np.zeros(1), true_dtype="float32", pred_dtype="float32"
    )


def assert_many_equals_compare(
    monkeypatch: pytest.MonkeyPatch, cases: list[Case], expecteds: list[Expected], outcomes: list[Outcome]
) -> list[Comparison]:
    """compare_many equals compare on every record, and hands compare exactly the records that are not
    agreeing values of one shape and dtype (those the vectorised pass must judge itself)."""
    scalar: list[str] = []

    def counting_compare(case: Case, exp: Expected, out: Outcome) -> Comparison:
        scalar.append(case.id)
        return compare(case, exp, out)

    with monkeypatch.context() as m:
        m.setattr(harness.judge.compare, "compare", counting_compare)
        many = compare_many(cases, expecteds, outcomes)
    assert len(many) == len(cases)
    not_vectorised = []
    for case, exp, out, got_many in zip(cases, expecteds, outcomes, many, strict=True):
        assert got_many == compare(case, exp, out), case.id
        one_shape = np.shape(exp.value) == np.shape(exp.bound) == np.shape(out.value)
        if not (got_many.agrees and exp.raises is None and out.error is None and exp.dtype == out.dtype and one_shape):
            not_vectorised.append(case.id)
    assert scalar == not_vectorised
    return many


def dtype_group(dtype: str) -> list[tuple[Expected, Outcome]]:
    """Rows of (4, 3) values rounded to ``dtype`` within a bound of 4 unit roundoffs, the last row 64 off."""
    u = float_format(dtype).unit_roundoff
    rng = np.random.default_rng(FLOAT_DTYPES.index(dtype))
    rows = []
    for j in range(5):
        e = rng.uniform(-3.0, 3.0, (4, 3))
        a = round_to(e * (1 + 64 * u) if j == 4 else e, dtype)
        rows.append((want(e, bound=4 * u * np.abs(e), dtype=dtype), got(a, dtype=dtype)))
    return rows


SCALAR_BOUND = Expected(value=np.array([1.0, 2.0]), bound=np.array(0.5), dtype="float32", rule="scalar bound")
AGREE_12 = [(want(np.full((12, 1), 0.5 + j), bound=2.0**-20), got(np.full((12, 1), 0.5 + j))) for j in range(4)]
GROUPS = {
    "agreeing rows": [(want([[0.25, 1.0, 2.0]] * 4, bound=2.0**-23), got([[0.25, ONE_UP, 2.0]] * 4)) for _ in range(3)],
    "tolerance in one row of several": [
        *AGREE_12[:2],
        (want(np.ones((12, 1)), bound=2.0**-24), got(np.full((12, 1), ONE_UP))),
        *AGREE_12[2:],
    ],
    "nan_inf": [
        (want([1.0, math.nan]), got([math.nan, 1.0])),
        (want([math.inf, 1.0]), got([-math.inf, 1.0])),
        (want([math.inf, 1.0]), got([3.4e38, 1.0])),
        (want([math.nan, -math.inf]), got([math.nan, -math.inf])),
    ],
    "nan_inf and tolerance": [
        (want([math.nan, 1.0], bound=1e-6), got([1.0, 1.5])),
        (want([1.0, 1.0], bound=1e-6), got([math.nan, 1.0])),
        (want([1.0, 1.0], bound=1e-6), got([1.0, 1.0])),
    ],
    "unbounded": [
        (want([1.0, 2.0], bound=[math.inf, 0.0]), got([1.0, 2.0])),
        (want([1.0, 2.0], bound=[math.nan, 0.0]), got([1.0, 2.0])),
        (want([math.inf, 2.0], bound=[math.inf, 0.0]), got([math.inf, 2.0])),
        (want([1.0, 1.0], bound=[math.inf, 0.0]), got([1.0, 5.0])),
    ],
    "shape mismatch": [*AGREE_12[:2], (want(np.ones((12, 1))), got(np.ones(12))), (want(0.5), got([]))],
    "dtype mismatch": [*AGREE_12[:2], (want(np.ones((12, 1))), got(np.ones((12, 1)), dtype="float64"))],
    "raised on one side or both": [
        (RAISES, got([0.5])),
        (want([0.5]), ERROR),
        (RAISES, ERROR),
        (want([0.5]), got([0.5])),
    ],
    "0-d": [
        (want(1.0, bound=2.0**-23), got(ONE_UP)),
        (want(1.0, bound=0.0), got(ONE_UP)),
        (want(1.0), got(math.nan)),
        (want(1.0, bound=math.inf), got(1.0)),
        (want(0.0, bound=0.0), got(2.0**-149)),
        (want(2.0, bound=1.0), got(2.5)),
    ],
    "empty": [
        (want(np.zeros(0)), got(np.zeros(0))),
        (want(np.zeros((0, 3))), got(np.zeros((0, 3)))),
        (want(np.zeros((0, 3))), got(np.zeros((0, 3)))),
    ],
    "+0 and -0": [(want([0.0, -0.0]), got([-0.0, 0.0])), (want(-0.0), got(0.0)), (want(0.0), got(0.0))],
    "bound of another shape": [(SCALAR_BOUND, got([1.25, 2.0])), (SCALAR_BOUND, got([1.0, 3.0]))],
    "float64 far apart": [(want([1e300, 1.0], bound=1e301, dtype="float64"), got([-1e300, 1.0], dtype="float64"))],
    **{f"dtype {dtype}": dtype_group(dtype) for dtype in FLOAT_DTYPES},
}
GROUPS["all groups in one call"] = [row for rows in GROUPS.values() for row in rows]


@pytest.mark.parametrize("rows", [pytest.param(rows, id=name) for name, rows in GROUPS.items()])
def test_compare_many_equals_compare_on_crafted_groups(
    monkeypatch: pytest.MonkeyPatch, rows: list[tuple[Expected, Outcome]]
) -> None:
    cases = [many_case(j) for j in range(len(rows))]
    assert_many_equals_compare(monkeypatch, cases, [e for e, _ in rows], [o for _, o in rows])


def test_crafted_groups_reach_every_verdict() -> None:
    """The table above is only a test if it has rows of every kind the comparator gives, agreement included."""
    rows = GROUPS["all groups in one call"]
    verdicts = [compare(CASE, e, o) for e, o in rows]
    assert {c.kind for c in verdicts} == {None, "exception", "shape", "dtype", "nan_inf", "tolerance", "unbounded"}
    assert any(c.also == ("tolerance",) for c in verdicts)


def test_compare_many_equals_compare_on_the_default_suite(
    monkeypatch: pytest.MonkeyPatch, default_cases: list[Case]
) -> None:
    """The reference's expectations of the default suite against synthetic outcomes: the expected values
    rounded to the compute dtype, with every 37th record pushed far off and every 53rd given a NaN."""
    from harness.oracle import expected

    cases, expecteds, outcomes = [], [], []
    for j, case in enumerate(default_cases):
        try:
            exp = expected(case)
        except Exception:  # noqa: BLE001, S112 - a reference error is a record of its own, never compared
            continue
        if exp.raises is not None or exp.outside is not None:  # (outside: any outcome; no verdict)
            out = Outcome(error="ValueError: planted")
        else:
            a = np.array(round_to(exp.value, exp.dtype), dtype=np.float64)
            flat = a.reshape(-1)
            if flat.size and j % 37 == 0:
                flat[0] = round_to(flat[0] * 1.0625 + 0.0625, exp.dtype)
            if flat.size and j % 53 == 0:
                flat[-1] = math.nan
            out = Outcome(value=a, dtype=exp.dtype)
        cases.append(case)
        expecteds.append(exp)
        outcomes.append(out)
    many = assert_many_equals_compare(monkeypatch, cases, expecteds, outcomes)
    assert {None, "tolerance", "nan_inf"} <= {c.kind for c in many}
    assert any("raised as expected" in c.message for c in many)


def test_compare_many_reports_a_planted_fault_in_a_large_agreeing_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """One wrong element among 500 agreeing (12, 1) records: that record, and only that one, fails on tolerance
    (and only it goes through the scalar compare: the vectorised pass judged the others)."""
    rng = np.random.default_rng(5)
    values = round_to(rng.uniform(0.0, 4.0, (500, 12, 1)), "float32")
    wrong = values[317].copy()
    wrong[5, 0] += 2.0**-10
    cases = [many_case(j) for j in range(500)]
    expecteds = [want(v, bound=2.0**-20) for v in values]
    outcomes = [got(wrong if j == 317 else v) for j, v in enumerate(values)]
    many = assert_many_equals_compare(monkeypatch, cases, expecteds, outcomes)
    assert many[317].kind == "tolerance" and many[317].mismatched == 1
    assert f"case: {cases[317].id}" in many[317].message.splitlines()
    assert " (5, 0): " in many[317].message
    assert [j for j, c in enumerate(many) if not c.agrees] == [317]


def test_evaluate_compares_a_job_in_one_call_and_falls_back_record_by_record(
    monkeypatch: pytest.MonkeyPatch, default_cases: list[Case]
) -> None:
    """evaluate.evaluate: a record whose reference raised is an error record and is not compared; the others get
    compare's verdict from one compare_many call, and if that call raises, from one compare per record, each
    with its own error handling."""
    from harness.oracle import expected
    from harness.run import evaluate as evaluation
    from harness.stacking import batch_key

    jobs = list(enumerate(default_cases[:60]))
    assert batch_key(jobs[18][1]) is None  # the oracle is called on this case alone, not on a stack of cases
    broken = jobs[18][1].id

    def oracle(case: Case, profile: str) -> Expected:
        if case.id == broken:
            raise KeyError("planted")
        return expected(case, profile=profile)

    class Echo:
        """A target that returns the reference's values rounded to the compute dtype, and raises where it must."""

        def run_many(self, cases: list[Case]) -> list[Outcome]:
            exps = [expected(case) for case in cases]
            return [
                Outcome(error="ValueError: planted")
                if e.raises
                else Outcome(value=round_to(e.value, e.dtype), dtype=e.dtype)
                for e in exps
            ]

    compared: list[str] = []

    def spy(cases: list[Case], expecteds: list[Expected], outcomes: list[Outcome]) -> list[Comparison]:
        compared.extend(case.id for case in cases)
        return compare_many(cases, expecteds, outcomes)

    monkeypatch.setattr(evaluation, "compare_many", spy)
    results = evaluation.evaluate(jobs, Echo(), "keras3", oracle=oracle)
    assert compared == [case.id for _, case in jobs if case.id != broken]
    assert results[18].expected is None and results[18].comparison.kind == "error"
    assert "internal error in the reference: KeyError: 'planted'" in results[18].comparison.message
    for r in results[:18] + results[19:]:
        assert r.comparison == compare(jobs[r.index][1], r.expected, r.outcome)
    assert len({r.seconds["compare"] for r in results}) == 1

    def failing(*args: object) -> list[Comparison]:
        raise RuntimeError("compare_many planted")

    def compare_failing_on_20(case: Case, exp: Expected, out: Outcome) -> Comparison:
        if case.id == jobs[20][1].id:
            raise ValueError("planted")
        return compare(case, exp, out)

    monkeypatch.setattr(evaluation, "compare_many", failing)
    monkeypatch.setattr(evaluation, "compare", compare_failing_on_20)
    fallback = evaluation.evaluate(jobs, Echo(), "keras3", oracle=oracle)
    assert fallback[20].comparison.kind == "error"
    assert "internal error in the comparator: ValueError('planted')" in fallback[20].comparison.message
    assert [r.comparison for r in fallback[:20] + fallback[21:]] == [r.comparison for r in results[:20] + results[21:]]
