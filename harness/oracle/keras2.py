"""The ``keras2`` profile: BinaryCrossentropy as Keras 2 documents it (``tf.keras`` up to TensorFlow 2.15,
and ``tf_keras`` with ``TF_USE_LEGACY_KERAS=1`` on later TensorFlow).

NumPy only, like the ``keras3`` profile it extends (reference.py): the rules that did not change between the
lines are inherited, and each rule that did is overridden here with its source.  Sources, identical in
``keras`` 2.15.0 (``keras/src/...``, what TensorFlow 2.15 installs) and ``tf_keras`` 2.21.0
(``tf_keras/src/...``):

``losses.py``        the ``BinaryCrossentropy``, ``Loss`` and ``binary_crossentropy`` docstrings and code
``backend.py``       ``binary_crossentropy(target, output, from_logits)``, the clipping and the logs
``losses_utils.py``  ``ReductionV2`` (its docstring defines the reductions), ``squeeze_or_expand_dimensions``,
                     ``compute_weighted_loss``

Unchanged from Keras 3, so inherited: the label smoothing formula (the ``binary_crossentropy`` docstring has
the same sentence), the logit form (both call ``tf.nn.sigmoid_cross_entropy_with_logits``), the mean over
``axis``, and ``sample_weight`` (the ``Loss.__call__`` docstring is the paragraph keras.io still shows for
Keras 3: a scalar scales, ``[batch_size]`` rescales each sample, a broadcastable shape scales each element,
"Raises: ValueError: If the shape of `sample_weight` is invalid.").  An empty batch reduces to 0 as in
Keras 3's documented semantics: ``_safe_mean`` is ``divide_no_nan`` ("If `num_present` is zero, then zero is
returned.").
"""

from __future__ import annotations

import numpy as np

from harness.case import Case
from harness.dtypes import WORK, round_to
from harness.oracle import tolerance as tol
from harness.oracle.keras3 import EPSILON, Keras3

__all__ = ["REDUCTIONS_V2", "Keras2"]

# losses_utils.py ReductionV2.all(): (AUTO, NONE, SUM, SUM_OVER_BATCH_SIZE); ReductionV2.validate raises
# ValueError("Invalid Reduction Key: ...") for anything else, None included, in Loss.__init__.
REDUCTIONS_V2: tuple[str, ...] = ("auto", "none", "sum", "sum_over_batch_size")


class Keras2(Keras3):
    """Keras 2 semantics of ``BinaryCrossentropy.__call__`` (see the module docstring for the sources)."""

    name = "keras2"

    @staticmethod
    def compute_dtype(case: Case) -> str:
        """The dtype of ``y_pred``.

        losses.py binary_crossentropy: ``y_pred = tf.convert_to_tensor(y_pred); y_true = tf.cast(y_true,
        y_pred.dtype)``; Keras 2's Loss has no ``dtype`` and compute_weighted_loss casts the weights to the
        losses' dtype, so the result has y_pred's dtype too.
        """
        return case.pred_dtype

    @staticmethod
    def option_error(case: Case) -> str | None:
        """The constructor's arguments: no ``dtype``, and the four ReductionV2 names.

        losses.py: ``BinaryCrossentropy.__init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
        reduction=losses_utils.ReductionV2.AUTO, name="binary_crossentropy")``, so ``dtype=`` is a
        TypeError; ``Loss.__init__`` calls ``ReductionV2.validate(reduction)``.
        """
        o = case.options
        if o.dtype is not None:
            return f"dtype={o.dtype!r}: Keras 2's BinaryCrossentropy has no dtype argument"
        if o.reduction not in REDUCTIONS_V2:
            return f"reduction={o.reduction!r} is not one of ReductionV2 {', '.join(REDUCTIONS_V2)}"
        return None

    @staticmethod
    def reconcile_ranks(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None]:
        """A trailing size-1 axis on the side with one more axis is squeezed; nothing is ever expanded.

        Source (the docs only say both are ``[batch_size, d0, .. dN]``): LossFunctionWrapper.call ->
        losses_utils.squeeze_or_expand_dimensions(y_pred, y_true) -> remove_squeezable_dimensions, which
        squeezes the predictions when ``rank(y_pred) - rank(y_true) == 1`` and their last axis is 1, the
        labels when the difference is -1 and theirs is.  So (B,) labels against (B, 1) predictions become a
        rank-1 pair whose mean over axis -1 is one number (Keras 3 expands instead and keeps B losses).
        Then backend.binary_crossentropy's docstring: "target: A tensor with the same shape as `output`."
        """
        if p.ndim == y.ndim + 1 and p.shape[-1] == 1:
            p = p[..., 0]
        elif y.ndim == p.ndim + 1 and y.shape[-1] == 1:
            y = y[..., 0]
        if y.shape != p.shape:
            return y, p, f"y_true shape {y.shape} and y_pred shape {p.shape} differ"
        return y, p, None

    def probability_terms(
        self, z: np.ndarray, dz: np.ndarray, p: np.ndarray, dtype: str, m: tol.ErrorModel
    ) -> tuple[np.ndarray, np.ndarray]:
        """Clip to [eps, 1 - eps] in the dtype, then epsilon once more inside each log.

        backend.py binary_crossentropy::

            epsilon_ = _constant_to_tensor(epsilon(), output.dtype.base_dtype)
            output = tf.clip_by_value(output, epsilon_, 1.0 - epsilon_)
            bce = target * tf.math.log(output + epsilon())
            bce += (1 - target) * tf.math.log(1 - output + epsilon())
            return -bce

        ``epsilon_`` is eps in the dtype and ``1.0 - epsilon_`` is computed in the dtype (1.0 in float16
        and bfloat16); ``output + epsilon()`` converts eps to the dtype again.  Both log arguments are at
        least eps, so every term is finite: no 0 log 0 arises, and the largest loss is -log(2 eps).
        """
        eps = float(round_to(EPSILON, dtype))
        hi = float(round_to(1.0 - eps, dtype))
        pc = np.clip(p, WORK(eps), WORK(hi))
        s = WORK(eps)
        with np.errstate(invalid="ignore"):
            loss = -(z * np.log(pc + s) + (1 - z) * np.log1p(s - pc))
        nan = np.isnan(z) | np.isnan(pc)
        elem = np.where(nan, WORK(np.nan), loss).astype(WORK)
        return elem, tol.probability_error(z, dz, pc, m, shift=eps)

    @staticmethod
    def reduce(
        loss: np.ndarray,
        loss_err: np.ndarray,
        weights: np.ndarray | None,
        reduction: str | None,
        m: tol.ErrorModel,
    ) -> tuple[np.ndarray, np.ndarray]:
        """ReductionV2: "`SUM`: Scalar sum of weighted losses. `SUM_OVER_BATCH_SIZE`: Scalar `SUM` divided by
        number of elements in losses", "`AUTO` ... For almost all cases this uses `SUM_OVER_BATCH_SIZE`"
        (Loss._get_reduction: outside a tf.distribute strategy), "`NONE`: No additional reduction".  These
        are Keras 3's sum, sum_over_batch_size and none.
        """
        return Keras3.reduce(loss, loss_err, weights, "sum_over_batch_size" if reduction == "auto" else reduction, m)

