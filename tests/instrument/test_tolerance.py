"""The error-bound model: its helpers, and the measured constant it rests on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.oracle.tolerance import C_LIB, divide_error, error_model, gamma, mul0, product_error, sum_error


def test_gamma_grows_with_n_and_is_infinite_past_one_over_u():
    u = 2.0**-11
    assert gamma(1, u) == pytest.approx(u / (1 - u))
    assert gamma(100, u) > gamma(10, u) > 0
    assert math.isinf(float(gamma(2048, u)))


def test_mul0_takes_zero_times_infinity_as_zero():
    got = mul0(np.array([0.0, 2.0, 0.0]), np.array([np.inf, 3.0, -np.inf]))
    assert got.tolist() == [0.0, 6.0, 0.0]


def test_a_flushable_operand_costs_the_whole_product_and_nothing_else_does():
    m = error_model("float32")
    v, err = np.array([1e4, 1e4, 1e4]), np.zeros(3)  # a loss of 1e4 (a logit of -1e4 with label 1)
    w = np.array([1e-40, 1e-30, 0.5])  # subnormal, normal, normal
    b = product_error(v, err, w, m)
    assert b[0] >= 1e4 * 1e-40 > 50 * m.eta  # read as 0, the product loses all of itself, far beyond eta
    want = [m.u * 1e4 * 1e-30 + m.eta, m.u * 5e3 + m.eta]
    np.testing.assert_allclose(b[1:].astype(float), want, rtol=1e-12)  # no extra term where normal
    f16 = error_model("float16")  # float16 kernels compute in float32: nothing is flushed
    assert f16.flush == 0 and product_error(v[:1], err[:1], np.array([6e-8]), f16)[0] < 1e4 * 6e-8


def test_the_quotient_bound_is_infinite_where_the_divisor_may_vanish():
    m = error_model("float32")
    assert np.isinf(divide_error(np.array(0.5), np.array(0.0), np.array(2e-40), np.array(2e-40), m))
    finite = divide_error(np.array(0.5), np.array(0.0), np.array(2.0), np.array(1e-7), m)
    assert np.isfinite(finite) and finite < 1e-6


def test_sum_bound_grows_with_the_number_of_terms():
    m = error_model("float32")
    small = sum_error(np.ones(10), np.zeros(10), None, m)
    large = sum_error(np.ones(1000), np.zeros(1000), None, m)
    assert large / 1000 > small / 10  # per term, a longer sum is allowed more


def _ulp_error(actual: np.ndarray, exact: np.ndarray, dtype: type) -> float:
    e = np.asarray(exact, dtype=np.longdouble)
    spacing = np.spacing(np.abs(e).astype(dtype)).astype(np.longdouble)
    return float(np.max(np.abs(np.asarray(actual, dtype=np.longdouble) - e) / spacing))


@pytest.mark.tensorflow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tensorflow_elementary_functions_are_within_c_lib(dtype, tf_target):
    """C_LIB (tolerance.py) is a measurement; re-measure it on the installed TensorFlow.

    Arrays of 4096 take Eigen's vectorised path, the less accurate one.  Arguments cover the loss's range:
    probabilities in [1e-7, 1], values just below 1, and the exp(-|x|) of the logit formula.
    """
    tf = tf_target.tf
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(1e-7, 1, 40960), 1 - rng.uniform(0, 1e-3, 40960)]).astype(dtype).reshape(-1, 4096)
    x = -np.minimum(np.abs(rng.normal(0, 30, 40960)), 80).astype(dtype).reshape(-1, 4096)  # exp stays normal
    for name, fn, exact, arg in [
        ("log", tf.math.log, np.log, p),
        ("log1p", tf.math.log1p, np.log1p, p),
        ("exp", tf.math.exp, np.exp, x),
    ]:
        got = fn(tf.constant(arg)).numpy()
        err = _ulp_error(got, exact(arg.astype(np.longdouble)), dtype)
        assert err <= C_LIB, f"tf.math.{name} on {dtype.__name__}: {err:.2f} ULP > C_LIB = {C_LIB}"


# -- the denormal model: every intermediate that can be subnormal, flushed as TensorFlow's CPU kernels do ---


def _ftz(x):
    """float32 with results and operands below the smallest normal read as 0 (FTZ and DAZ)."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(np.abs(x) < np.finfo(np.float32).tiny, np.float32(0), x)


def _flushing_logit_loss(y, x, ls: float, reduce: bool) -> np.ndarray:
    """The loss of logits as a float32 implementation that flushes every intermediate computes it."""
    y, x = _ftz(y), _ftz(x)
    z = y if ls == 0 else _ftz(_ftz(y * _ftz(np.float32(1 - ls))) + _ftz(np.float32(0.5 * ls)))
    with np.errstate(over="ignore", under="ignore"):
        tail = _ftz(np.log1p(_ftz(np.exp(-np.abs(x)))))
        elem = _ftz(_ftz(np.maximum(x, 0) - _ftz(x * z)) + tail)
        return _ftz(np.sum(elem) / np.float32(elem.size)) if reduce else elem


@pytest.mark.parametrize(
    ("intermediate", "y", "x", "ls", "reduce"),
    [
        ("a smoothed label (0.5 * ls subnormal)", [0.0], [-100.0], float(np.finfo(np.float32).tiny), False),
        ("a label read in (y subnormal)", [1e-39], [-100.0], 0.0, False),
        ("the product y * (1 - ls)", [2e-38], [-100.0], 0.9, False),
        ("the softplus tail exp(-|x|)", [1.0], [100.0], 0.0, False),
        ("the mean's quotient", [0.0] * 64, [-87.0] * 64, float(np.finfo(np.float32).tiny) * 8, True),
    ],
)
def test_the_bound_covers_each_intermediate_flushed(intermediate, y, x, ls, reduce) -> None:
    """Each row makes one intermediate subnormal; the flushing float32 evaluation must land inside the bound
    and, for the first two, the bound must be needed (a model that did not follow the flush would fail)."""
    from harness.case import Case, Options
    from harness.oracle import expected

    case = Case(
        id=f"flush/{intermediate}",
        y_true=np.array(y, dtype=np.float32).astype(np.float64),
        y_pred=np.array(x, dtype=np.float64),
        true_dtype="float32",
        pred_dtype="float32",
        options=Options(from_logits=True, label_smoothing=ls, reduction="sum_over_batch_size" if reduce else "none"),
    )
    e = expected(case)
    flushed = np.asarray(_flushing_logit_loss(case.y_true, case.y_pred, ls, reduce), dtype=np.float64)
    diff = np.abs(flushed - np.asarray(e.value, dtype=np.float64))
    assert np.all(diff <= np.asarray(e.bound, dtype=np.float64)), (intermediate, flushed, e.value, e.bound)
    if intermediate.startswith(("a smoothed", "a label")):
        assert np.all(diff > 0)  # the flush really moved the value: the allowance is used, not idle


def test_the_smoothing_bound_counts_only_operations_that_underflow() -> None:
    from harness.oracle.tolerance import smoothing_error

    m = error_model("float32")
    normal = smoothing_error(np.array([0.0, 1.0]), 0.1, m)
    assert np.all(normal < 1e-6) and np.all(normal > 0)
    tiny = float(np.finfo(np.float32).tiny)
    flushed = smoothing_error(np.array([0.0]), tiny, m)
    assert flushed[0] >= 2 * m.eta  # 0.5 * ls and the sum underflow
    assert smoothing_error(np.array([1e-39]), 0.0, m)[0] == pytest.approx(1e-39)
    assert smoothing_error(np.array([0.5]), 0.0, m)[0] == 0
