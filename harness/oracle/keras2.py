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

from harness.case import Case, Expected, policy_compute_dtype
from harness.dtypes import WORK
from harness.jsonio import encode_array
from harness.oracle import tolerance as tol
from harness.oracle.keras3 import Keras3

__all__ = ["REDUCTIONS_V2", "Keras2"]

# losses_utils.py ReductionV2.all(): (AUTO, NONE, SUM, SUM_OVER_BATCH_SIZE); ReductionV2.validate raises
# ValueError("Invalid Reduction Key: ...") for anything else, None included, in Loss.__init__.
REDUCTIONS_V2: tuple[str, ...] = ("auto", "none", "sum", "sum_over_batch_size")


class Keras2(Keras3):
    """Keras 2 semantics of ``BinaryCrossentropy.__call__`` (see the module docstring for the sources)."""

    name = "keras2"
    # the narration's rules that differ from Keras 3's (Keras3.rule)
    DTYPE_RULE = "(y_pred's dtype; y_true is cast to it)"
    PROBABILITIES_RULE = (
        "from_logits=False: y_pred are probabilities.  Keras 2 (tf_keras backend.binary_crossentropy) recovers logits "
        "from output._keras_logits, or in a graph from the input of a Sigmoid op; an eager tensor, as here, is used "
        "as it is"
    )
    TERMS_RULE = "-(z * log(p + epsilon) + (1 - z) * log(1 - p + epsilon)) on the clipped p (Keras 2 backend.py)"

    def compute_dtype(self, case: Case) -> str:
        """The dtype of ``y_pred``.

        losses.py binary_crossentropy: ``y_pred = tf.convert_to_tensor(y_pred); y_true = tf.cast(y_true,
        y_pred.dtype)``; Keras 2's Loss has no ``dtype`` and compute_weighted_loss casts the weights to the
        losses' dtype, so the result has y_pred's dtype too.
        """
        if case.api == "metrics.BinaryCrossentropy":
            # Metric "dtype: (Optional) data type of the metric result": floatx() by default; a mixed policy's
            # result is in its variable dtype, float32 (tf_keras base_metric.py: the result reads the variables)
            cfg = case.config
            if cfg is not None and cfg.loss_policy is not None and cfg.loss_policy.startswith("mixed_"):
                return "float32"
            return case.compute_dtype_under(self.floatx)
        cfg = case.config
        if case.producer is not None and case.producer.startswith(("layers.", "model")) and cfg is not None and cfg.policy:
            # a layer under a global policy outputs its compute dtype, and the loss computes in y_pred's
            return policy_compute_dtype(cfg.policy)
        return case.pred_dtype

    def special_inputs(self, case: Case) -> Expected | None:
        """Integer predictions and ragged inputs on the Keras 2 line.

        Integers: the loss and its functions compute in y_pred's dtype (binary_crossentropy: "y_pred =
        tf.convert_to_tensor(y_pred); y_true = tf.cast(y_true, y_pred.dtype)"), where the clip's epsilon
        cannot be converted: they raise, as does tf.nn ("logits: A Tensor of type float32 or float64").  The
        metric casts both to its dtype first (MeanMetricWrapper.update_state: "y_pred = tf.cast(y_pred,
        self._dtype)", tf_keras metrics/base_metric.py), so it averages the float loss of those values.
        Ragged: Keras 2 documents ragged support in its losses (LossFunctionWrapper.call: "if
        tf_utils.is_ragged(y_pred) ... _ragged_tensor_apply_loss", losses.py) -- the function is applied
        to each row, giving one loss per row (the mean over the row's values), and the loss class reduces
        those per-row losses; the metric flattens both sides to their values first
        (ragged_assert_compatible_and_get_flat_values), so its result is the mean over all values.  The
        legacy backend function has no such dispatch and raises; tf.nn's elementwise op works row by row.
        """
        lengths = case.row_lengths  # None unless the case is ragged
        if case.pred_dtype == "int32":
            if case.api == "metrics.BinaryCrossentropy" and lengths is None:
                return self.metric(self.flat_case(case, pred_dtype="float32"))
            rule = tol.error_model("float32").describe()
            return Expected(raises=f"{case.api} computes in y_pred's dtype, and int32 cannot hold its epsilon", dtype=None, rule=rule)
        if lengths is None:
            return None
        rule = tol.error_model("float32").describe()
        if case.api == "nn.sigmoid_cross_entropy_with_logits":
            return self.function(self.flat_case(case))
        if case.api == "metrics.BinaryCrossentropy":
            flat = self.function(self.flat_case(case, api="binary_crossentropy"))
            return Expected(value=flat.value, bound=flat.bound, dtype=case.compute_dtype_under(self.floatx), rule=rule)
        if case.api not in ("BinaryCrossentropy", "binary_crossentropy"):
            return Expected(raises=f"{case.api} takes dense tensors, not ragged ones", dtype=None, rule=rule)
        c = case.pred_dtype
        m = tol.error_model(c)
        rows = [Case.from_dict({**case.as_dict(), "row_lengths": None, "y_true": encode_array(case.y_true[i, :n]),
                                "y_pred": encode_array(case.y_pred[i, :n]), "api": "binary_crossentropy"})
                for i, n in enumerate(lengths)]  # fmt: skip
        values: list[float] = []
        bounds: list[float] = []
        for i, e in enumerate(self.function(r) for r in rows):
            if e.value is None or e.bound is None:
                # a row the function rejects (axis=1 on the 1-D rows): no per-row loss to reduce
                raise TypeError(f"row {i} of the ragged case has no loss: {e.raises}")
            values.append(float(e.value))
            bounds.append(float(e.bound))
        loss = np.asarray(values, dtype=WORK)
        err = np.asarray(bounds, dtype=WORK)
        if case.api == "binary_crossentropy":
            return Expected(value=loss, bound=err, dtype=c, rule=m.describe())
        raises = self.option_error(case)
        if raises:
            return Expected(raises=raises, dtype=c, rule=m.describe())
        value, bound = self.reduce(loss, err, None, case.options.reduction, m)
        return Expected(value=value, bound=bound, dtype=c, rule=m.describe())

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
        if case.config is not None and case.config.loss_policy is not None:
            return f"dtype={case.config.loss_policy!r}: Keras 2's BinaryCrossentropy has no dtype argument"
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

        the formula Keras 3 keeps in ``tf.keras.backend.binary_crossentropy`` (Keras3.shifted_probability_terms).
        """
        return self.shifted_probability_terms(z, dz, p, dtype, m)

    @staticmethod
    def reduce(
        loss: np.ndarray,
        loss_err: np.ndarray,
        weights: np.ndarray | None,
        reduction: str | None,
        m: tol.ErrorModel,
        *,
        mask: np.ndarray | None = None,
        read: tol.ErrorModel | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """ReductionV2: "`SUM`: Scalar sum of weighted losses. `SUM_OVER_BATCH_SIZE`: Scalar `SUM` divided by
        number of elements in losses", "`AUTO` ... For almost all cases this uses `SUM_OVER_BATCH_SIZE`"
        (Loss._get_reduction: outside a tf.distribute strategy), "`NONE`: No additional reduction".  These
        are Keras 3's sum, sum_over_batch_size and none.
        """
        return Keras3.reduce(loss, loss_err, weights, "sum_over_batch_size" if reduction == "auto" else reduction, m, mask=mask, read=read)

