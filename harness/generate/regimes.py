"""The tags a drawn case carries: its shape kind and its value regime, as the loss sees its values.

Kept apart from the Hypothesis strategies so that tagging a case (the fuzz search does it while it
shrinks) needs neither Hypothesis nor a draw.  May import: the ground floor and the oracle (the clip
bounds and the rank rule the regimes are defined by).
"""

from __future__ import annotations

import math

import numpy as np

from harness.case import Case
from harness.dtypes import float_format, round_to
from harness.oracle.keras3 import EPSILON, Keras3

__all__ = ["REGIMES", "regime_of", "shape_kind"]

# Value regimes of a fuzz case, most specific first (see regime_of).  The first two are the input classes of
# registered divergences; their names differ from the grid's regimes so a registry entry can list both.
REGIMES = ("unclipped_one", "infinite_indeterminate", "nan", "infinite_determinate", "clipped", "large", "typical")


def shape_kind(y_true: tuple[int, ...], y_pred: tuple[int, ...]) -> str | None:
    """The kind of ``shapes()`` that draws this pair of shapes, or None (the inverse of ``shapes``)."""
    if len(y_true) != len(y_pred):
        if y_pred == y_true + (1,) and len(y_true) == 1 and y_true[0] >= 1:
            return "labels_B_preds_B1"
        if y_true == y_pred + (1,) and len(y_pred) == 1 and y_pred[0] >= 1:
            return "labels_B1_preds_B"
        return None
    if y_true != y_pred or not y_true or min(y_true[1:], default=1) < 1:
        return None
    if y_true[0] == 0:
        return {2: "empty", 3: "empty_BTC"}.get(len(y_true))
    if len(y_true) == 2:
        return "B1" if y_true[1] == 1 else "BC"
    return {1: "rank1", 3: "BTC"}.get(len(y_true))


def _smoothed(y: np.ndarray, ls: float, dtype: str) -> np.ndarray:
    """Labels as the loss computes them in ``dtype``: y * (1 - ls) + 0.5 * ls, each operation rounded (the
    Python-float constants are converted to the tensor's dtype first), and a subnormal result flushed to
    zero, as TensorFlow's CPU kernels do (tolerance.py, ``eta``)."""
    with np.errstate(invalid="ignore", over="ignore"):  # an infinite label times 1 - ls = 0 is NaN, as in the loss
        if ls:
            scaled = round_to(y * float(round_to(1.0 - ls, dtype)), dtype)
            y = round_to(scaled + float(round_to(0.5 * ls, dtype)), dtype)
        return np.where(np.abs(y) < float_format(dtype).smallest_normal, 0.0, y)


def regime_of(case: Case) -> str:
    """The value regime of ``case``: the first of REGIMES its inputs, as the loss converts them, belong to.

    ``unclipped_one``  (probabilities) a label 1 meets a probability 1 in a compute dtype where the clip's
                       upper bound 1 - eps rounds to 1 (float16, bfloat16): the log(1 - p) = log(0) case
    ``infinite_indeterminate``  (logits) +inf, or -inf with label 0: where max(x, 0) - x z + log1p(exp(-|x|))
                       meets inf - inf or 0 * inf
    ``nan``            a NaN label or prediction
    ``infinite_determinate``  (logits) any other infinite logit (the loss is +inf)
    ``clipped``        (probabilities) a probability at or outside a clip bound
    ``large``          (logits) a finite logit of magnitude >= 100
    ``typical``        anything else

    The first two are the input classes of registered divergences, so they come first: a registry entry
    keyed on them explains a case that holds such an element whatever else it holds.  Labels are taken as
    the compute dtype smooths and flushes them, so a label smoothing that rounds away counts as none and a
    subnormal label as 0.
    """
    o = case.options
    c = case.compute_dtype
    y = np.asarray(round_to(case.y_true, c), dtype=np.float64)
    p = np.asarray(round_to(case.y_pred, c), dtype=np.float64)
    y, p, mismatch = Keras3.reconcile_ranks(y, p)
    z = _smoothed(y, o.label_smoothing, c) if not mismatch else np.full(p.shape, np.nan)
    nan = bool(np.isnan(y).any() or np.isnan(p).any())
    if not o.from_logits:
        lo, hi = float(round_to(EPSILON, c)), float(round_to(1.0 - EPSILON, c))
        if hi == 1.0 and np.any((z == 1) & (p == 1)):
            return "unclipped_one"
        if nan:
            return "nan"
        return "clipped" if np.any((p <= lo) | (p >= hi)) else "typical"
    # a NaN label makes the element NaN whatever the logit: only a real label makes an infinite logit indeterminate
    if np.any((p == math.inf) & ~np.isnan(z)) or np.any((p == -math.inf) & (z == 0)):
        return "infinite_indeterminate"
    if nan:
        return "nan"
    if np.any(np.isinf(p)):
        return "infinite_determinate"
    return "large" if np.any(np.abs(p) >= 1e2) else "typical"
