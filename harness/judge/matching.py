"""The facets of a record that the registry matches: the case's own, the profile it was judged against, the
compute dtype that profile says the loss uses (Keras 2 computes in ``y_pred``'s dtype, Keras 3 in the
loss's ``dtype``), so an entry can be keyed to one line's semantics, and facts about the values as that
dtype holds them.

May import: the ground floor, the oracle (the compute dtype's error model) and generate (the facet names).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from harness.backends import backend_of
from harness.case import API_LOSS_CLASS, Case, Expected, policy_compute_dtype
from harness.dtypes import FLOAT_DTYPES, round_to
from harness.generate.space import label_domain, loss_shape, size_bucket
from harness.oracle import expected
from harness.oracle.keras3 import Keras3
from harness.oracle.tolerance import error_model, flushable, read_model

__all__ = ["record_facets"]


def record_facets(case: Case, expected: Expected | None, profile: str) -> dict[str, Any]:
    """The facets the registry matches: the case's, the profile, the Keras backend the case ran under, the
    profile's compute dtype, and facts read off the values:

    ``flushed_weights``  a sample weight, as the compute dtype holds it, is one the kernels read as 0
                         (nonzero and subnormal: ``tolerance.flushable``)
    ``size``             y_pred's element count as a size bucket (generate/space.py)
    ``labels``           the label domain: hard, soft, outside, nan_inf, integer, boolean
    ``loss_shape``       the unreduced per-sample loss shape, e.g. ``(1,)``, as the reference reconciles ranks
    ``loss_size``        its element count as a size bucket, or ``scalar`` for a rank-0 loss
    ``masked_nonfinite`` a position the mask removes holds a non-finite loss element
    ``infinite_label_logit``  an infinite label meets a finite logit (see ``_infinite_label_logit``)
    ``split_batches``    a training loop (evaluate, fit) splits the data into more than one batch
    ``mixed_dtypes``     the labels' dtype is not the predictions'
    ``bf16_cast_tie``    a float64 input that the loss casts to bfloat16 rounds otherwise through float32
                         (TensorFlow's cast rounds twice; see ``_bf16_cast_tie``)
    ``producer_cast``    the loss casts a producer function's output to its own dtype (see ``_producer_cast``)
    """
    facets = {**case.facets, "profile": profile, "backend": backend_of(case)}
    if expected is not None and expected.dtype is not None:
        facets["compute_dtype"] = expected.dtype
    facets["flushed_weights"] = _flushed_weights(case, facets["compute_dtype"])
    facets["size"] = size_bucket(int(case.y_pred.size))
    facets["labels"] = label_domain(case)
    shape = loss_shape(case.y_true.shape, case.y_pred.shape, case.options.axis)
    facets["loss_shape"] = str(shape)
    facets["loss_size"] = "scalar" if shape == () else size_bucket(math.prod(shape))
    facets["masked_nonfinite"] = _masked_nonfinite(case, profile)
    facets["infinite_label_logit"] = _infinite_label_logit(case, facets["compute_dtype"])
    facets["bf16_cast_tie"] = _bf16_cast_tie(case, facets["compute_dtype"])
    facets["mixed_dtypes"] = case.true_dtype != case.pred_dtype
    spec = case.training
    facets["split_batches"] = bool(
        spec is not None and spec.route in ("evaluate", "fit") and spec.batch_size is not None
        and case.y_pred.ndim > 0 and spec.batch_size < int(case.y_pred.shape[0])  # (a 0-d input has no batches)
    )
    facets["producer_cast"] = _producer_cast(case, facets["compute_dtype"])
    return facets


PRODUCER_FUNCTIONS = ("tf.sigmoid", "keras.ops.sigmoid", "keras.activations.sigmoid")


def _producer_cast(case: Case, compute_dtype: str) -> bool:
    """A producer's output is not in the loss's compute dtype, so the loss converts it (Loss.__call__:
    convert_to_tensor(y_pred, dtype=self.dtype)) and receives a new tensor: one that has neither the
    ``_keras_logits`` the producer attached nor a Sigmoid op as its producer.  A function's output is in its
    logits' dtype; a layer's in its policy's compute dtype (a global mixed policy's 16-bit one), else floatx,
    which the loss also computes in unless its ``dtype`` says otherwise: only the policy is told apart here.
    The functions (binary_crossentropy) compute in y_pred's own dtype and convert nothing."""
    if case.producer in PRODUCER_FUNCTIONS:
        return case.pred_dtype != compute_dtype
    cfg = case.config
    layer = case.producer is not None and case.producer.startswith(("layers.", "model"))
    if not layer or cfg is None or cfg.policy is None or case.api != API_LOSS_CLASS:
        return False
    return policy_compute_dtype(cfg.policy) != compute_dtype


def _bf16_cast_tie(case: Case, compute_dtype: str) -> bool:
    """A float64 input of a bfloat16 computation whose value, rounded to float32 first, lands on a bfloat16
    tie and so rounds to the other neighbour than rounding once would: the only inputs where a cast that
    goes through float32 (TensorFlow's, registered) and the reference's single rounding part."""
    if compute_dtype != "bfloat16":
        return False
    for values, dtype in ((case.y_pred, case.pred_dtype), (case.y_true, case.true_dtype), (case.sample_weight, case.weight_dtype)):
        if values is None or dtype != "float64" or values.size == 0:
            continue
        with np.errstate(all="ignore"):
            once = round_to(values, "bfloat16")
            twice = round_to(round_to(values, "float32"), "bfloat16")
        if np.any((once != twice) & ~np.isnan(once)):
            return True
    return False


def _infinite_label_logit(case: Case, compute_dtype: str) -> bool:
    """An infinite label meets a finite logit that the kernels do not flush to 0, and nothing else in the case
    is NaN: where the documented cross-entropy is inf - inf, TensorFlow's max(x, 0) - x z + log1p(exp(-|x|))
    answers -sign(x) inf, and with no NaN beside it a reduction keeps that difference."""
    logits = case.options.from_logits or case.api == "nn.sigmoid_cross_entropy_with_logits"
    if not logits or compute_dtype not in FLOAT_DTYPES:
        return False
    y = np.asarray(case.y_true, dtype=np.float64)
    if not np.isinf(y).any():  # (most cases: no infinite label, nothing more to read)
        return False
    x = np.asarray(round_to(case.y_pred, compute_dtype), dtype=np.float64)
    y, x, mismatch = Keras3.reconcile_ranks(y, x)
    if mismatch:
        return False
    if np.any(np.isnan(y)) or np.any(np.isnan(x)):
        return False
    if case.sample_weight is not None and not np.any(case.sample_weight):
        return False  # every weight 0: the weighted mean is defined as 0 on both sides
    kept = np.abs(x) >= error_model(compute_dtype).flush
    return bool(np.any(np.isinf(y) & np.isfinite(x) & (x != 0) & kept))


def _masked_nonfinite(case: Case, profile: str) -> bool:
    """Whether the elementwise loss, as the documentation defines it, is non-finite where the mask is False."""
    if case.mask is None or case.api != API_LOSS_CLASS:
        return False
    plain = replace(case, options=replace(case.options, reduction="none"), sample_weight=None, mask=None, grad=None)
    try:
        e = expected(plain, profile=profile)
    except Exception:  # noqa: BLE001 - a case the oracle cannot answer has no such fact
        return False
    if e.value is None or e.value.shape != case.mask.shape:
        return False
    return bool(np.any(~np.isfinite(np.asarray(e.value, dtype=np.float64)) & ~case.mask))


def _flushed_weights(case: Case, compute_dtype: str) -> bool:
    if case.sample_weight is None or compute_dtype not in FLOAT_DTYPES:
        return False
    w = round_to(case.sample_weight, compute_dtype)  # as the reference reads it (oracle/keras3.py)
    return bool(np.any(flushable(w, read_model(error_model(compute_dtype), case.weight_dtype))))
