"""Forward error bounds: how far a correct implementation may land from the exact value.

The comparator accepts TensorFlow's result where ``|actual - expected| <= bound`` elementwise.  Every bound
here is a first-order forward error bound in the standard model of floating-point arithmetic (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., section 2.2 and chapter 4): each basic operation
in a format with unit roundoff ``u`` returns ``op(a, b) * (1 + d) + e`` with ``|d| <= u`` and, for
underflow, ``|e| <= eta``.  Nothing here is a fudge factor; each constant is named and explained.

Constants (``ErrorModel``):

``u``
    The unit roundoff of the loss's compute dtype, plus that of the reference's working precision: both
    sides round, so the distance between them is bounded by the sum of both errors (for float32 and
    below the reference's share is negligible; for float64 it is 2**-64 against 2**-53).
``c_lib``
    ULPs of error allowed per elementary function (``log``, ``log1p``, ``exp``), so its relative error is
    at most ``c_lib`` ULP = ``2 c_lib u``.  IEEE 754 does not require these functions correctly rounded and
    Eigen, whose vectorised kernels TensorFlow's CPU ops use, documents no bound, so the constant is
    measured: on 500,000 float32 and float64 arguments in the loss's range, TensorFlow 2.21's kernels were
    off by at most 3.02 ULP (float32 log), 3.62 (float32 log1p), 1.23 (float32 exp), 1.49/2.21/1.55
    (float64 log/log1p/exp) on arrays long enough to take the vectorised path, and under 1 ULP on short
    ones.  We take 4.  ``tests/instrument/test_tolerance.py`` re-measures TensorFlow's functions and fails when the
    installed TensorFlow exceeds it, so the assumption cannot rot silently.  float16 and bfloat16 kernels
    compute in float32 and round, well within 4 ULP of the narrow format.
``eta``
    Absolute error allowed per operation for underflow.  TensorFlow runs its CPU kernels with denormals
    flushed to zero (``tensorflow/core/platform/denormal.h``, ``ScopedFlushDenormal``), so a result or
    input below the smallest normal number may become 0: ``eta`` is the compute dtype's smallest normal.
    float16 is the exception: its kernels compute in float32, where every float16 value and product of
    two is normal, and round back with gradual underflow, so its ``eta`` is half its smallest subnormal
    (2**-25).  bfloat16 shares float32's exponent range, so its subnormals are flushed like float32's.
    It matters only for results near the underflow threshold.
``flush``
    Inputs with ``0 < |x| < flush`` are read as 0 by the same kernels (denormals-are-zero): the compute
    dtype's smallest normal, and 0 for float16 (no flushing).  A flushed operand is not a small absolute
    error of the result: a subnormal weight times a loss of 20 loses 20 times the weight, and times an
    infinite loss gives 0 * inf = NaN.  So a product with a flushable operand is allowed its whole exact
    value as error (``product_error``), a sum of weights loses its flushable ones (``flush_error``), and
    the NaN and the zero divisor are left to the registry (``subnormal-weight-flushed``,
    ``subnormal-weights-zero-divisor``): no bound covers them.
    Measured on TensorFlow 2.21 (CPU): ``BinaryCrossentropy(reduction="sum")`` with weight 1e-40 gives 0.0
    where the loss is 15.9 (float32) and NaN where it is inf (bfloat16); float64 weights of 1e-310 likewise.
    The conversion to a wider compute dtype reads its input the same way: ``tf.cast`` of a float32 1e-40 to
    float64 is 0, though float64 holds it as a normal number, so a weight is flushable below the larger of
    its own dtype's ``flush`` and the compute dtype's (``read_model``).

Sums over ``n`` terms (reductions, the mean over ``axis``) use the bound that holds for *any* order of
summation, ``|fl(sum x_i) - sum x_i| <= gamma(n-1) * sum |x_i|`` with ``gamma(k) = k u / (1 - k u)``
(Higham, eq. 4.4), so it covers TensorFlow's tree reductions and oneDNN's blocked ones alike.  The bound
grows with ``n``; where ``n u >= 1`` it is infinite and the comparator reports the case as unbounded
instead of passing it.

A ``0 * inf`` arising in a bound (an unused ``log(0)`` multiplied by a zero label weight) is 0, the same
convention as the reference's ``0 * log(0) = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from harness.dtypes import WORK, WORK_UNIT_ROUNDOFF, float_format

__all__ = [
    "ErrorModel", "error_model", "flush_error", "flushable", "gamma", "input_error", "mul0", "read_model", "smoothing_error",
]

C_LIB = 4.0  # ULP; see the module docstring


@dataclass(frozen=True)
class ErrorModel:
    """The constants of the error bound for one compute dtype (see the module docstring)."""

    dtype: str
    u: float
    eta: float
    c_lib: float = C_LIB
    flush: float = 0.0

    @property
    def lib(self) -> float:
        """Relative error of one elementary function: c_lib ULP, one ULP being at most 2 u relative."""
        return 2 * self.c_lib * self.u

    def describe(self) -> str:
        return f"u={self.u:.3g} (compute {self.dtype} + reference), c_lib={self.c_lib:g} ULP, eta={self.eta:.3g}"


def error_model(dtype: str) -> ErrorModel:
    fmt = float_format(dtype)
    flushes = dtype != "float16"
    eta = fmt.smallest_normal if flushes else fmt.smallest_subnormal / 2
    return ErrorModel(
        dtype=dtype,
        u=fmt.unit_roundoff + WORK_UNIT_ROUNDOFF,
        eta=eta,
        flush=fmt.smallest_normal if flushes else 0.0,
    )


def read_model(m: ErrorModel, source: str) -> ErrorModel:
    """``m`` for an input converted from ``source``: flushable below either dtype's smallest normal where
    both flush (the conversion reads its input with denormals as zero; see ``flush``)."""
    if source not in ("float16", "bfloat16", "float32", "float64"):
        return m
    return replace(m, flush=max(m.flush, error_model(source).flush))


def flushable(x: np.ndarray, m: ErrorModel) -> np.ndarray:
    """Where the compute dtype's kernels read ``x`` as 0: nonzero and below ``m.flush`` in magnitude."""
    a = np.abs(np.asarray(x, dtype=WORK))
    return (a > 0) & (a < m.flush)


def flush_error(x: np.ndarray, m: ErrorModel) -> np.ndarray:
    """Error of reading ``x`` with subnormals flushed: |x| where it is flushable, else 0."""
    a = np.abs(np.asarray(x, dtype=WORK))
    return np.where(flushable(a, m), a, WORK(0))


def gamma(n: int | np.ndarray, u: float) -> np.ndarray:
    """Higham's gamma_n = n u / (1 - n u); infinite where n u >= 1."""
    nu = np.asarray(n, dtype=WORK) * WORK(u)
    with np.errstate(divide="ignore"):
        return np.where(nu < 1, nu / (1 - nu), np.inf).astype(WORK)


def mul0(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b with 0 * inf taken as 0 (an unused infinite term contributes nothing)."""
    with np.errstate(invalid="ignore"):
        prod = np.asarray(a, dtype=WORK) * np.asarray(b, dtype=WORK)
    return np.where((np.asarray(a) == 0) | (np.asarray(b) == 0), WORK(0), prod)


def smoothing_error(y: np.ndarray, ls: float, m: ErrorModel) -> np.ndarray:
    """Error of the label z as the loss computes it: z = y * (1 - ls) + 0.5 * ls in the compute dtype.

    Reading y: a subnormal label is read as 0 (``flush``): ``flush_error(y)``, the only error when ls == 0
    (Keras skips the step).  Otherwise four operations: 1 - ls and 0.5 * ls converted to the dtype, the
    product and the sum, each with relative error u and, where its exact result is below the smallest
    normal, an absolute ``eta`` (flushed, or rounded among the subnormals): first order,
    |dz| <= 4 u (|y| + ls) + k eta + flush_error(y), k the number of the four results that underflow.
    The ``eta`` terms are what a tiny smoothing needs: ``label_smoothing`` = the smallest normal float32
    makes 0.5 * ls subnormal, so a 0 label smooths to 0 and the loss of a logit of -100 is 0 where the
    exact value is 5.9e-37 (found by ``bce-harness fuzz --seed 7`` on TensorFlow 2.21).  Downstream, dz
    multiplies the log terms (``probability_error``) and |x| (``logit_error``), so the flushed label is
    followed through every term it feeds.
    """
    read = flush_error(y, m)
    if ls == 0:
        return read
    y = np.asarray(y, dtype=WORK)
    tiny = WORK(float_format(m.dtype).smallest_normal)
    keep, half = WORK(1) - WORK(ls), WORK(0.5) * WORK(ls)
    with np.errstate(invalid="ignore"):
        results = (np.abs(keep), np.abs(half), np.abs(y * keep), np.abs(y * keep + half))
        underflows = sum(np.where(r < tiny, 1, 0) for r in results)
    return 4 * m.u * (np.abs(y) + WORK(abs(ls))) + underflows * WORK(m.eta) + read


def probability_error(
    z: np.ndarray, dz: np.ndarray, pc: np.ndarray, m: ErrorModel, *, shift: float = 0.0
) -> np.ndarray:
    """Bound for -(z log(pc + s) + (1 - z) log(1 - pc + s)) with pc already clipped, evaluated in the dtype.

    ``s = shift`` is 0 for Keras 3.  Keras 2 adds its epsilon inside both logs (``log(output + epsilon())``),
    which costs one more rounding in each argument: fl(pc + s) is off by relative u, so log(pc + s) by u
    more; fl(fl(1 - pc) + s) is off by relative u for the sum plus relative u of 1 - pc, which is also
    relative u of 1 - pc + s since 0 <= 1 - pc <= 1 - pc + s, so log(1 - pc + s) by 2 u instead of u.
    The t1, t2 below are then the logs of the shifted arguments.

    Terms (first order):
      t1 = log(pc):            lib |t1|          (lib = 2 c_lib u, the functions' relative error)
      q = 1 - pc:              exact for pc >= 1/2 (Sterbenz), else relative u, so log(q) is off by u
      t2 = log(q):             lib |t2| + u
      w = 1 - z:               u |1 - z| + dz
      z * t1:                  |z| err(t1) + |t1| dz + u |z t1|
      w * t2:                  |w| err(t2) + |t2| err(w) + u |w t2|
      sum and negation:        u |z t1 + w t2|
      (a hard label, z exactly 0 or 1, makes 1 - z, the products and the sum exact: those terms drop)
      underflow:               6 eta (one per operation) + eta (|t1| + |t2|) for labels flushed to zero
    """
    z = np.asarray(z, dtype=WORK)
    pc = np.asarray(pc, dtype=WORK)
    with np.errstate(divide="ignore"):
        t1 = np.abs(np.log(pc + WORK(shift)))
        t2 = np.abs(np.log1p(WORK(shift) - pc))
    w = np.abs(1 - z)
    az = np.abs(z)
    # With a hard label (z exactly 0 or 1, no smoothing) 1 - z, both products and the sum are exact.
    soft = np.where((z == 0) | (z == 1), 0, 1)
    e_t1 = m.lib * t1
    e_t2 = m.lib * t2 + m.u
    if shift:  # the rounding of pc + s and of (1 - pc) + s (see the docstring)
        e_t1, e_t2 = e_t1 + m.u, e_t2 + m.u
    e_w = m.u * w * soft + dz
    e_m1 = mul0(az, e_t1) + mul0(t1, dz) + m.u * mul0(soft * az, t1)
    e_m2 = mul0(w, e_t2) + mul0(t2, e_w) + m.u * mul0(soft * w, t2)
    e_sum = m.u * mul0(soft, mul0(az, t1) + mul0(w, t2))
    e_under = 6 * m.eta + m.eta * (t1 + mul0(np.where(w > 0, 1, 0), t2))
    return (e_m1 + e_m2 + e_sum + e_under).astype(WORK)


def logit_error(z: np.ndarray, dz: np.ndarray, x: np.ndarray, m: ErrorModel) -> np.ndarray:
    """Bound for the stable logit form max(x, 0) - x z + log1p(exp(-|x|)) evaluated in the dtype.

    This is the evaluation documented for ``tf.nn.sigmoid_cross_entropy_with_logits``; any evaluation of
    the same three terms has the same first-order bound:
      x z:                     u |x z| + |x| dz
      max(x, 0) - x z:         u (|max(x, 0)| + |x z|)
      e = exp(-|x|):           lib e
      log1p(e):                lib log1p(e) + lib e   (log1p's condition number is <= 1 on [0, 1])
      the final sum:           u (|max(x, 0) - x z| + log1p(e))
      underflow:               4 eta + eta (1 + |z|) for a logit flushed to zero
    A hard label (z exactly 0 or 1) makes x z and max(x, 0) - x z exact: those terms drop.
    Infinite logits are the non-finite check's business; their bound is 0.
    """
    x = np.asarray(x, dtype=WORK)
    z = np.asarray(z, dtype=WORK)
    finite = np.isfinite(x)
    xf = np.where(finite, x, 0)
    ax = np.abs(xf)
    r = np.maximum(xf, 0)
    xz = np.abs(xf * z)
    e = np.exp(-ax)
    s = np.log1p(e)
    # With a hard label x z is exact and max(x, 0) - x z is exact too (it is x - x, x - 0 or 0 - x z).
    soft = np.where((z == 0) | (z == 1), 0, 1)
    err = (
        m.u * xz * soft
        + ax * dz
        + m.u * (r + xz) * soft
        + m.lib * (s + e)
        + m.lib * s
        + m.u * (np.abs(r - xf * z) + s)
        + 4 * m.eta
        + m.eta * (1 + np.abs(z))
    )
    return np.where(finite, err, 0).astype(WORK)


def sum_error(values: np.ndarray, errors: np.ndarray, axis: int | None, m: ErrorModel) -> np.ndarray:
    """Bound for a floating-point sum over ``axis`` (None: all) of values that carry ``errors``.

    sum of the terms' own errors + gamma(n-1) * sum |x_i| (any summation order).
    """
    values = np.asarray(values, dtype=WORK)
    n = values.size if axis is None else values.shape[axis]
    with np.errstate(invalid="ignore"):
        own = np.sum(np.where(np.isfinite(values), errors, 0), axis=axis)
        mag = np.sum(np.where(np.isfinite(values), np.abs(values), 0), axis=axis)
    return (own + mul0(gamma(max(n - 1, 0), m.u), mag)).astype(WORK)


def divide_error(
    quotient: np.ndarray, num_error: np.ndarray, divisor: np.ndarray, divisor_error: np.ndarray | np.floating | float, m: ErrorModel
) -> np.ndarray:
    """Bound for fl(N / D) given bounds on N and D: (err(N) + |N/D| err(D)) / (|D| - err(D)) + u |N/D|.

    N'/D' - N/D = (N' - N)/D' + (N/D)(D - D')/D', and |D'| >= |D| - err(D): exact, not first order, so it
    holds where err(D) is not small against D (flushed weights).  Where err(D) >= |D| the computed divisor
    may be 0 and the bound is infinite.  Covers the cast of an integer count to the dtype too: pass its
    rounding as ``divisor_error``.  Where D == 0 Keras returns 0 by definition (divide_no_nan), exactly:
    bound 0.
    """
    d = np.abs(np.asarray(divisor, dtype=WORK))
    q = np.abs(np.asarray(quotient, dtype=WORK))
    low = d - np.asarray(divisor_error, dtype=WORK)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(low > 0, (num_error + q * divisor_error) / np.where(low > 0, low, 1), np.inf) + m.u * q
    # the standard model's underflow term: a quotient below the smallest normal may be flushed to zero
    err = err + np.where(q < float_format(m.dtype).smallest_normal, WORK(m.eta), WORK(0))
    return np.where(d == 0, WORK(0), err).astype(WORK)


def count_error(n: int, m: ErrorModel) -> float:
    """Error of an element count converted to the dtype: 0 when n is exactly representable."""
    p = float_format(m.dtype).mant_bits + 1
    return 0.0 if n <= 2**p else float(n) * m.u


def product_error(
    values: np.ndarray, errors: np.ndarray, weights: np.ndarray, m: ErrorModel, *, read: ErrorModel | None = None
) -> np.ndarray:
    """Bound for fl(v * w) with exact weights w: |w| err(v) + u |v w| + eta, and |v w| where either operand
    is flushable (read as 0, the product is 0: see ``flush`` in the module docstring); ``read``: the model
    the weights were converted with (``read_model``), ``m`` by default."""
    w = np.abs(np.asarray(weights, dtype=WORK))
    v = np.abs(np.asarray(values, dtype=WORK))
    vw = mul0(v, w)
    flushed = np.where(flushable(w, read or m) | flushable(v, m), vw, WORK(0))
    return (mul0(w, errors) + m.u * vw + m.eta + flushed).astype(WORK)


def input_error(z: np.ndarray, pc: np.ndarray, dp: np.ndarray, m: ErrorModel) -> np.ndarray:
    """Bound for the loss's change when its probability input is off by ``dp`` (first order).

    A probability produced by a sigmoid in the dtype is within c_lib ULP of the rounded sigmoid; the loss
    moves by |dl/dp| dp = (|z| / p + |1 - z| / (1 - p)) dp.  Where the clip holds p at a bound the loss does
    not move with p; the first-order term still covers a p within dp of the bound.
    """
    z = np.asarray(z, dtype=WORK)
    pc = np.asarray(pc, dtype=WORK)
    dp = np.asarray(dp, dtype=WORK)
    with np.errstate(divide="ignore"):
        slope = mul0(np.abs(z), 1 / pc) + mul0(np.abs(1 - z), 1 / (1 - pc))
    return mul0(slope, dp).astype(WORK)
