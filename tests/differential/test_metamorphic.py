"""Metamorphic relations: properties of BinaryCrossentropy that need no reference, only TensorFlow twice.

Each relation compares two calls of the loss whose results are tied by the mathematics.  Where the two
calls perform the same floating-point operations on the same values at the same positions (up to the
order of a commutative addition), the relation holds bit for bit and is asserted so.  Where the values
move (another batch order, half a batch), they need not: TensorFlow's elementwise kernels run a vectorised
main loop and a scalar remainder, so one input can come out an ULP apart at another position; each
per-sample loss is then held to the error bound of tolerance.py (``Expected.bound``, no expected value
used), and a sum to the order-free summation bound (gamma(n-1) times the sum of magnitudes) plus the
measured difference of its terms.  Where one side takes its input through a sigmoid, the allowance is
the error bounds of both sides plus the effect of the sigmoid's rounding.  The inputs are drawn so that
the premise of each proof holds (exact complements, exact smoothing, powers of two, no overflow), and each
test says which.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from harness.case import REDUCTIONS, Case, Options
from harness.dtypes import FLOAT_DTYPES, WORK, float_format, round_to
from harness.generate.strategies import LOSS_DTYPES, labels, logits, probabilities
from harness.oracle import EPSILON, expected
from harness.oracle import tolerance as tol
from harness.oracle.profiles import select_profile

pytestmark = [
    pytest.mark.tensorflow,
    pytest.mark.skipif(select_profile().profile != "keras3", reason="the relations call Keras 3's options"),
]

REDUCED = ("sum", "sum_over_batch_size", "mean", "mean_with_sample_weight")


def _case(y: np.ndarray, p: np.ndarray, inputs: str, weights: np.ndarray | None, options: dict[str, Any]) -> Case:
    return Case(
        id="metamorphic",
        y_true=y,
        y_pred=p,
        true_dtype=inputs,
        pred_dtype=inputs,
        options=Options(**options),
        sample_weight=weights,
        weight_dtype=inputs,
    )


def _loss(
    tf_target, y: np.ndarray, p: np.ndarray, inputs: str, *, weights: np.ndarray | None = None, **options: Any
) -> np.ndarray:
    """TensorFlow's result for labels, predictions and weights of dtype ``inputs``; the call must not raise."""
    out = tf_target.run(_case(y, p, inputs, weights, options))
    assert out.error is None, out.error
    return out.value


def _allowance(
    y: np.ndarray, p: np.ndarray, inputs: str, *, weights: np.ndarray | None = None, **options: Any
) -> np.ndarray:
    """The error bound of tolerance.py for each element of the result (``Expected.bound``; the expected
    value itself is not used): two evaluations of one element may differ by twice this."""
    bound = expected(_case(y, p, inputs, weights, options)).bound
    assert bound is not None
    return np.asarray(bound, dtype=WORK)


def _same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True), f"{what}: {a!r} != {b!r}"


def _rows(data: st.DataObject, *, max_batch: int = 6) -> tuple[int, int]:
    return data.draw(st.integers(2, max_batch), label="batch"), data.draw(st.integers(1, 3), label="columns")


# -- 1. logits against their sigmoid ---------------------------------------------------------------


@given(data=st.data())
def test_logits_equal_their_sigmoid_as_probabilities(data: st.DataObject, tf_target) -> None:
    """BCE(y, x, from_logits=True) == BCE(y, sigmoid(x)) within the clipping region.

    sigmoid(x) is computed in float64 and rounded to the dtype, so p = sigmoid(x) (1 + d) with |d| <= u of
    the dtype plus 2 ULP of float64.  The allowance is each side's own error bound (tolerance.logit_error,
    tolerance.probability_error) plus the loss's change over that d (tolerance.input_error).  |x| <= 8
    (4 in bfloat16, whose sigmoid rounds to 1 from 6.5 on) keeps p inside the clip bounds as the dtype
    holds them, so the clip does nothing.
    """
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES), label="dtype")
    b = data.draw(st.integers(1, 6), label="batch")
    cap = 4.0 if dtype == "bfloat16" else 8.0
    x = data.draw(logits((b, 1), dtype=dtype, allow_infinity=False, max_magnitude=cap), label="logits")
    y = data.draw(labels((b, 1), dtype=dtype), label="labels")
    p = np.asarray(round_to(1.0 / (1.0 + np.exp(-x)), dtype))
    assert np.all((p > float(round_to(EPSILON, dtype))) & (p < float(round_to(1 - EPSILON, dtype)))), p  # premise
    as_logits = _loss(tf_target, y, x, dtype, from_logits=True, reduction=None, dtype=dtype)
    as_probabilities = _loss(tf_target, y, p, dtype, reduction=None, dtype=dtype)
    m = tol.error_model(dtype)
    z, xw, pw = (a[:, 0].astype(WORK) for a in (y, x, p))
    zero = np.zeros_like(z)
    dp = (m.u + 2.0**-52) * pw
    bound = tol.logit_error(z, zero, xw, m) + tol.probability_error(z, zero, pw, m) + tol.input_error(z, pw, dp, m)
    diff = np.abs(as_logits.astype(WORK) - as_probabilities.astype(WORK))
    assert np.all(diff <= bound), f"x={x[:, 0]}, y={y[:, 0]}: |diff| {diff} > bound {bound}"


# -- 2. symmetry ---------------------------------------------------------------------------------------


@given(data=st.data())
def test_swapping_both_classes_leaves_the_loss_alone(data: st.DataObject, tf_target) -> None:
    """BCE(y, p) == BCE(1 - y, 1 - p), bit for bit.

    Labels and probabilities are drawn as v or 1 - v with v in [1/2, 1]: then 1 - v is exact (Sterbenz),
    and so is the loss's own 1 - (1 - v), so both calls form the same two products and add them in the
    other order.  Probabilities stay in [1/64, 63/64], inside the clip, so clipping does nothing.
    """
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES), label="dtype")
    b, c = _rows(data)
    halves = st.floats(0.5, 1.0).map(lambda v: float(round_to(v, dtype)))
    v = data.draw(st.lists(halves, min_size=b * c, max_size=b * c), label="label halves")
    w = data.draw(st.lists(halves.filter(lambda t: t <= 63 / 64), min_size=b * c, max_size=b * c), label="prob halves")
    flip_y = data.draw(st.lists(st.booleans(), min_size=b * c, max_size=b * c), label="labels below 1/2")
    flip_p = data.draw(st.lists(st.booleans(), min_size=b * c, max_size=b * c), label="probabilities below 1/2")
    y = np.where(flip_y, 1.0 - np.asarray(v), v).reshape(b, c)
    p = np.where(flip_p, 1.0 - np.asarray(w), w).reshape(b, c)
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    loss_dtype = None if dtype == "float32" else dtype  # computing in the inputs' dtype keeps 1 - v exact
    first = _loss(tf_target, y, p, dtype, reduction=reduction, dtype=loss_dtype)
    swapped = _loss(tf_target, 1.0 - y, 1.0 - p, dtype, reduction=reduction, dtype=loss_dtype)
    _same(first, swapped, "BCE(y, p) vs BCE(1 - y, 1 - p)")


# -- 3. label smoothing --------------------------------------------------------------------------------


@given(data=st.data())
def test_label_smoothing_is_smoothing_the_labels_by_hand(data: st.DataObject, tf_target) -> None:
    """BCE(y, p, label_smoothing=ls) == BCE(y (1 - ls) + ls / 2, p, label_smoothing=0), bit for bit.

    ls = k/8 and soft labels y = j/8: then y (1 - ls), ls / 2 and their sum have at most 7 significant
    bits, exact in every float dtype (bfloat16 has 8), so the loss smooths exactly as the hand does and
    everything after is the same computation.  Predictions are anything, NaN and infinities included.
    """
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES), label="dtype")
    b, c = _rows(data)
    ls = data.draw(st.integers(0, 8), label="ls * 8") / 8
    y = np.asarray(data.draw(st.lists(st.integers(0, 8), min_size=b * c, max_size=b * c), label="labels * 8")) / 8
    y = y.reshape(b, c)
    from_logits = data.draw(st.booleans(), label="from_logits")
    make = logits if from_logits else probabilities
    p = data.draw(make((b, c), dtype=dtype, allow_nan=True), label="predictions")
    options = {
        "from_logits": from_logits,
        "reduction": data.draw(st.sampled_from(REDUCTIONS), label="reduction"),
        "dtype": data.draw(st.sampled_from(LOSS_DTYPES), label="loss dtype"),
    }
    smoothed = y * (1 - ls) + ls / 2
    assert np.array_equal(round_to(smoothed, dtype), smoothed)  # the premise: exact in the dtype
    by_keras = _loss(tf_target, y, p, dtype, label_smoothing=ls, **options)
    by_hand = _loss(tf_target, smoothed, p, dtype, label_smoothing=0.0, **options)
    _same(by_keras, by_hand, f"label_smoothing={ls} vs labels smoothed by hand")


# -- 4-6. reductions against the unreduced loss ----------------------------------------------------------


def _batch(data: st.DataObject, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """A (B, C) batch without NaN or infinities, one weight per sample, and from_logits."""
    b, c = _rows(data)
    from_logits = data.draw(st.booleans(), label="from_logits")
    if from_logits:
        p = data.draw(logits((b, c), dtype=dtype, allow_infinity=False, max_magnitude=64.0), label="logits")
    else:
        p = data.draw(probabilities((b, c), dtype=dtype), label="probabilities")
    y = data.draw(labels((b, c), dtype=dtype), label="labels")
    w = data.draw(st.lists(st.floats(0.0, 4.0), min_size=b, max_size=b), label="sample weights")
    return y, p, np.asarray(round_to(np.asarray(w), dtype)), from_logits


def _sum_bound(terms: np.ndarray, dtype: str) -> float:
    """How far a floating-point sum of ``terms`` may be from their exact sum, in any order (Higham 4.4)."""
    u = float_format(dtype).unit_roundoff
    return float(tol.gamma(max(terms.size - 1, 0), u)) * float(np.sum(np.abs(terms), dtype=WORK))


def _unreduced(tf_target, y, p, w, dtype: str, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow's weighted per-sample losses and the error bound of each (tolerance.py)."""
    common = {"from_logits": from_logits, "dtype": dtype, "reduction": None}
    return _loss(tf_target, y, p, dtype, weights=w, **common), _allowance(y, p, dtype, weights=w, **common)


def _close(a: np.ndarray, b: np.ndarray, bound_a: np.ndarray, bound_b: np.ndarray, what: str) -> WORK:
    """Check two evaluations of the same per-sample losses against their bounds; return sum |a - b|.

    They need not be equal bit for bit: TensorFlow's elementwise kernels run a vectorised main loop and a
    scalar remainder, so the same input at another position in the buffer can come out an ULP apart.
    """
    diff = np.abs(a.astype(WORK) - b.astype(WORK))
    assert np.all(diff <= bound_a + bound_b), f"{what}: {a} vs {b}, bounds {bound_a + bound_b}"
    return np.sum(diff, dtype=WORK)


@given(data=st.data())
def test_permuting_the_batch_leaves_the_sum_and_the_means_alone(data: st.DataObject, tf_target) -> None:
    """The per-sample losses of a permuted batch are the permuted losses, each within its error bound;
    the sum and the means are unchanged up to the summation order (each sum within gamma(n-1) sum|terms|
    of the exact sum of its own terms) and the measured difference between the two sets of terms."""
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES), label="dtype")
    y, p, w, from_logits = _batch(data, dtype)
    perm = np.asarray(data.draw(st.permutations(range(len(y))), label="permutation"))
    terms, bound = _unreduced(tf_target, y, p, w, dtype, from_logits)
    assume(np.all(np.isfinite(terms)))  # an infinite loss (float16: p = 1 lost to the clip) sums to inf or NaN
    permuted, permuted_bound = _unreduced(tf_target, y[perm], p[perm], w[perm], dtype, from_logits)
    moved = _close(terms[perm], permuted, bound[perm], permuted_bound, "per-sample losses after permuting")
    sums = _sum_bound(terms, dtype) + _sum_bound(permuted, dtype) + float(moved)
    u = float_format(dtype).unit_roundoff
    common = {"from_logits": from_logits, "dtype": dtype}
    for reduction in REDUCED:
        a = float(_loss(tf_target, y, p, dtype, weights=w, reduction=reduction, **common))
        b = float(_loss(tf_target, y[perm], p[perm], dtype, weights=w[perm], reduction=reduction, **common))
        if reduction == "sum":
            allowed = sums
        elif reduction == "mean_with_sample_weight":
            total = float(np.sum(w, dtype=WORK))
            spread = 2 * _sum_bound(w, dtype)
            assume(total > spread)  # the divisor is not lost in its own rounding
            allowed = (sums + abs(a) * spread) / (total - spread) + 2 * u * abs(a)
        else:
            allowed = sums / terms.size + 2 * u * abs(a)
        assert abs(a - b) <= allowed, f"{reduction}: {a} vs {b} after permuting, bound {allowed}"


@given(data=st.data())
def test_scaling_the_weights_scales_the_sum_and_not_the_weighted_mean(data: st.DataObject, tf_target) -> None:
    """sample_weight times c = 2**k: "sum" is c times as large and "mean_with_sample_weight" is unchanged,
    bit for bit.  Scaling by a power of two is exact when nothing overflows or underflows, so every
    product, partial sum and quotient scales exactly: weights are 0 or at least 1/16, probabilities in
    [1/64, 63/64] (a loss of at least 0.015), the compute dtype float32 or float64, |k| <= 8.  Array weights
    only: a scalar weight with mean_with_sample_weight is the registered mean-with-scalar-weight."""
    dtype = data.draw(st.sampled_from(["float32", "float64"]), label="dtype")
    b, c = _rows(data)
    y = data.draw(labels((b, c), dtype=dtype), label="labels")
    interior = st.floats(1 / 64, 63 / 64).map(lambda v: float(round_to(v, dtype)))
    p = np.asarray(data.draw(st.lists(interior, min_size=b * c, max_size=b * c), label="probabilities")).reshape(b, c)
    weight = st.one_of(st.just(0.0), st.floats(1 / 16, 4.0)).map(lambda v: float(round_to(v, dtype)))
    per_element = data.draw(st.booleans(), label="per-element weights (B, C) with C columns of labels")
    shape = (b, c, 1) if per_element else (b,)
    if per_element:
        y, p = y[..., np.newaxis], p[..., np.newaxis]
    w = np.asarray(data.draw(st.lists(weight, min_size=math.prod(shape), max_size=math.prod(shape)), label="weights"))
    w = w.reshape(shape[:-1] if per_element else shape)
    c_scale = 2.0 ** data.draw(st.integers(-8, 8), label="log2 c")
    plain_sum = _loss(tf_target, y, p, dtype, weights=w, reduction="sum", dtype=dtype)
    scaled_sum = _loss(tf_target, y, p, dtype, weights=c_scale * w, reduction="sum", dtype=dtype)
    _same(scaled_sum, c_scale * plain_sum, f"sum with weights x {c_scale}")
    plain_mean = _loss(tf_target, y, p, dtype, weights=w, reduction="mean_with_sample_weight", dtype=dtype)
    scaled_mean = _loss(tf_target, y, p, dtype, weights=c_scale * w, reduction="mean_with_sample_weight", dtype=dtype)
    _same(scaled_mean, plain_mean, f"mean_with_sample_weight with weights x {c_scale}")


@given(data=st.data())
def test_the_sum_of_a_batch_is_the_sum_of_its_two_halves(data: st.DataObject, tf_target) -> None:
    """Splitting a batch at k and adding the two "sum"s (exactly, in extended precision) gives the whole
    batch's "sum": within the summation bounds of the three sums and the measured difference between the
    whole batch's per-sample losses and the halves' (each within its error bound)."""
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES), label="dtype")
    y, p, w, from_logits = _batch(data, dtype)
    k = data.draw(st.integers(1, len(y) - 1), label="split at")
    terms, bound = _unreduced(tf_target, y, p, w, dtype, from_logits)
    assume(np.all(np.isfinite(terms)))
    head, head_bound = _unreduced(tf_target, y[:k], p[:k], w[:k], dtype, from_logits)
    tail, tail_bound = _unreduced(tf_target, y[k:], p[k:], w[k:], dtype, from_logits)
    moved = _close(terms[:k], head, bound[:k], head_bound, "first half") + _close(
        terms[k:], tail, bound[k:], tail_bound, "second half"
    )
    common = {"from_logits": from_logits, "dtype": dtype, "reduction": "sum"}
    whole = _loss(tf_target, y, p, dtype, weights=w, **common)
    first = _loss(tf_target, y[:k], p[:k], dtype, weights=w[:k], **common)
    second = _loss(tf_target, y[k:], p[k:], dtype, weights=w[k:], **common)
    parts = WORK(first) + WORK(second)
    allowed = _sum_bound(terms, dtype) + _sum_bound(head, dtype) + _sum_bound(tail, dtype) + float(moved)
    assert abs(WORK(whole) - parts) <= allowed, f"whole {whole} vs halves {first} + {second}, bound {allowed}"


# -- 7. relations maintainers argue with upstream ---------------------------------------------------


@given(data=st.data())
def test_a_logit_with_label_one_is_its_negation_with_label_zero(data: st.DataObject, tf_target) -> None:
    """L(x, 1) == L(-x, 0) for logits, bit for bit: TensorFlow's max(x, 0) - x z + log1p(exp(-|x|)) forms
    x - x = 0 or 0 - x on one side and 0 - 0 or -x - 0 on the other, both exact, and the same log1p term.
    The gradients mirror: dL(x, 1)/dx = sigmoid(x) - 1 = -dL(-x, 0)/d(-x); each side is held to the oracle's
    bound for its own derivative, so a sigmoid gradient that truncates to 0 for large |x| on one side only
    shows as a difference beyond both bounds."""
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES), label="dtype")
    b = data.draw(st.integers(1, 6), label="batch")
    x = data.draw(logits((b, 1), dtype=dtype, allow_infinity=False, max_magnitude=1e4), label="logits")
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    one = _loss(tf_target, ones, x, dtype, from_logits=True, reduction=None, dtype=dtype)
    zero = _loss(tf_target, zeros, -x, dtype, from_logits=True, reduction=None, dtype=dtype)
    _same(one, zero, "L(x, 1) vs L(-x, 0)")
    cases = [
        Case(id="mirror", y_true=y, y_pred=p, true_dtype=dtype, pred_dtype=dtype, grad="y_pred",
             options=Options(from_logits=True, reduction="sum", dtype=dtype))
        for y, p in ((ones, x), (zeros, -x))
    ]  # fmt: skip
    g1, g0 = (tf_target.run(c) for c in cases)
    assert g1.error is None and g0.error is None, (g1.error, g0.error)
    b1, b0 = (np.asarray(expected(c).bound, dtype=WORK) for c in cases)
    diff = np.abs(g1.value.astype(WORK) + g0.value.astype(WORK))
    assert np.all(diff <= b1 + b0), f"x={x[:, 0]}: gradients {g1.value[:, 0]} vs {-g0.value[:, 0]}"


@given(data=st.data())
def test_the_focal_loss_with_gamma_zero_is_the_cross_entropy(data: st.DataObject, tf_target) -> None:
    """BinaryFocalCrossentropy(gamma=0) multiplies the cross-entropy by (1 - p_t) ** 0 = 1 exactly (keras
    losses.py binary_focal_crossentropy), with the same clip, smoothing and reductions: bit for bit."""
    tf = tf_target.tf
    dtype = data.draw(st.sampled_from(("float32", "float64")), label="dtype")
    b, c = _rows(data)
    from_logits = data.draw(st.booleans(), label="from_logits")
    y = data.draw(labels((b, c), dtype=dtype), label="labels")
    if from_logits:
        p = data.draw(logits((b, c), dtype=dtype, allow_infinity=False, max_magnitude=50.0), label="logits")
    else:
        p = data.draw(probabilities((b, c), dtype=dtype), label="probabilities")
    ls = data.draw(st.sampled_from((0.0, 0.1)), label="label_smoothing")
    reduction = data.draw(st.sampled_from(("sum", "sum_over_batch_size", "none")), label="reduction")
    options = {"from_logits": from_logits, "label_smoothing": ls, "reduction": reduction, "dtype": dtype}
    focal = tf.keras.losses.BinaryFocalCrossentropy(gamma=0.0, apply_class_balancing=False, **options)
    plain = tf.keras.losses.BinaryCrossentropy(**options)
    yt, pt = tf.constant(y, dtype), tf.constant(p, dtype)
    _same(np.asarray(focal(yt, pt)), np.asarray(plain(yt, pt)), "focal(gamma=0) vs BCE")
