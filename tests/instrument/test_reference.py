"""The reference against hand-worked values and the documented rules, with no TensorFlow anywhere."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from harness.case import Case, Options
from harness.dtypes import round_to
from harness.generate.grid import DEFAULT_SPECIAL_CASES, load_special_cases, special_expectations
from harness.judge.matching import record_facets
from harness.judge.registry import load_registry
from harness.oracle import expected


def case(y, p, *, input_dtype="float32", sw=None, loss_dtype=None, **options) -> Case:
    """A case from plain numbers, rounded to ``input_dtype`` as a user's tensors would be."""
    return Case(
        id="t",
        y_true=round_to(np.asarray(y, dtype=np.float64), input_dtype),
        y_pred=round_to(np.asarray(p, dtype=np.float64), input_dtype),
        true_dtype=input_dtype,
        pred_dtype=input_dtype,
        sample_weight=None if sw is None else round_to(np.asarray(sw, dtype=np.float64), "float32"),
        options=Options(dtype=loss_dtype, **options),
    )


def value(c: Case) -> np.ndarray:
    e = expected(c)
    assert e.raises is None, e.raises
    return np.asarray(e.value, dtype=np.float64)


def bce(y: float, p: float) -> float:
    """The textbook formula, written out independently of the reference."""
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


SPECIAL = {c.id: c for c in load_special_cases()}
EXPECT = special_expectations(DEFAULT_SPECIAL_CASES)


@pytest.mark.parametrize("case_id", sorted(EXPECT))
def test_special_case_hand_worked_value(case_id):
    want = np.asarray([float(v) for v in np.ravel(EXPECT[case_id])] if isinstance(EXPECT[case_id], list) else float(EXPECT[case_id]))
    got = np.asarray(expected(SPECIAL[case_id]).value, dtype=np.float64).reshape(want.shape)
    # the hand values use float64 inputs (0.9, not float32(0.9)): relative 1e-6 covers that rounding
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0, equal_nan=True)


def test_every_special_case_is_loaded():
    text = DEFAULT_SPECIAL_CASES.read_text()
    assert sum(line.strip() == "[[case]]" for line in text.splitlines()) == len(SPECIAL)


def test_seed1_manual_probabilities_agree():
    # verify-bce write-up, first example: [[1],[0],[1]] against [[.9],[.2],[.8]], mean over the batch
    got = value(case([[1.0], [0.0], [1.0]], [[0.9], [0.2], [0.8]], reduction="sum_over_batch_size"))
    want = (bce(1, 0.9) + bce(0, 0.2) + bce(1, 0.8)) / 3
    assert got == pytest.approx(want, rel=1e-6)


def test_seed2_rank1_reduction_none_is_already_a_scalar():
    # The second write-up asks for Reduction.NONE on rank-1 inputs and expects one loss per sample; the
    # mean over axis=-1 of a rank-1 batch is the whole batch, so the unreduced result is one number.
    got = value(case([1.0, 0.0, 1.0, 0.0], [0.9, 0.1, 0.6, 0.4], reduction=None))
    assert got.shape == ()
    assert float(got) == pytest.approx((2 * bce(1, 0.9) + 2 * bce(1, 0.6)) / 4, rel=1e-6)


def test_seed2_label_smoothing_is_squeezed_towards_one_half():
    # The write-up smooths with y (1 - ls) + ls (1 - y) = 0.9/0.1 and says Keras has no smoothing; Keras
    # has it built in, as y (1 - ls) + ls / 2 = 0.95/0.05.
    got = float(value(case([1.0, 0.0], [0.9, 0.1], label_smoothing=0.1, reduction="sum_over_batch_size")))
    keras = (bce(0.95, 0.9) + bce(0.05, 0.1)) / 2
    writeup = (bce(0.9, 0.9) + bce(0.1, 0.1)) / 2
    assert got == pytest.approx(keras, rel=1e-6)
    assert abs(got - writeup) > 1e-3


def test_seed_logits_use_the_sigmoid_not_the_raw_logit():
    x = [2.0, -2.0, 1.0, -1.0]
    got = float(value(case([1.0, 0.0, 1.0, 0.0], x, from_logits=True, reduction="sum_over_batch_size")))
    sig = [1 / (1 + math.exp(-v)) for v in x]
    assert got == pytest.approx(np.mean([bce(1, sig[0]), bce(0, sig[1]), bce(1, sig[2]), bce(0, sig[3])]), rel=1e-6)


def test_clip_bounds_are_those_of_the_compute_dtype():
    f32 = value(case([[1.0]], [[0.0]]))
    f16 = value(case([[1.0]], [[0.0]], input_dtype="float16", loss_dtype="float16"))
    assert float(f32) == pytest.approx(-math.log(np.float32(1e-7)), rel=1e-12)
    assert float(f16) == pytest.approx(23 * math.log(2), rel=1e-12)  # float16(1e-7) == 2**-23


def test_zero_weight_times_log_zero_is_zero():
    # float16: the upper clip is 1.0, so log(1 - p) = -inf, but its weight 1 - y is 0
    assert float(value(case([[1.0]], [[1.0]], input_dtype="float16", loss_dtype="float16"))) == 0.0
    assert math.isinf(float(value(case([[0.0]], [[1.0]], input_dtype="float16", loss_dtype="float16"))))


def test_infinite_logits_take_the_limit():
    got = value(case([[1.0], [0.0], [0.0], [1.0]], [[math.inf], [-math.inf], [math.inf], [-math.inf]], from_logits=True, reduction=None))
    assert got.tolist() == [0.0, 0.0, math.inf, math.inf]


def test_large_logits_are_exact_not_clipped():
    got = value(case([[1.0]], [[-1e4]], from_logits=True, reduction=None))
    assert got.tolist() == [pytest.approx(1e4, rel=1e-12)]


def test_mean_over_axis_and_shape():
    y = np.array([[[1, 0], [0, 1], [1, 1]]], dtype=float)  # (1, 3, 2)
    p = np.full((1, 3, 2), 0.25)
    assert value(case(y, p, reduction=None)).shape == (1, 3)
    assert value(case(y, p, reduction=None, axis=1)).shape == (1, 2)
    assert value(case(y, p, reduction=None, axis=0)).shape == (3, 2)
    got = value(case(y, p, reduction=None, axis=1))
    assert got[0, 0] == pytest.approx((bce(1, 0.25) + bce(0, 0.25) + bce(1, 0.25)) / 3, rel=1e-12)


@pytest.mark.parametrize(
    "y_shape, p_shape, want",
    [((4,), (4, 1), (4,)), ((4, 1), (4,), (4,)), ((4, 3, 1), (4, 3), (4,)), ((4, 3), (4, 3, 1), (4,))],
)
def test_rank_reconciliation_of_a_trailing_one(y_shape, p_shape, want):
    got = value(case(np.ones(y_shape), np.full(p_shape, 0.5), reduction=None))
    assert got.shape == want


def test_reductions():
    y = np.array([[1.0, 0.0], [0.0, 0.0]])
    p = np.array([[0.6, 0.3], [0.2, 0.8]])
    per_sample = np.array([(bce(1, 0.6) + bce(0, 0.3)) / 2, (bce(0, 0.2) + bce(0, 0.8)) / 2])
    w = np.array([0.8, 0.2])
    for red, want in [
        ("sum", per_sample.sum()),
        ("sum_over_batch_size", per_sample.mean()),
        ("mean", per_sample.mean()),
        ("mean_with_sample_weight", per_sample.mean()),
        ("none", per_sample),
        (None, per_sample),
    ]:
        np.testing.assert_allclose(value(case(y, p, reduction=red)), want, rtol=1e-6)
    np.testing.assert_allclose(value(case(y, p, sw=w, reduction="sum")), (w * per_sample).sum(), rtol=1e-6)
    np.testing.assert_allclose(value(case(y, p, sw=w, reduction="sum_over_batch_size")), (w * per_sample).mean(), rtol=1e-6)
    np.testing.assert_allclose(
        value(case(y, p, sw=w, reduction="mean_with_sample_weight")), (w * per_sample).sum() / w.sum(), rtol=1e-6
    )
    # a scalar weight scales every sample: the weighted mean is the plain mean
    np.testing.assert_allclose(value(case(y, p, sw=2.5, reduction="mean_with_sample_weight")), per_sample.mean(), rtol=1e-6)
    np.testing.assert_allclose(value(case(y, p, sw=2.5, reduction="sum")), 2.5 * per_sample.sum(), rtol=1e-6)
    # all-zero weights: divide_no_nan gives 0
    assert float(value(case(y, p, sw=[0.0, 0.0], reduction="mean_with_sample_weight"))) == 0.0


def test_batch_weights_scale_samples_of_a_rank2_loss():
    y = np.ones((2, 3, 4))
    p = np.full((2, 3, 4), 0.7)
    got = value(case(y, p, sw=[1.0, 2.0], reduction=None))
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got[1], 2 * got[0], rtol=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "sum_over_batch_size", "mean", "mean_with_sample_weight"])
def test_empty_batch_reduces_to_scalar_zero(reduction):
    got = value(case(np.zeros((0, 3)), np.zeros((0, 3)), reduction=reduction))
    assert got.shape == () and float(got) == 0.0


@pytest.mark.parametrize(
    "c, fragment",
    [
        (case([[1.0]], [[0.5]], reduction="avg"), "reduction='avg'"),
        (case(np.ones((2, 3)), np.full((2, 2), 0.5)), "differ"),
        (case(np.ones((2, 3)), np.full((2, 3), 0.5), sw=[1.0, 2.0, 3.0]), "broadcast"),
        (case(np.ones((2, 3)), np.full((2, 3), 0.5), axis=2), "axis=2"),
    ],
    ids=["unknown reduction", "mismatched shapes", "unbroadcastable weights", "axis out of range"],
)
def test_calls_that_must_raise(c, fragment):
    e = expected(c)
    assert e.value is None and fragment in e.raises


def test_bounds_are_finite_wherever_the_expected_value_is(default_cases):
    # A check that cannot fail is a defect: a finite expected value with an infinite bound would be
    # reported as 'unbounded', never as a pass; the default suite must have none, except where a
    # registered divergence says why (subnormal-weights-zero-divisor: every weight flushed, the divisor may be 0).
    registry = load_registry()
    for c in default_cases:
        e = expected(c)
        entry = registry.find(record_facets(c, e, "keras3"))
        if e.value is not None and not (entry and "unbounded" in entry.kinds):
            v = np.asarray(e.value, dtype=np.float64)
            b = np.asarray(e.bound, dtype=np.float64)
            assert np.all(np.isfinite(b[np.isfinite(v)])), c.id


def test_bounds_are_tight_for_typical_float32():
    # the bound of a typical float32 loss is a few ULP, not a blanket tolerance
    e = expected(case([[1.0, 0.0, 1.0]], [[0.3, 0.4, 0.9]], reduction=None))
    ulp = np.spacing(np.float32(e.value[0]))
    assert float(e.bound[0]) < 8 * float(ulp)


def test_reference_never_imports_tensorflow():
    code = (
        "import sys; import harness.oracle.keras3, harness.generate.grid, harness.judge.compare, harness.report.summary, harness.judge.registry; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("profile", ["keras3", "keras2"])
def test_stacked_expectations_equal_each_case_s_own(default_cases, profile):
    # evaluate.expectations computes stackable cases in one vectorised call; row by row it must give exactly
    # what one call per case gives, value and bound, or the speed would change the verdicts.
    from harness.run.evaluate import expectations
    from harness.stacking import batch_key

    stackable = [c for c in default_cases if batch_key(c) is not None]
    assert len(stackable) > 100
    for c, got in zip(stackable, expectations(stackable, profile), strict=True):
        want = expected(c, profile=profile)
        if want.value is None:  # a call the profile says must raise: it raises stacked too, case by case
            assert isinstance(got, Exception) or got.raises == want.raises, c.id
            continue
        assert got.dtype == want.dtype and got.value.shape == want.value.shape, c.id
        assert np.array_equal(got.value, want.value, equal_nan=True), c.id
        assert np.array_equal(got.bound, want.bound, equal_nan=True), c.id


def test_a_stacked_expectation_that_raises_is_retried_case_by_case(default_cases):
    from harness.run.evaluate import expectations
    from harness.stacking import batch_key

    first = next(c for c in default_cases if batch_key(c) is not None)
    group = [c for c in default_cases if batch_key(c) == batch_key(first)][:3]
    assert len(group) == 3

    def oracle(case, *, profile):
        if case.id == group[1].id or case.y_true.ndim > first.y_true.ndim:  # the stacked call and one case
            raise ValueError(case.id)
        return expected(case, profile=profile)

    got = expectations(group, "keras3", oracle=oracle)
    assert isinstance(got[1], ValueError) and str(got[1]) == group[1].id
    assert np.array_equal(got[0].value, expected(group[0]).value, equal_nan=True)
    assert np.array_equal(got[2].value, expected(group[2]).value, equal_nan=True)
