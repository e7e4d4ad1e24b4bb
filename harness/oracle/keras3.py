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

from typing import Any

import numpy as np

from harness.case import API_LOSS_CLASS, REDUCTIONS, Case, Expected, Options, policy_compute_dtype
from harness.dtypes import FLOAT_DTYPES, WORK, round_to
from harness.errors import UsageError
from harness.jsonio import encode_array
from harness.oracle import tolerance as tol
from harness.oracle.steps import Step

__all__ = ["EPSILON", "Keras3"]

# keras.config.epsilon(): "Return the value of the fuzz factor used in numeric expressions", default 1e-7
# (keras/src/backend/config.py, Keras 3.15).
EPSILON = 1e-7


class Keras3:
    """Keras 3 (``tf.keras`` on TensorFlow >= 2.16) semantics of ``BinaryCrossentropy.__call__``."""

    name = "keras3"

    def __init__(self, *, epsilon: float = EPSILON, floatx: str = "float32") -> None:
        """``epsilon`` and ``floatx`` are the Keras configuration the call runs under: keras.config.epsilon()
        ("the fuzz factor used in numeric expressions") and keras.config.floatx() ("the default float type"),
        both read from keras.json at import (keras/src/backend/config.py) or set by set_epsilon/set_floatx."""
        self.epsilon = float(epsilon)
        self.floatx = floatx

    def expected(self, case: Case, *, steps: list[Step] | None = None) -> Expected:
        """What ``case`` must yield; ``steps``, when given, receives each named step of the loss class's and the
        functions' computation as it is taken (oracle.steps), the one sequence ``explain`` narrates."""
        if case.grad is not None:  # the derivatives are oracle.gradient's: harness.oracle.expected sends them there
            raise UsageError("gradient cases are expected through harness.oracle.expected, not a profile")
        special = self.special_inputs(case)
        if special is not None:
            return special
        if case.api == "metrics.BinaryCrossentropy":
            return self.metric(case)
        if case.api != API_LOSS_CLASS:
            return self.function(case, steps=steps)
        o = case.options
        c = self.compute_dtype(case)
        m = tol.error_model(c)
        rule = m.describe()

        y = round_to(case.y_true, c).astype(WORK)
        p, dp = self.predictions(case, c, m)
        if steps is not None:
            self.tell(steps, "inputs", {"y_true": case.y_true, "y_pred": case.y_pred, f"y_true as {c}": y, f"y_pred as {c}": p},
                      f"y_pred as {c}", dtype=c, loss_class=True)  # fmt: skip
        raises = self.option_error(case)
        if raises:
            return Expected(raises=raises, dtype=c, rule=rule)

        y, p, raises = self.reconcile_ranks(y, p)
        if steps is not None:
            self.tell(steps, "ranks", {"y_true shape": str(y.shape), "y_pred shape": str(p.shape)})
        if raises:
            return Expected(raises=raises, dtype=c, rule=rule)

        ls = float(o.label_smoothing)
        z = self.smooth(y, ls)
        dz = tol.smoothing_error(y, ls, m)
        if steps is not None:
            self.tell(steps, "smoothing", {"z": z}, "z", ls=ls)
        elem, err = self.elementwise(z, dz, p, dp, o.from_logits, c, m, steps)

        # "axis: The axis along which to compute crossentropy (the features axis). Defaults to -1", and
        # "Returns: Binary crossentropy loss value. shape = [batch_size, d0, .. dN-1]": the mean over axis.
        ndim = elem.ndim
        if ndim == 0 or not -ndim <= o.axis < ndim:
            return Expected(raises=f"axis={o.axis} is out of range for rank {ndim}", dtype=c, rule=rule)
        loss, loss_err = self.mean_over_axis(elem, err, o.axis, m)
        if steps is not None:
            self.tell(steps, "axis", {"per-sample loss": loss}, "per-sample loss", axis=o.axis, terms=elem.shape[o.axis], shape=loss.shape)

        weights, raises = self.align_weights(case, loss.shape, c)
        if raises:
            return Expected(raises=raises, dtype=c, rule=rule)
        if steps is not None:
            self.tell(steps, "weights", {} if weights is None else {"weights": weights}, None if weights is None else "weights",
                      weighted=weights is not None, masked=case.mask is not None)  # fmt: skip
        if case.mask is not None:
            if case.mask.shape != loss.shape:
                return Expected(raises=f"mask shape {case.mask.shape} is not the loss shape {loss.shape}", dtype=c, rule=rule)
            value, bound = self.reduce(loss, loss_err, weights, o.reduction, m, mask=case.mask, read=tol.read_model(m, case.weight_dtype))
        else:
            value, bound = self.reduce(loss, loss_err, weights, o.reduction, m, read=tol.read_model(m, case.weight_dtype))
        if steps is not None:
            self.tell(steps, "reduction", {"result": value}, "result", reduction=o.reduction, loss=loss, weights=weights)
        return Expected(value=value, bound=bound, dtype=c, rule=rule)

    # -- the documented domain -----------------------------------------------------------------------------

    # The entry points whose docstring takes label_smoothing, and what it says of its range: the loss class
    # ("label_smoothing: Float in range [0, 1]. When 0, no smoothing occurs"), the function ("Float in
    # `[0, 1]`"), the metric (its constructor passes it on to the function); training and replica cases
    # compile or call the loss class.
    SMOOTHING_APIS = (API_LOSS_CLASS, "binary_crossentropy", "metrics.BinaryCrossentropy")
    # Keras 3's dense entry points document dense shapes ("y_true: Ground truth values, of shape
    # (batch_size, d0, .. dN)"); tf.nn's op is elementwise, which ragged tensors dispatch (tf.ragged guide)
    DENSE_ONLY = (API_LOSS_CLASS, "binary_crossentropy", "ops.binary_crossentropy", "metrics.BinaryCrossentropy", "backend.binary_crossentropy")

    def outside_domain(self, case: Case) -> str | None:
        """Why ``case`` is outside the domain the documentation defines, or None: then the documentation
        says nothing of what happens, and the record keeps what did (Expected.basis "outside")."""
        ls = case.options.label_smoothing
        if case.api in self.SMOOTHING_APIS and not 0 <= float(ls) <= 1:
            return f"label_smoothing={float(ls):g}: the docstring says 'Float in range [0, 1]'"
        if case.row_lengths is not None and case.api in self.DENSE_ONLY:
            return f"ragged inputs: {case.api} documents dense inputs of shape (batch_size, d0, .. dN)"
        return None

    # -- integer predictions and ragged inputs ------------------------------------------------------------

    def special_inputs(self, case: Case) -> Expected | None:
        """Integer predictions and ragged inputs, per entry point; None for any other case.

        Integers: integer predictions 0 and 1 are probabilities, and no docstring excludes an integer
        tensor, so each Keras entry point's documented value is the loss of those values.  The loss class
        converts y_pred to its dtype ("Loss.__call__ converts y_true and y_pred to the loss dtype", loss.py);
        the functions and the metric "compute in y_pred's dtype", which an integer dtype cannot be (the clip
        bounds do not exist in it): the docs are silent on the dtype, and the reference takes Keras's
        default float type, keras.config.floatx() ("the default float type"), as Keras 3.16's TF backend
        does (backend/tensorflow/ops/nn.py: "if not is_float_dtype(output.dtype): output =
        tf.cast(output, backend.floatx())").  Keras releases that raise instead diverge (registered, with
        their Keras bounds).  tf.nn.sigmoid_cross_entropy_with_logits documents its error: "logits: A
        Tensor of type float32 or float64".  Ragged: outside Keras 3's documented domain
        (``outside_domain``) except for tf.nn.sigmoid_cross_entropy_with_logits, an elementwise op, which
        ragged tensors dispatch row by row (tf.ragged guide: "elementwise ops"), so its result is the
        elementwise loss of the rows' values.
        """
        ragged = case.row_lengths is not None
        integer = case.pred_dtype == "int32"
        if not (ragged or integer):
            return None
        rule = tol.error_model("float32").describe()
        if ragged and case.api == "nn.sigmoid_cross_entropy_with_logits" and not integer:
            return self.function(self.flat_case(case))
        if case.api == "nn.sigmoid_cross_entropy_with_logits":
            return Expected(raises="tf.nn.sigmoid_cross_entropy_with_logits documents 'logits: A Tensor of type float32 or float64'", dtype=None, rule=rule)
        if case.api == API_LOSS_CLASS:
            return None  # converted to the loss's dtype: the usual computation
        as_float = self.flat_case(case, pred_dtype=self.floatx)
        return self.metric(as_float) if case.api == "metrics.BinaryCrossentropy" else self.function(as_float)

    @staticmethod
    def flat_case(case: Case, *, pred_dtype: str | None = None, **changes: object) -> Case:
        """The case on the rows' values concatenated (its ragged ``flat_values``), as a dense 1-D case."""
        d = case.as_dict()
        if case.row_lengths is not None:
            keep = np.arange(case.y_pred.shape[1])[None, :] < np.asarray(case.row_lengths)[:, None]
            d = {**d, "y_true": encode_array(case.y_true[keep]), "y_pred": encode_array(case.y_pred[keep]), "row_lengths": None}
        if pred_dtype is not None:
            d["pred_dtype"] = pred_dtype
        return Case.from_dict({**d, **changes})

    # -- the other entry points --------------------------------------------------------------------------

    def function(self, case: Case, *, steps: list[Step] | None = None) -> Expected:
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
        c = self.received_dtype(case)
        m = tol.error_model(c)
        rule = m.describe()
        api = case.api
        if api == "backend.binary_crossentropy":
            return self.legacy_backend(case)
        y = round_to(case.y_true, c).astype(WORK)
        p, dp = self.predictions(case, c, m)
        if steps is not None:
            self.tell(steps, "inputs", {"y_true": case.y_true, "y_pred": case.y_pred, f"y_true as {c}": y, f"y_pred as {c}": p},
                      f"y_pred as {c}", dtype=c, loss_class=False)  # fmt: skip
        if api == "nn.sigmoid_cross_entropy_with_logits" and case.true_dtype != case.pred_dtype:
            # documented: "labels: A Tensor of the same type and shape as logits".  keras.ops' docstring asks
            # only that the target's shape match the output's: its labels convert to y_pred's dtype (round_to)
            return Expected(raises=f"{api}: 'labels: A Tensor of the same type and shape as logits'", dtype=c, rule=rule)
        if case.y_true.shape != case.y_pred.shape:
            return Expected(raises=f"{api}: y_true shape {case.y_true.shape} is not y_pred shape {case.y_pred.shape}", dtype=c, rule=rule)
        ls = float(o.label_smoothing) if api == "binary_crossentropy" else 0.0
        z = self.smooth(y, ls)
        dz = tol.smoothing_error(y, ls, m)
        if steps is not None:
            self.tell(steps, "smoothing", {"z": z}, "z", ls=ls)
        elem, err = self.elementwise(z, dz, p, dp, o.from_logits or api == "nn.sigmoid_cross_entropy_with_logits", c, m, steps)
        if api != "binary_crossentropy":
            return Expected(value=elem, bound=err, dtype=c, rule=rule)
        if elem.ndim == 0 or not -elem.ndim <= o.axis < elem.ndim:
            return Expected(raises=f"axis={o.axis} is out of range for rank {elem.ndim}", dtype=c, rule=rule)
        value, bound = self.mean_over_axis(elem, err, o.axis, m)
        if steps is not None:
            self.tell(steps, "axis", {"per-sample loss": value}, "per-sample loss", axis=o.axis, terms=elem.shape[o.axis], shape=value.shape)
        return Expected(value=value, bound=bound, dtype=c, rule=rule)

    def received_dtype(self, case: Case) -> str:
        """The dtype of the y_pred a function receives, which it computes in: the case's, or a layer or model
        producer's output dtype, its policy's compute dtype under a global policy, else floatx
        (keras/src/layers/layer.py: a layer computes in its dtype policy's compute dtype and outputs it)."""
        if case.producer is None or not case.producer.startswith(("layers.", "model")):
            return case.pred_dtype
        cfg = case.config
        return policy_compute_dtype(cfg.policy) if cfg is not None and cfg.policy is not None else self.floatx

    def legacy_backend(self, case: Case) -> Expected:
        """``tf.keras.backend.binary_crossentropy(target, output, from_logits=False)``: elementwise, the
        older formula.  Its docstring says only "DEPRECATED." (keras/src/legacy/backend.py, Keras 3.15, the
        function ``tf.keras.backend`` exports on TensorFlow >= 2.16); Keras 2's documents it (tf_keras 2.21
        backend.py: "Binary crossentropy between an output tensor and a target tensor. ... target: A tensor
        with the same shape as `output`. ... Returns: A tensor."), and the code is the same in both::

            target = tf.convert_to_tensor(target); output = tf.convert_to_tensor(output)
            if from_logits: return tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=output)
            epsilon_ = tf.convert_to_tensor(backend.epsilon(), output.dtype)
            output = tf.clip_by_value(output, epsilon_, 1.0 - epsilon_)
            bce = target * tf.math.log(output + backend.epsilon())
            bce += (1 - target) * tf.math.log(1 - output + backend.epsilon())
            return -bce

        No label smoothing, no mean over an axis, and in Keras 3 no recovery of a sigmoid's logits (that is in
        keras/src/backend/tensorflow/nn.py only): the clip applies to a sigmoid's output.

        Keras 3 documents no formula of its own for it, so its documented value is binary cross-entropy as the
        rest of Keras 3 documents it (``probability_terms``: the clip, then the plain logs): one number that
        every entry point must agree on.  The epsilon added once more inside each log is the older formula of
        Keras 2, a registered divergence on the keras3 profile (``legacy-backend-older-formula``); on the
        keras2 profile ``probability_terms`` is that formula, documented there.
        """
        c = self.received_dtype(case)
        m = tol.error_model(c)
        rule = m.describe()
        api = case.api
        if case.y_true.shape != case.y_pred.shape:
            return Expected(raises=f"{api}: y_true shape {case.y_true.shape} is not y_pred shape {case.y_pred.shape}", dtype=c, rule=rule)
        y = round_to(case.y_true, c).astype(WORK)
        p, dp = self.predictions(case, c, m)
        dz = np.zeros_like(y)
        if case.options.from_logits:
            return Expected(value=self.logit_loss(y, p), bound=tol.logit_error(y, dz, p, m), dtype=c, rule=rule)
        elem, err = self.probability_terms(y, dz, p, c, m)
        if dp is not None:
            err = err + tol.input_error(y, self.clip(p, c), dp, m)
        return Expected(value=elem, bound=err, dtype=c, rule=rule)

    def shifted_probability_terms(
        self, z: np.ndarray, dz: np.ndarray, p: np.ndarray, dtype: str, m: tol.ErrorModel
    ) -> tuple[np.ndarray, np.ndarray]:
        """Clip to [eps, 1 - eps] in the dtype, then epsilon once more inside each log (the older formula
        of ``legacy_backend`` and of Keras 2's loss).  ``epsilon_`` is eps in the dtype and ``1.0 - epsilon_``
        is computed in the dtype (1.0 in float16 and bfloat16); ``output + epsilon()`` converts eps to the
        dtype again.  Both log arguments are at least eps, so every term is finite: no 0 log 0 arises, and
        the largest loss is -log(2 eps)."""
        eps = float(round_to(self.epsilon, dtype))
        hi = float(round_to(1.0 - eps, dtype))
        pc = np.clip(p, WORK(eps), WORK(hi))
        s = WORK(eps)
        with np.errstate(invalid="ignore"):
            loss = -(z * np.log(pc + s) + (1 - z) * np.log1p(s - pc))
        nan = np.isnan(z) | np.isnan(pc)
        elem = np.where(nan, WORK(np.nan), loss).astype(WORK)
        return elem, tol.probability_error(z, dz, pc, m, shift=eps)

    def metric(self, case: Case) -> Expected:
        """``tf.keras.metrics.BinaryCrossentropy``: the mean of the per-sample losses over every update.

        metrics/probabilistic_metrics.py: a MeanMetricWrapper of binary_crossentropy; "result() will return
        the average metric value across all samples seen so far" (reduction_metrics.py MeanMetricWrapper),
        and Mean's "sample_weight: Optional weighting of each example": result = sum w l / sum w over all
        samples of all updates, 0 when nothing was seen (divide_no_nan).  Each update's per-sample losses
        are binary_crossentropy's (in y_pred's dtype), then cast to the metric's dtype (float32 default).
        The leading axis of the case's arrays counts the update_state calls.
        """
        c = self.compute_dtype(case)
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
        if case.producer is None:
            return round_to(case.y_pred, dtype).astype(WORK), None
        layer = case.producer.startswith(("layers.", "model"))
        # A layer computes in its dtype policy's compute dtype: the global policy, else floatx
        # (keras/src/layers/layer.py: dtype=None -> dtype_policies.get(None) -> the global policy, whose
        # default is floatx); it casts floating inputs to it (autocast) and its output keeps it.  The
        # functions compute in the logits' own dtype (tf.sigmoid: "A Tensor with the same type as x";
        # keras.ops.sigmoid and keras.activations.sigmoid convert x as it is), whatever the loss's dtype.
        if layer:
            own = self.received_dtype(case)  # the layer's output dtype
        else:
            own = case.pred_dtype if case.pred_dtype in FLOAT_DTYPES else dtype
        mo = tol.error_model(own)
        x = round_to(case.y_pred, own).astype(WORK)
        if case.producer == "layers.Softmax":
            # keras.layers.Softmax(axis=-1): exp(x - max) / sum(exp(x - max)) over the last axis.  Error: the
            # subtraction's rounding u |x - max| enters exp as a relative error, exp adds c_lib ULP, the sum
            # over k terms k u, the division u.
            k = x.shape[-1] if x.ndim else 1
            with np.errstate(over="ignore", invalid="ignore"):
                shift = x - np.max(x, axis=-1, keepdims=True)
                e = np.exp(shift)
                sm = e / np.sum(e, axis=-1, keepdims=True)
            p = round_to(np.asarray(sm, dtype=np.float64), own).astype(WORK)
            rel = mo.u * (2 * np.abs(shift) + k + 2) + 2 * mo.lib
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # the branch np.where discards may overflow
                sig = np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))
            p = round_to(np.asarray(sig, dtype=np.float64), own).astype(WORK)
            rel = mo.lib
        # then the loss converts the producer's output to its own dtype
        q = round_to(np.asarray(p, dtype=np.float64), dtype).astype(WORK)
        return q, rel * np.abs(p) + np.abs(q - p) + (mo.eta if own != dtype else 0)

    # -- rules -------------------------------------------------------------------------------------------

    def compute_dtype(self, case: Case) -> str:
        """Loss docstring: "dtype: The dtype of the loss's computations. Defaults to None, which means using
        keras.backend.floatx(). ... If a keras.DTypePolicy is provided, then the compute_dtype will be
        utilized"; Loss.__call__ converts y_true and y_pred to it (loss.py), and binary_crossentropy casts
        y_true to y_pred's dtype, the same one.  A global policy does not enter: Loss.__init__ reads
        ``dtype_policies.get(dtype or backend.floatx())`` (loss.py, Keras 3.15), never the global policy."""
        return case.compute_dtype_under(self.floatx)

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

    @staticmethod
    def prediction(p: np.ndarray, logits: bool) -> tuple[np.ndarray, bool]:
        """What y_pred is read as: logits when ``logits`` (from_logits=True; tf.nn's op always), else
        probabilities, used as they are (a plain tensor: Keras recovers logits only from a sigmoid op's output,
        backend nn.binary_crossentropy).  A step of its own so that it has a name (oracle.steps)."""
        return p, logits

    def elementwise(
        self, z: np.ndarray, dz: np.ndarray, p: np.ndarray, dp: np.ndarray | None, logits: bool, dtype: str,
        m: tol.ErrorModel, steps: list[Step] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The logits or probabilities, the clip, and the elementwise terms, with their error bound (and the
        producer's input error ``dp``); each step recorded in ``steps`` when given."""
        p, logits = self.prediction(p, logits)
        if steps is not None:
            read = "logits" if logits else "p"
            self.tell(steps, "prediction", {read: p}, read, logits=logits)
        if logits:
            elem, err = self.logit_loss(z, p), tol.logit_error(z, dz, p, m)
        else:
            if steps is not None:
                self.tell(steps, "clip", {"p clipped": self.clip(p, dtype)}, "p clipped", dtype=dtype)
            elem, err = self.probability_terms(z, dz, p, dtype, m)
            if dp is not None:
                err = err + tol.input_error(z, self.clip(p, dtype), np.reshape(dp, p.shape), m)
        if steps is not None:
            self.tell(steps, "terms", {"terms": elem}, "terms", logits=logits)
        return elem, err

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
        read: tol.ErrorModel | None = None,
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
        NaN there does not reach the result.  ``read``: the error model the weights were converted with
        (``tolerance.read_model``: which of them the conversion flushes), ``m`` by default.
        """
        keep = None if mask is None else np.asarray(mask, dtype=bool)
        mask_weighted = weights is not None
        if keep is not None:  # a masked element weighs 0, and contributes exactly 0 whatever its value
            weights = np.where(keep, 1 if weights is None else weights, 0).astype(WORK)
        if weights is not None:
            err = tol.product_error(loss, loss_err, weights, m, read=read)
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
            div_err = tol.sum_error(weights, tol.flush_error(weights, read or m), None, m)
        else:
            count = loss.size if keep is None else int(keep.sum())
            divisor = np.asarray(count, dtype=WORK)
            div_err = np.asarray(tol.count_error(count, m), dtype=WORK)
            if keep is not None:  # Keras weighs each kept element total/valid and divides by total: 2 roundings
                div_err += WORK(2 * m.u * count)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(divisor == 0, WORK(0), total / np.where(divisor == 0, 1, divisor))
        bound = tol.divide_error(value, total_err, divisor, div_err, m)
        return np.asarray(value, dtype=WORK), np.asarray(bound, dtype=WORK)


    # -- the narration (only when someone asks for the steps) -------------------------------------------

    # The rule texts that differ between the lines (Keras2 overrides them).
    DTYPE_RULE = "(the loss's dtype option, else keras.config.floatx())"
    PROBABILITIES_RULE = (
        "from_logits=False: y_pred are probabilities.  Keras 3 recovers logits only from the output of a sigmoid op "
        "(backend nn.binary_crossentropy reads output._keras_logits or a Sigmoid op); a plain tensor, as here, is "
        "used as it is"
    )
    TERMS_RULE = "-(z * log(p) + (1 - z) * log(1 - p)) on the clipped p, 0 * log(0) = 0"

    def tell(self, steps: list[Step], key: str, values: dict[str, Any], main: str | None = None, **facts: Any) -> None:
        """Record step ``key`` with its values and its rule (``rule(key, **facts)``)."""
        steps.append(Step(key, self.rule(key, **facts), values, main))

    def rule(self, key: str, **facts: Any) -> str:
        """What step ``key`` does by the documentation, with its citation, on the ``facts`` of this call."""
        if key == "inputs":
            c = str(facts["dtype"])
            lo, hi = float(round_to(self.epsilon, c)), float(round_to(1.0 - self.epsilon, c))
            source = self.DTYPE_RULE if facts["loss_class"] else "(y_pred's dtype; y_true is cast to it)"
            return (f"Loss.__call__ converts y_true and y_pred to the compute dtype {c} {source}; epsilon = "
                    f"keras.config.epsilon() = {self.epsilon:g} is {lo:.9g} and 1 - epsilon is {hi:.9g} in {c}")  # fmt: skip
        if key == "ranks":
            return ("squeeze_or_expand_to_same_rank: ranks that differ by one trailing size-1 axis are made equal "
                    "(Keras 3 expands a rank-1 side, Keras 2 only squeezes); then the shapes must match")  # fmt: skip
        if key == "smoothing":
            ls = float(facts["ls"])
            return f"z = y * (1 - ls) + 0.5 * ls with ls = {ls:g} (binary_crossentropy docstring)" + ("" if ls else ": nothing to smooth")
        if key == "prediction":
            if facts["logits"]:
                return ("from_logits=True: y_pred are logits, used as they are in the stable form "
                        "max(x, 0) - x * z + log(1 + exp(-|x|)) (tf.nn.sigmoid_cross_entropy_with_logits); no clip")  # fmt: skip
            return self.PROBABILITIES_RULE
        if key == "clip":
            c = str(facts["dtype"])
            lo, hi = float(round_to(self.epsilon, c)), float(round_to(1.0 - self.epsilon, c))
            return (f"p clipped to [epsilon, 1 - epsilon] = [{lo:.9g}, {hi:.9g}], the bounds as {c} holds them "
                    "(backend nn.binary_crossentropy: clip_by_value(output, epsilon(), 1 - epsilon()))")  # fmt: skip
        if key == "terms":
            return "z * softplus(-x) + (1 - z) * softplus(x), the limit for an infinite logit" if facts["logits"] else self.TERMS_RULE
        if key == "axis":
            return (f"mean over axis={facts['axis']} ({facts['terms']} terms): the per-sample loss, shape "
                    f"{facts['shape']} (\"Returns: ... shape = [batch_size, d0, .. dN-1]\")")  # fmt: skip
        if key == "weights":
            scaled = ("sample_weight broadcast to the per-sample loss: a scalar scales, [batch_size] scales each sample, "
                      "a broadcastable shape each element (Loss docs); converted to the compute dtype"
                      if facts["weighted"] else "no sample_weight")  # fmt: skip
            return scaled + ("; a Keras mask removes the masked elements (loss.py apply_mask)" if facts["masked"] else "; no Keras mask")
        if key == "reduction":
            red, loss, weights = facts["reduction"], np.asarray(facts["loss"]), facts["weights"]
            if red in (None, "none"):
                return "reduction='none': the per-sample loss (times the weights) as it is"
            if red == "sum":
                return "reduction='sum': the sum of the weighted per-sample losses"
            if red == "mean_with_sample_weight" and weights is not None:
                return f"reduction='mean_with_sample_weight': the weighted sum divided by the weights' sum {float(np.sum(weights)):.9g}"
            return (f"reduction={red!r}: the weighted sum divided by the number of elements of the per-sample loss, "
                    f"{loss.size} (reduce_values: ops.prod(ops.shape(values))), 0 for a zero divisor")  # fmt: skip
        raise KeyError(key)
