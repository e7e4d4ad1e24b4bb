"""The specification oracle: what BinaryCrossentropy is documented to compute, in high precision.

NumPy and the standard library only; this module never imports TensorFlow or Keras.  A *profile* is one
line's documented semantics; ``keras3`` is Keras 3 as shipped as ``tf.keras`` from TensorFlow 2.16 on.
Each rule cites where it comes from: the docstring of ``keras.losses.BinaryCrossentropy`` /
``keras.losses.binary_crossentropy`` / ``keras.losses.Loss`` (Keras 3.15, the same text on keras.io/api/
losses/probabilistic_losses/), and for behaviour the docs leave open, the Keras 3.15 source named beside it.

The inputs are converted as the loss converts them (rounded to the compute dtype), then everything is
computed in the working precision ``WORK`` (80-bit extended on x86-64) together with a forward error bound
for an implementation in the compute dtype (tolerance.py).  Where the documented math and the formats
disagree, the math wins: ``0 * log(0)`` is 0 and an infinite logit has the limit value, so a low-precision
format that defeats the clip shows up as a divergence instead of being copied into the reference.
"""

from __future__ import annotations

import numpy as np

from harness.case import API_LOSS_CLASS, REDUCTIONS, Case, Expected, Options
from harness.dtypes import WORK, round_to
from harness.errors import UsageError
from harness.oracle import tolerance as tol

__all__ = ["EPSILON", "Keras3"]

# keras.config.epsilon(): "Return the value of the fuzz factor used in numeric expressions", default 1e-7
# (keras/src/backend/config.py, Keras 3.15).
EPSILON = 1e-7


class Keras3:
    """Keras 3 (``tf.keras`` on TensorFlow >= 2.16) semantics of ``BinaryCrossentropy.__call__``."""

    name = "keras3"
    epsilon = EPSILON

    def expected(self, case: Case) -> Expected:
        if case.grad is not None:  # the derivatives are oracle.gradient's: harness.oracle.expected sends them there
            raise UsageError("gradient cases are expected through harness.oracle.expected, not a profile")
        if case.api == "metrics.BinaryCrossentropy":
            return self.metric(case)
        if case.api != API_LOSS_CLASS:
            return self.function(case)
        o = case.options
        c = self.compute_dtype(case)
        m = tol.error_model(c)
        rule = m.describe()

        raises = self.option_error(case)
        if raises:
            return Expected(raises=raises, dtype=c, rule=rule)

        y = round_to(case.y_true, c).astype(WORK)
        p, dp = self.predictions(case, c, m)

        y, p, raises = self.reconcile_ranks(y, p)
        if raises:
            return Expected(raises=raises, dtype=c, rule=rule)

        ls = float(o.label_smoothing)
        z = self.smooth(y, ls)
        dz = tol.smoothing_error(y, ls, m)

        if o.from_logits:
            elem, err = self.logit_loss(z, p), tol.logit_error(z, dz, p, m)
        else:
            elem, err = self.probability_terms(z, dz, p, c, m)
            if dp is not None:
                err = err + tol.input_error(z, self.clip(p, c), np.reshape(dp, p.shape), m)

        # "axis: The axis along which to compute crossentropy (the features axis). Defaults to -1", and
        # "Returns: Binary crossentropy loss value. shape = [batch_size, d0, .. dN-1]": the mean over axis.
        ndim = elem.ndim
        if ndim == 0 or not -ndim <= o.axis < ndim:
            return Expected(raises=f"axis={o.axis} is out of range for rank {ndim}", dtype=c, rule=rule)
        loss, loss_err = self.mean_over_axis(elem, err, o.axis, m)

        weights, raises = self.align_weights(case, loss.shape, c)
        if raises:
            return Expected(raises=raises, dtype=c, rule=rule)
        if case.mask is not None:
            if case.mask.shape != loss.shape:
                return Expected(raises=f"mask shape {case.mask.shape} is not the loss shape {loss.shape}", dtype=c, rule=rule)
            value, bound = self.reduce(loss, loss_err, weights, o.reduction, m, mask=case.mask)
        else:
            value, bound = self.reduce(loss, loss_err, weights, o.reduction, m)
        return Expected(value=value, bound=bound, dtype=c, rule=rule)

    # -- the other entry points --------------------------------------------------------------------------

    def function(self, case: Case) -> Expected:
        """The stateless functions, each by its own docstring.

        ``tf.keras.losses.binary_crossentropy(y_true, y_pred, from_logits, label_smoothing, axis)``:
        "Returns: Binary crossentropy loss value. shape = [batch_size, d0, .. dN-1]" -- the loss class's
        per-sample loss, without rank reconciliation, weights or reduction; it computes in y_pred's dtype
        (losses.py: y_pred = ops.convert_to_tensor(y_pred); y_true = ops.cast(y_true, y_pred.dtype)).
        ``keras.ops.binary_crossentropy(target, output, from_logits)``: elementwise, "target ... Its shape
        should match the shape of the output tensor"; no smoothing, no mean.
        ``tf.nn.sigmoid_cross_entropy_with_logits(labels, logits)``: elementwise on logits, "logits and
        labels must have the same type and shape", "max(x, 0) - x * z + log(1 + exp(-abs(x)))".
        """
        o = case.options
        c = case.pred_dtype
        m = tol.error_model(c)
        rule = m.describe()
        api = case.api
        if api != "binary_crossentropy" and case.true_dtype != case.pred_dtype:
            return Expected(raises=f"{api} takes labels and predictions of one dtype", dtype=c, rule=rule)
        if case.y_true.shape != case.y_pred.shape:
            return Expected(raises=f"{api}: y_true shape {case.y_true.shape} is not y_pred shape {case.y_pred.shape}", dtype=c, rule=rule)
        y = round_to(case.y_true, c).astype(WORK)
        p, dp = self.predictions(case, c, m)
        ls = float(o.label_smoothing) if api == "binary_crossentropy" else 0.0
        z = self.smooth(y, ls)
        dz = tol.smoothing_error(y, ls, m)
        if o.from_logits or api == "nn.sigmoid_cross_entropy_with_logits":
            elem, err = self.logit_loss(z, p), tol.logit_error(z, dz, p, m)
        else:
            elem, err = self.probability_terms(z, dz, p, c, m)
            if dp is not None:
                err = err + tol.input_error(z, self.clip(p, c), dp, m)
        if api != "binary_crossentropy":
            return Expected(value=elem, bound=err, dtype=c, rule=rule)
        if elem.ndim == 0 or not -elem.ndim <= o.axis < elem.ndim:
            return Expected(raises=f"axis={o.axis} is out of range for rank {elem.ndim}", dtype=c, rule=rule)
        value, bound = self.mean_over_axis(elem, err, o.axis, m)
        return Expected(value=value, bound=bound, dtype=c, rule=rule)

    def metric(self, case: Case) -> Expected:
        """``tf.keras.metrics.BinaryCrossentropy``: the mean of the per-sample losses over every update.

        metrics/probabilistic_metrics.py: a MeanMetricWrapper of binary_crossentropy; "result() will return
        the average metric value across all samples seen so far" (reduction_metrics.py MeanMetricWrapper),
        and Mean's "sample_weight: Optional weighting of each example": result = sum w l / sum w over all
        samples of all updates, 0 when nothing was seen (divide_no_nan).  Each update's per-sample losses
        are binary_crossentropy's (in y_pred's dtype), then cast to the metric's dtype (float32 default).
        The leading axis of the case's arrays counts the update_state calls.
        """
        c = case.options.compute_dtype
        per = Case(
            id=case.id, y_true=case.y_true, y_pred=case.y_pred, true_dtype=case.true_dtype, pred_dtype=case.pred_dtype,
            options=Options(from_logits=case.options.from_logits, label_smoothing=case.options.label_smoothing),
            api="binary_crossentropy", producer=case.producer,
        )  # fmt: skip
        inner = self.function(per)
        m = tol.error_model(c)
        rule = m.describe()
        if inner.raises is not None:
            return Expected(raises=inner.raises, dtype=c, rule=rule)
        assert inner.value is not None and inner.bound is not None
        # the cast to the metric's dtype rounds each per-sample loss once more
        values = round_to(np.asarray(inner.value, dtype=np.float64), c).astype(WORK)
        errors = np.asarray(inner.bound, dtype=WORK) + m.u * np.abs(values)
        if case.sample_weight is None:
            weights = np.ones(values.shape, dtype=WORK)
        else:
            w = round_to(case.sample_weight, c).astype(WORK)
            if w.shape != values.shape[: w.ndim]:
                return Expected(raises=f"sample_weight shape {w.shape} does not fit the losses {values.shape}", dtype=c, rule=rule)
            weights = np.broadcast_to(w.reshape(w.shape + (1,) * (values.ndim - w.ndim)), values.shape)
        value, bound = self.reduce(values, errors, weights, "mean_with_sample_weight", m)
        return Expected(value=value, bound=bound, dtype=c, rule=rule)

    def predictions(self, case: Case, dtype: str, m: tol.ErrorModel) -> tuple[np.ndarray, np.ndarray | None]:
        """y_pred as the entry point receives it, and the error it carries in from its producer, if any.

        With a producer, y_pred holds logits x and the loss receives sigmoid(x) computed in the dtype: the
        documented input of a from_logits=False loss is that probability.  Its computation is within
        c_lib ULP of sigmoid(x) (tolerance.py), an input error the bound carries (tolerance.input_error).
        """
        x = round_to(case.y_pred, dtype).astype(WORK)
        if case.producer is None:
            return x, None
        with np.errstate(over="ignore"):
            sig = np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))
        p = round_to(np.asarray(sig, dtype=np.float64), dtype).astype(WORK)
        return p, m.lib * np.abs(p)

    # -- rules -------------------------------------------------------------------------------------------

    @staticmethod
    def compute_dtype(case: Case) -> str:
        """Loss docstring: "dtype: The dtype of the loss's computations. Defaults to None, which means using
        keras.backend.floatx()"; Loss.__call__ converts y_true and y_pred to it (loss.py), and
        binary_crossentropy casts y_true to y_pred's dtype, the same one."""
        return case.compute_dtype

    @staticmethod
    def option_error(case: Case) -> str | None:
        """Why the constructor must reject the options, or None.

        Loss docstring: "Supported options are 'sum', 'sum_over_batch_size', 'mean',
        'mean_with_sample_weight' or None ... 'none' and None perform no aggregation"; anything else is
        rejected at construction (keras/src/losses/loss.py standardize_reduction raises ValueError).
        """
        if case.options.reduction not in REDUCTIONS:
            return f"reduction={case.options.reduction!r} is not a supported reduction"
        return None

    def probability_terms(
        self, z: np.ndarray, dz: np.ndarray, p: np.ndarray, dtype: str, m: tol.ErrorModel
    ) -> tuple[np.ndarray, np.ndarray]:
        """Elementwise loss of probabilities and its error bound: clip, then the cross-entropy."""
        pc = self.clip(p, dtype)
        return self.probability_loss(z, pc), tol.probability_error(z, dz, pc, m)

    @staticmethod
    def reconcile_ranks(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None]:
        """Ranks that differ by one trailing size-1 axis are made equal; then the shapes must match.

        Source (the docs are silent): keras/src/losses/loss.py squeeze_or_expand_to_same_rank, called by
        LossFunctionWrapper.call: if the larger rank ends in 1, a rank-1 other side gains a trailing axis,
        otherwise the trailing 1 is squeezed.  binary_crossentropy then requires equal shapes
        (ops.binary_crossentropy: "Its shape should match the shape of the output tensor"; the TF
        backend raises ValueError otherwise).
        """
        if y.ndim == p.ndim + 1 and y.shape[-1] == 1:
            if p.ndim == 1:
                p = p[..., np.newaxis]
            else:
                y = y[..., 0]
        elif p.ndim == y.ndim + 1 and p.shape[-1] == 1:
            if y.ndim == 1:
                y = y[..., np.newaxis]
            else:
                p = p[..., 0]
        if y.shape != p.shape:
            return y, p, f"y_true shape {y.shape} and y_pred shape {p.shape} differ"
        return y, p, None

    def clip(self, p: np.ndarray, dtype: str) -> np.ndarray:
        """Probabilities are clipped to [eps, 1 - eps], the bounds as the compute dtype represents them.

        Source: keras/src/backend/tensorflow/nn.py binary_crossentropy, clip_by_value(output, epsilon(),
        1.0 - epsilon()): the Python floats are converted to the tensor's dtype, so in float16 and bfloat16
        1 - 1e-7 rounds to 1.0 and the upper clip does nothing.  NaN stays NaN.
        """
        lo = round_to(self.epsilon, dtype).astype(WORK)
        hi = round_to(1.0 - self.epsilon, dtype).astype(WORK)
        return np.clip(p, lo, hi)

    @staticmethod
    def smooth(y: np.ndarray, ls: float) -> np.ndarray:
        """The smoothed labels z = y (1 - ls) + 0.5 ls, in the working precision.

        binary_crossentropy docstring: "label_smoothing: Float in [0, 1]. If > 0 then smooth the labels by
        squeezing them towards 0.5, that is, using 1. - 0.5 * label_smoothing for the target class and
        0.5 * label_smoothing for the non-target class".  ls == 0 leaves the labels alone (Keras skips the
        step).  Any real ls and label are taken as the formula says; an infinite label times 1 - ls = 0 is
        NaN, as the formula's arithmetic gives.
        """
        if not ls:
            return y
        with np.errstate(invalid="ignore"):
            return y * (1 - WORK(ls)) + WORK(0.5) * WORK(ls)

    @staticmethod
    def probability_loss(z: np.ndarray, pc: np.ndarray) -> np.ndarray:
        """-(z log p + (1 - z) log(1 - p)), a term with a zero weight being 0 (0 log 0 = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = tol.mul0(z, np.log(pc))
            t2 = tol.mul0(1 - z, np.log1p(-pc))
            nan = np.isnan(z) | np.isnan(pc)
            # inf + -inf (a label outside [0, 1] at a clipped end) is NaN, as the formula's arithmetic gives
            return np.where(nan, WORK(np.nan), -(t1 + t2)).astype(WORK)

    @staticmethod
    def logit_loss(z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Cross-entropy of sigmoid(x): z softplus(-x) + (1 - z) softplus(x).

        This is -z log(sigmoid(x)) - (1 - z) log(1 - sigmoid(x)) written without cancellation; for finite
        x it equals the documented stable form max(x, 0) - x z + log(1 + exp(-|x|)).  An infinite logit
        takes the limit: softplus(-inf) = 0, softplus(inf) = inf, and 0 * inf = 0 as for 0 log 0.
        """

        def softplus(t: np.ndarray) -> np.ndarray:
            with np.errstate(over="ignore"):
                return np.maximum(t, 0) + np.log1p(np.exp(-np.abs(t)))

        with np.errstate(invalid="ignore"):
            loss = tol.mul0(z, softplus(-x)) + tol.mul0(1 - z, softplus(x))
        nan = np.isnan(z) | np.isnan(x)
        return np.where(nan, WORK(np.nan), loss).astype(WORK)

    @staticmethod
    def mean_over_axis(
        elem: np.ndarray, err: np.ndarray, axis: int, m: tol.ErrorModel
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mean over ``axis``; over an empty axis it is 0/0 = NaN."""
        n = elem.shape[axis]
        with np.errstate(invalid="ignore", divide="ignore"):
            total = np.sum(elem, axis=axis)
            mean = total / WORK(n)
        s_err = tol.sum_error(elem, err, axis, m)
        bound = tol.divide_error(mean, s_err, np.full_like(mean, n), tol.count_error(n, m), m)
        return mean.astype(WORK), bound

    @staticmethod
    def align_weights(case: Case, loss_shape: tuple[int, ...], dtype: str) -> tuple[np.ndarray | None, str | None]:
        """Broadcast sample_weight to the per-sample loss, by the documented rules.

        Keras 3 Loss docs (keras.io/api/losses/): "sample_weight acts as reduction weighting coefficient for
        the per-sample losses. If a scalar is provided, then the loss is simply scaled by the given value.
        If sample_weight is a tensor of size [batch_size], then the total loss for each sample of the batch
        is rescaled by the corresponding element in the sample_weight vector. If the shape of sample_weight
        is [batch_size, d0, .. dN-1] (or can be broadcasted to this shape), then each loss element of y_pred
        is scaled by the corresponding value of sample_weight."  A trailing size-1 axis beyond the loss's
        rank is squeezed (squeeze_or_expand_to_same_rank, as for the labels).  Weights are converted to the
        compute dtype (reduce_weighted_values).
        """
        if case.sample_weight is None:
            return None, None
        w = round_to(case.sample_weight, dtype).astype(WORK)
        if w.ndim == len(loss_shape) + 1 and w.shape[-1] == 1:
            w = w[..., 0]
        if 0 < w.ndim < len(loss_shape) and w.shape == tuple(loss_shape[: w.ndim]):
            # [batch_size] (or a leading prefix of the loss shape): one weight per sample.
            w = w.reshape(w.shape + (1,) * (len(loss_shape) - w.ndim))
        try:
            return np.broadcast_to(w, loss_shape), None
        except ValueError:
            return None, f"sample_weight shape {case.sample_weight.shape} does not broadcast to loss shape {loss_shape}"

    @staticmethod
    def reduce(
        loss: np.ndarray,
        loss_err: np.ndarray,
        weights: np.ndarray | None,
        reduction: str | None,
        m: tol.ErrorModel,
        *,
        mask: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Weights, then the reduction, as the Loss docstring says:

        "'sum' sums the loss, 'sum_over_batch_size' and 'mean' sum the loss and divide by the sample size,
        and 'mean_with_sample_weight' sums the loss and divides by the sum of the sample weights. 'none'
        and None perform no aggregation."  The sample size is the number of loss elements
        (reduce_values: ops.prod(ops.shape(values))); without weights 'mean_with_sample_weight' is the
        plain mean.  A zero divisor gives 0 (reduce_values uses ops.divide_no_nan), so an empty batch
        reduces to 0, a scalar.

        A Keras mask on y_pred (one boolean per loss element) removes the masked elements: they contribute
        nothing, and the means count only the unmasked ones.  No docstring states this; the source says it
        in loss.py apply_mask: "Valid entries have weight total/valid, while invalid ones have 0 ...
        mean(loss * sample_weight * total / valid) = sum(loss * sample_weight) / valid" for 'mean' and
        'sum_over_batch_size', and the mask multiplies the weights for the others.  So: 'sum' and 'none'
        weight by the mask, the two batch means divide by the number of unmasked elements, and
        'mean_with_sample_weight' by the sum of the unmasked weights.  A masked element is excluded, so a
        NaN there does not reach the result.
        """
        keep = None if mask is None else np.asarray(mask, dtype=bool)
        mask_weighted = weights is not None
        if keep is not None:  # a masked element weighs 0, and contributes exactly 0 whatever its value
            weights = np.where(keep, 1 if weights is None else weights, 0).astype(WORK)
        if weights is not None:
            err = tol.product_error(loss, loss_err, weights, m)
            with np.errstate(invalid="ignore"):
                loss = (loss * weights).astype(WORK)
            loss, loss_err = (loss, err) if keep is None else (np.where(keep, loss, 0), np.where(keep, err, 0))
        if reduction in (None, "none"):
            return loss, loss_err
        with np.errstate(invalid="ignore"):
            total = np.sum(loss, dtype=WORK)
        total_err = tol.sum_error(loss, loss_err, None, m)
        if reduction == "sum":
            return np.asarray(total, dtype=WORK), np.asarray(total_err, dtype=WORK)
        if reduction == "mean_with_sample_weight" and (weights is not None and (keep is None or mask_weighted)):
            # The sum of the weights, each per-sample weight counted once per loss element it scales.
            divisor = np.sum(weights, dtype=WORK)
            div_err = tol.sum_error(weights, tol.flush_error(weights, m), None, m)
        else:
            count = loss.size if keep is None else int(keep.sum())
            divisor = WORK(count)
            div_err = WORK(tol.count_error(count, m))
            if keep is not None:  # Keras weighs each kept element total/valid and divides by total: 2 roundings
                div_err += WORK(2 * m.u * count)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(divisor == 0, WORK(0), total / np.where(divisor == 0, 1, divisor))
        bound = tol.divide_error(value, total_err, divisor, div_err, m)
        return np.asarray(value, dtype=WORK), np.asarray(bound, dtype=WORK)
