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
