"""A team's own binary cross-entropy, in NumPy, written to Keras 3's documented semantics.

examples/test_custom_loss.py puts it under the specification oracle with the bce-harness pytest plugin.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-7


def my_bce(y_true, y_pred, from_logits=False, label_smoothing=0.0, sample_weight=None):
    """Mean over the last axis, then weights, then the mean over the per-sample losses (sum_over_batch_size)."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    # ranks that differ by a trailing axis of 1: Keras 3 expands a rank-1 side, else squeezes the other
    if y.ndim == p.ndim + 1 and y.shape[-1] == 1:
        y, p = (y, p[..., None]) if p.ndim == 1 else (y[..., 0], p)
    elif p.ndim == y.ndim + 1 and p.shape[-1] == 1:
        y, p = (y[..., None], p) if y.ndim == 1 else (y, p[..., 0])
    y = y * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:  # y softplus(-x) + (1 - y) softplus(x), an infinite logit taking its limit (0 * inf = 0)
        with np.errstate(over="ignore", invalid="ignore"):
            softplus = np.maximum(p, 0) + np.log1p(np.exp(-np.abs(p)))
            softplus_neg = np.maximum(-p, 0) + np.log1p(np.exp(-np.abs(p)))
            terms = np.where(y == 0, 0, y * softplus_neg) + np.where(y == 1, 0, (1 - y) * softplus)
    else:  # epsilon and 1 - epsilon as float32 holds them, the loss's compute dtype
        p = np.clip(p, np.float32(EPSILON), np.float32(1 - EPSILON))
        terms = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    per_sample = np.mean(terms, axis=-1)
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        w = w[..., 0] if w.ndim == per_sample.ndim + 1 and w.shape[-1] == 1 else w  # (B, 1) weights on a (B,) loss
        w = w.reshape(w.shape + (1,) * (per_sample.ndim - w.ndim)) if 0 < w.ndim < per_sample.ndim else w
        per_sample = per_sample * w
    per_sample = np.broadcast_to(per_sample, np.shape(per_sample))
    return np.float32(np.sum(per_sample) / per_sample.size) if per_sample.size else np.float32(0.0)
