"""The keras2 profile against hand-worked values and the Keras 2 docstrings' own examples; no TensorFlow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.case import Case, Options
from harness.dtypes import round_to
from harness.oracle import expected

EPS32 = float(np.float32(1e-7))  # epsilon() as float32 holds it
EPS16 = 2.0**-23  # float16(1e-7): the subnormal 2**-23


def case(y, p, *, input_dtype="float32", true_dtype=None, sw=None, **options) -> Case:
    options.setdefault("reduction", "none")
    return Case(
        id="t",
        y_true=round_to(np.asarray(y, dtype=np.float64), true_dtype or input_dtype),
        y_pred=round_to(np.asarray(p, dtype=np.float64), input_dtype),
        true_dtype=true_dtype or input_dtype,
        pred_dtype=input_dtype,
        sample_weight=None if sw is None else round_to(np.asarray(sw, dtype=np.float64), "float32"),
        options=Options(**options),
    )


def value(c: Case, profile: str = "keras2") -> np.ndarray:
    e = expected(c, profile=profile)
    assert e.raises is None, e.raises
    return np.asarray(e.value, dtype=np.float64)


def raises(c: Case, profile: str = "keras2") -> str:
    e = expected(c, profile=profile)
    assert e.raises is not None, f"expected an error, got {e.value}"
    return e.raises


@pytest.mark.parametrize(
    "y, p, input_dtype, want",
    [
        pytest.param(1.0, 0.0, "float32", -math.log(2 * EPS32), id="y=1, p=0, float32: -log(2 eps)"),
        pytest.param(0.0, 1.0, "float32", -math.log(2.0**-23 + EPS32), id="y=0, p=1, float32: -log(2**-23 + eps)"),
        pytest.param(1.0, 1.0, "float32", -math.log(1 - 2.0**-23 + EPS32), id="y=1, p=1, float32: -log(1 - 2**-23 + eps)"),
        pytest.param(0.0, 1.0, "float16", 23 * math.log(2), id="y=0, p=1, float16: clip to 1, -log(eps16)"),
        pytest.param(1.0, 0.0, "float16", 22 * math.log(2), id="y=1, p=0, float16: -log(2 eps16)"),
        pytest.param(1.0, 1.0, "float16", -math.log1p(EPS16), id="y=1, p=1, float16: finite, no NaN"),
    ],
)
def test_epsilon_is_added_inside_the_logs_after_the_clip(y, p, input_dtype, want):
    # backend.py: clip_by_value(output, eps, 1 - eps); log(output + eps); log(1 - output + eps)
    got = value(case([[y]], [[p]], input_dtype=input_dtype))
    assert got.tolist() == [pytest.approx(want, rel=1e-12)]


def test_bounds_cover_the_rounding_of_the_shifted_arguments():
    # TF 2.15.1 returns -0.0 for float16 y=1, p=1 (1 + eps16 rounds to 1): within the derived bound
    e = expected(case([[1.0]], [[1.0]], input_dtype="float16"), profile="keras2")
    assert abs(0.0 - float(e.value[0])) <= float(e.bound[0])
    # and the float32 bound stays a few ULP for typical values
    e = expected(case([[1.0, 0.0, 1.0]], [[0.3, 0.4, 0.9]]), profile="keras2")
    assert float(e.bound[0]) < 16 * float(np.spacing(np.float32(e.value[0])))


def test_the_compute_dtype_is_that_of_y_pred():
    c = case([[1.0], [0.0]], [[0.25], [0.5]], input_dtype="float16")
    assert expected(c, profile="keras2").dtype == "float16"
    assert expected(c, profile="keras3").dtype == "float32"  # Keras 3: floatx()
    ints = case([[1], [0]], [[0.25], [0.5]], input_dtype="float64", true_dtype="int32")
    assert expected(ints, profile="keras2").dtype == "float64"


@pytest.mark.parametrize(
    "options, fragment",
    [
        (dict(dtype="float32"), "no dtype argument"),
        (dict(reduction=None), "reduction=None"),
        (dict(reduction="mean"), "reduction='mean'"),
        (dict(reduction="mean_with_sample_weight"), "reduction='mean_with_sample_weight'"),
        (dict(reduction="SUM"), "reduction='SUM'"),
    ],
    ids=["dtype='float32'", "reduction=None", "reduction='mean'", "reduction='mean_with_sample_weight'", "reduction='SUM'"],
)
def test_the_constructor_rejects_what_keras2_does_not_have(options, fragment):
    assert fragment in raises(case([[1.0]], [[0.5]], **options))


def test_auto_is_sum_over_batch_size():
    y, p = [[1.0, 0.0], [0.0, 0.0]], [[0.6, 0.3], [0.2, 0.8]]
    auto = value(case(y, p, reduction="auto"))
    assert auto == value(case(y, p, reduction="sum_over_batch_size"))
    assert "auto" in raises(case(y, p, reduction="auto"), profile="keras3")


def test_docstring_examples():
    # keras 2.15.0 losses.py BinaryCrossentropy docstring, from_logits=True (printed to 3 decimals, truncated)
    y, x = [[0.0, 1.0], [0.0, 0.0]], [[-18.6, 0.51], [2.94, -12.8]]
    assert float(value(case(y, x, from_logits=True, reduction="auto"))) == pytest.approx(0.865, abs=1e-3)
    assert float(value(case(y, x, from_logits=True, reduction="auto", sw=[0.8, 0.2]))) == pytest.approx(0.243, abs=1e-3)
    assert float(value(case(y, x, from_logits=True, reduction="sum"))) == pytest.approx(1.730, abs=1e-3)
    np.testing.assert_allclose(value(case(y, x, from_logits=True)), [0.235, 1.496], atol=1e-3)
    # binary_crossentropy docstring: [[0, 1], [0, 0]] against [[0.6, 0.4], [0.4, 0.6]] -> [0.916, 0.714]
    np.testing.assert_allclose(value(case(y, [[0.6, 0.4], [0.4, 0.6]])), [0.916, 0.714], atol=1e-3)


@pytest.mark.parametrize("y_shape, p_shape", [((5,), (5, 1)), ((5, 1), (5,))])
def test_a_trailing_one_is_squeezed_so_the_batch_is_averaged(y_shape, p_shape):
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    p = np.array([0.9, 0.2, 0.7, 0.4, 0.6])
    c = case(y.reshape(y_shape), p.reshape(p_shape))
    got = value(c)
    assert got.shape == ()  # Keras 3 keeps one loss per sample instead
    assert value(c, profile="keras3").shape == (5,)
    want = np.mean([-math.log(q) if t else -math.log(1 - q) for t, q in zip(y, np.float32(p).astype(float), strict=True)])
    assert float(got) == pytest.approx(want, rel=1e-6)
    # weights cannot be broadcast to that scalar: the documented ValueError
    assert "broadcast" in raises(case(y.reshape(y_shape), p.reshape(p_shape), sw=np.ones((5, 1))))


def test_batch_weights_scale_samples_of_a_rank2_loss():
    got = value(case(np.ones((2, 3, 4)), np.full((2, 3, 4), 0.7), sw=[1.0, 2.0]))
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got[1], 2 * got[0], rtol=1e-12)


@pytest.mark.parametrize("reduction", ["auto", "sum", "sum_over_batch_size"])
def test_empty_batch_reduces_to_scalar_zero(reduction):
    # losses_utils._safe_mean: "If `num_present` is zero, then zero is returned."
    got = value(case(np.zeros((0, 3)), np.zeros((0, 3)), reduction=reduction))
    assert got.shape == () and float(got) == 0.0


def test_mismatched_shapes_must_raise():
    # backend.binary_crossentropy docstring: "target: A tensor with the same shape as `output`"
    assert "differ" in raises(case(np.ones((2, 3)), np.full((3,), 0.5)))


def test_gradients_are_refused_not_taken_from_keras3():
    # Keras 2's derivative is that of log(p + eps); none is modelled, so the profile must not answer with
    # Keras 3's.
    import dataclasses

    from harness.errors import UsageError

    c = dataclasses.replace(case(np.ones((2, 3)), np.full((2, 3), 0.7)), grad="y_pred")
    with pytest.raises(UsageError, match="keras3 profile only"):
        expected(c, profile="keras2")
