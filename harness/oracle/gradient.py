"""The reference's gradients: the analytic derivatives of the documented loss, with their error bounds.

Training consumes the gradient, so the harness checks ``tf.GradientTape`` gradients of the sum of a call's
result with respect to y_pred (probabilities or logits) or sample_weight.  NumPy only, like reference.py,
whose rules (conversion, smoothing, clip, axis mean, weights, mask, reduction) it reuses; the derivatives:

probabilities   d/dp -(z log p + (1 - z) log(1 - p)) = -z/p + (1 - z)/(1 - p) where the clip passes p
                through, 0 where it holds p at a bound.  ``tf.clip_by_value`` is documented as
                min(max(t, lo), hi); its gradient passes at the bounds themselves (math_grad.py
                _MaximumMinimumGrad: x >= y and x <= y), so eps <= p <= 1 - eps is "passed through".
logits          d/dx [z softplus(-x) + (1 - z) softplus(x)] = sigmoid(x) - z, also at x = +-inf.
the mean over the axis, the weights and the reduction
                multiply by 1/C, by the element's weight (and mask), and by 1 ('sum', 'none': the tape sums
                the result), 1/N ('sum_over_batch_size', 'mean') or 1/sum(w) ('mean_with_sample_weight').
sample_weight   d/dw_k: the sum of the per-sample losses w_k scales, times the reduction's factor; for
                'mean_with_sample_weight', (sum_k l - R n_k) / sum(w), 0 where sum(w) == 0 (divide_no_nan).

Error bounds follow tolerance.py's model.  Probabilities: 1/p, the product with z, 1 - p, 1/(1 - p), the
product with 1 - z, 1 - z and the difference are seven roundings, so the derivative is within
7 u (|z/p| + |(1 - z)/(1 - p)|) plus the label smoothing's dz (1/p + 1/(1 - p)).  Logits: autodiff of the
stable form gives [x >= 0] - z - sign(x) e/(1 + e) with e = exp(-|x|): exp's c_lib ULP and three roundings
on the last term, two on the sum: (lib + 3u) t + 2u (1 + |z| + t), t = e/(1 + e).  The chain factors add
3 u of the product.  Underflow adds eta per operation.  A gradient computed in a wider dtype than the variable
(a float32 y_pred under a float64 loss) is rounded once more into the variable's dtype (``returned_error``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from harness.case import API_LOSS_CLASS, Case, Expected
from harness.dtypes import WORK, round_to
from harness.errors import UsageError
from harness.jsonio import encode_array
from harness.oracle import tolerance as tol

if TYPE_CHECKING:
    from harness.oracle.keras3 import Keras3

__all__ = ["expected_gradient", "probability_derivative", "logit_derivative", "returned_error"]


def probability_derivative(
    z: np.ndarray, dz: np.ndarray, p: np.ndarray, lo: float, hi: float, m: tol.ErrorModel
) -> tuple[np.ndarray, np.ndarray]:
    """d loss / d p for clipped probabilities, and its bound (see the module docstring)."""
    inside = (p >= lo) & (p <= hi)
    ps = np.where(inside, p, WORK(0.5))  # any value: masked out below
    with np.errstate(divide="ignore", invalid="ignore"):
        a = tol.mul0(z, 1 / ps)  # a zero weight times an infinite slope is 0, as 0 log 0 is in the value
        b = tol.mul0(1 - z, 1 / (1 - ps))
        g = np.where(inside, -a + b, WORK(0))
        err = 7 * m.u * (np.abs(a) + np.abs(b)) + dz * (1 / ps + 1 / (1 - ps)) + 8 * m.eta
    nan = np.isnan(p) | np.isnan(z)
    return np.where(nan, WORK(np.nan), g).astype(WORK), np.where(inside, err, WORK(0)).astype(WORK)


def logit_derivative(z: np.ndarray, dz: np.ndarray, x: np.ndarray, m: tol.ErrorModel) -> tuple[np.ndarray, np.ndarray]:
    """d loss / d x = sigmoid(x) - z, and its bound (see the module docstring)."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-np.abs(x))
        sig = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        t = e / (1 + e)
    g = (sig - z).astype(WORK)
    err = (m.lib + 3 * m.u) * t + 2 * m.u * (1 + np.abs(z) + t) + dz + 6 * m.eta
    return g, np.where(np.isnan(x), WORK(0), err).astype(WORK)


def expected_gradient(profile: Keras3, case: Case) -> Expected:
    """The gradient of sum(result) w.r.t. ``case.grad`` for ``case`` under ``profile``'s semantics."""
    o = case.options
    c = profile.compute_dtype(case)
    m = tol.error_model(c)
    rule = m.describe() + " (gradient)"
    if profile.name != "keras3":
        # Keras 2 shifts both logs by eps (log(p + eps)), so its derivative differs; it is not written here,
        # and the keras2 line has no gradient cases (generator.py: the paths family is Keras 3's).
        raise UsageError(f"gradients are modelled for the keras3 profile only, not {profile.name!r}")
    if case.producer is not None and (case.grad != "y_pred" or case.producer == "model.predict(x)" or o.from_logits):
        raise UsageError("gradients through a producer are modelled w.r.t. the logits of probabilities only")  # the reference has no answer
    if case.grad == "sample_weight" and (case.api != API_LOSS_CLASS or case.sample_weight is None or case.sample_weight.ndim == 0):
        raise UsageError("a sample_weight gradient needs the loss class and an array of weights")  # not "TensorFlow must raise": the reference has no answer
    value = profile.expected(_without_grad(case))
    if value.raises is not None:
        return Expected(raises=value.raises, dtype=c, rule=rule)
    y = round_to(case.y_true, c).astype(WORK)
    p = round_to(case.y_pred, c).astype(WORK)
    if case.producer is not None:
        p, _ = profile.predictions(case, c, m)  # the producer's probabilities; the gradient is w.r.t. its logits
    if y.shape != p.shape:
        raise UsageError("gradients are modelled for labels and predictions of one shape")  # not "TensorFlow must raise": the reference has no answer
    ls = float(o.label_smoothing) if case.api in (API_LOSS_CLASS, "binary_crossentropy") else 0.0
    z = profile.smooth(y, ls)
    dz = tol.smoothing_error(y, ls, m)
    logits = o.from_logits or case.api == "nn.sigmoid_cross_entropy_with_logits"

    if case.api in ("ops.binary_crossentropy", "nn.sigmoid_cross_entropy_with_logits"):
        scale = np.ones(p.shape, dtype=WORK)
    else:
        axis = o.axis % p.ndim
        per_sample = 1 / WORK(p.shape[axis])
        if case.api == "binary_crossentropy":
            scale = np.full(p.shape, per_sample, dtype=WORK)
        else:
            factor = _loss_factor(profile, case, tuple(s for i, s in enumerate(p.shape) if i != axis), c)
            if isinstance(factor, str):
                return Expected(raises=factor, dtype=c, rule=rule)
            scale = np.expand_dims(factor, axis) * per_sample * np.ones(p.shape, dtype=WORK)

    if case.grad == "sample_weight":
        return _weight_gradient(profile, case, c, m, rule)
    if logits:
        g, err = logit_derivative(z, dz, p, m)
    else:
        lo = float(round_to(profile.epsilon, c))
        hi = float(round_to(1.0 - profile.epsilon, c))
        g, err = probability_derivative(z, dz, p, lo, hi, m)
    with np.errstate(invalid="ignore"):
        grad = g * scale
    bound = np.abs(scale) * err + 3 * m.u * np.abs(grad) + m.eta
    if case.producer is not None:
        grad, bound = _through_producer(case.producer, p, grad, bound, m)
    bound = bound + returned_error(grad, c, case.pred_dtype)
    return Expected(value=grad.astype(WORK), bound=np.where(np.isfinite(grad), bound, 0).astype(WORK), dtype=case.pred_dtype, rule=rule)


def returned_error(grad: np.ndarray, compute: str, returned: str) -> np.ndarray | float:
    """The rounding of a gradient computed in ``compute`` into the dtype of the variable it is taken with
    respect to: the loss casts its input to its compute dtype (Loss.__call__: ``convert_to_tensor(..., dtype=
    self.dtype)``), and the gradient of a cast is the incoming gradient cast back (math_grad.py _CastGrad),
    one rounding in ``returned``: u |g| + eta (standard model; eta for a result flushed below its smallest
    normal); 0 where the two dtypes are one (no cast)."""
    if compute == returned:
        return 0.0
    out = tol.error_model(returned)
    return out.u * np.abs(np.where(np.isfinite(grad), grad, 0)) + out.eta


def _through_producer(
    producer: str, p: np.ndarray, g: np.ndarray, err: np.ndarray, m: tol.ErrorModel
) -> tuple[np.ndarray, np.ndarray]:
    """The chain rule from d/dp to d/dx through the producer p = f(x): a sigmoid's derivative is p (1 - p)
    elementwise; a softmax over the last axis has the Jacobian diag(p) - p p^T, so d/dx_j = p_j (g_j -
    sum_i g_i p_i).  The bound carries the incoming error through the same factors, plus the products'
    and the sum's roundings and the producer's own error in p (c_lib ULP, tolerance.py) times |g|."""
    if producer == "layers.Softmax":
        k = p.shape[-1]
        dot = np.sum(g * p, axis=-1, keepdims=True)
        out = p * (g - dot)
        mags = np.abs(p) * (np.abs(g) + np.sum(np.abs(g * p), axis=-1, keepdims=True))
        bound = np.abs(p) * (err + np.sum(err * p, axis=-1, keepdims=True)) + ((k + 4) * m.u + 2 * m.lib) * mags
        return out.astype(WORK), (bound + m.eta).astype(WORK)
    d = p * (1 - p)
    out = g * d
    bound = err * d + (4 * m.u + 2 * m.lib) * np.abs(out) + m.eta
    return out.astype(WORK), bound.astype(WORK)


def _without_grad(case: Case) -> Case:
    d = case.as_dict()
    d["grad"] = None
    return Case.from_dict(d)


def _loss_factor(profile: Keras3, case: Case, loss_shape: tuple[int, ...], c: str) -> np.ndarray | str:
    """d result / d per-sample loss for the loss class: weight times mask times the reduction's factor."""
    weights, raises = profile.align_weights(case, loss_shape, c)
    if raises:
        return raises
    w = np.ones(loss_shape, dtype=WORK) if weights is None else np.asarray(weights, dtype=WORK)
    if case.mask is not None:
        w = np.where(case.mask, w, WORK(0))
    red = case.options.reduction
    if red in (None, "none", "sum"):
        f = WORK(1)
    elif red == "mean_with_sample_weight" and weights is not None:
        total = np.sum(w, dtype=WORK)
        f = WORK(0) if total == 0 else 1 / total
    else:
        n = int(np.sum(case.mask)) if case.mask is not None else int(np.prod(loss_shape))
        f = WORK(0) if n == 0 else 1 / WORK(n)
    return (w * f).astype(WORK)


def _weight_gradient(profile: Keras3, case: Case, c: str, m: tol.ErrorModel, rule: str) -> Expected:
    """d result / d sample_weight for the loss class (weights given as an array)."""
    unweighted = Case.from_dict({**case.as_dict(), "grad": None, "sample_weight": None, "options": {**case.options.as_dict(), "reduction": None}})
    per = profile.expected(unweighted)
    assert per.value is not None and per.bound is not None and case.sample_weight is not None
    losses = np.asarray(per.value, dtype=WORK)
    errors = np.asarray(per.bound, dtype=WORK)
    w_given = round_to(case.sample_weight, c).astype(WORK)
    weights, _ = profile.align_weights(case, losses.shape, c)
    assert weights is not None
    if case.mask is not None:
        losses = np.where(case.mask, losses, WORK(0))
        errors = np.where(case.mask, errors, WORK(0))
    # which given weight scales each loss element: broadcast the indices as align_weights broadcasts values
    index = np.arange(w_given.size).reshape(w_given.shape)
    idx_case = Case.from_dict({**case.as_dict(), "grad": None, "sample_weight": encode_array(index.astype(np.float64))})
    owner, _ = profile.align_weights(_float64_weights(idx_case), losses.shape, "float64")
    owner = np.asarray(owner, dtype=np.int64)
    n_elems = np.bincount(owner.ravel(), minlength=w_given.size).reshape(w_given.shape).astype(WORK)
    sums = np.bincount(owner.ravel(), weights=losses.ravel().astype(np.float64), minlength=w_given.size).reshape(w_given.shape).astype(WORK)
    sum_err = np.bincount(owner.ravel(), weights=errors.ravel().astype(np.float64), minlength=w_given.size).reshape(w_given.shape).astype(WORK)
    mags = np.bincount(owner.ravel(), weights=np.abs(losses).ravel().astype(np.float64), minlength=w_given.size).reshape(w_given.shape).astype(WORK)
    n = WORK(losses.size if case.mask is None else int(np.sum(case.mask)))
    red = case.options.reduction
    gam = tol.gamma(int(max(losses.size - 1, 0)), m.u)
    base_err = sum_err + gam * mags
    if red in (None, "none", "sum"):
        grad, bound = sums, base_err
    elif red == "mean_with_sample_weight":
        w_eff = np.where(case.mask, weights, 0) if case.mask is not None else weights
        total_w = np.sum(w_eff, dtype=WORK)
        if total_w == 0:
            grad, bound = np.zeros(w_given.shape, WORK), np.zeros(w_given.shape, WORK)
        else:
            result = np.sum(losses * w_eff, dtype=WORK) / total_w
            grad = (sums - result * n_elems) / total_w
            bound = (base_err + np.abs(result) * n_elems * (gam + 2 * m.u) + np.sum(errors * np.abs(w_eff)) / abs(total_w) * n_elems) / abs(total_w) + 4 * m.u * np.abs(grad)
    else:
        grad = np.zeros(w_given.shape, WORK) if n == 0 else sums / n
        bound = np.zeros(w_given.shape, WORK) if n == 0 else base_err / n + 2 * m.u * np.abs(grad)
    bound = np.asarray(bound, dtype=WORK) + m.eta + returned_error(np.asarray(grad, dtype=WORK), c, case.weight_dtype)
    return Expected(value=np.asarray(grad, dtype=WORK), bound=bound, dtype=case.weight_dtype, rule=rule)


def _float64_weights(case: Case) -> Case:
    return Case.from_dict({**case.as_dict(), "weight_dtype": "float64"})
