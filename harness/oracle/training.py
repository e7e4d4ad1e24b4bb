"""What a training loop reports as the loss, and what the loss is under replicas (Keras 3, TF backend).

NumPy only.  Each batch's loss is the loss class's documented value (``Keras3.expected`` on the batch's
slice); this module adds how the loop aggregates them and how replicas share them.  Keras 3.15 sources:

- ``keras/src/backend/tensorflow/trainer.py`` ``train_step`` and ``test_step``: each step's loss goes into
  ``self._loss_tracker``, a ``metrics.Mean(name="loss")`` (``trainers/trainer.py``), with
  ``update_state(loss, sample_weight=<the batch's size>)``; ``Mean``'s documented result is
  ``sum(w * v) / sum(w)`` (``metrics/reduction_metrics.py``), so ``fit`` and ``evaluate`` report the mean
  of the per-batch losses weighted by the batch sizes: a partial last batch counts for what it holds.  The
  trackers are reset at the start of ``fit``'s epoch, of ``evaluate`` and of each ``*_on_batch`` call
  (``reset_metrics()`` in ``train_on_batch`` and ``test_on_batch``), so ``*_on_batch`` reports its batch.
  ``fit``'s History holds the epoch's last logs: that same mean.
- ``class_weight`` (fit and train_on_batch only): "dictionary mapping class indices (integers) to a weight
  (float) value, used for weighting the loss function (during training only)"; the data adapter turns it
  into per-sample weights, the class of a ``(B, 1)`` label being its rounded value and of a ``(B, C)``
  label its argmax (``data_adapter_utils.class_weight_to_sample_weights``, ``tf_dataset_adapter.
  make_class_weight_map_fn``), and refuses it together with ``sample_weight`` ("You cannot `class_weight`
  and `sample_weight` at the same time").
- ``compile(metrics=[BinaryCrossentropy()])``: "List of metrics to be evaluated by the model during
  training and testing", against ``weighted_metrics``: "List of metrics to be evaluated and weighted by
  `sample_weight` or `class_weight` during training and testing" (``Trainer.compile``).  Either is a
  ``MeanMetricWrapper`` updated with each batch's per-sample losses: the mean over every sample seen,
  weighted by the sample weights for ``weighted_metrics`` only (``Keras3.metric``).
- Under a strategy the step's loss is scaled by ``1 / num_replicas`` (``losses/loss.py`` ``reduce_values``
  calls ``scale_loss_for_distribution``) and the tracker is updated with it unscaled
  (``unscale_loss_for_distribution``), with each replica's own batch size, and the tracker's totals are
  summed over replicas: the reported loss is the same weighted mean as without a strategy.
- The loss object under replicas: the tf.distribute guide ("Custom training with tf.distribute.Strategy")
  documents that the per-replica losses, summed over replicas, are the loss over the *global* batch ("scale
  the loss by 1/GLOBAL_BATCH_SIZE" so that the sum over replicas is the global mean), and
  ``tf.nn.compute_average_loss``: "sum(per_example_loss * sample_weight) / global_batch_size".  The Loss
  docstring's ``sum_over_batch_size`` is "sum the loss and divide by the sample size".  So the reference of
  a loss summed over replicas, and of a loss called in the strategy's scope outside ``strategy.run``, is
  the loss over the whole batch, as without a strategy.

The Keras 2 line (tf_keras, the ``keras2`` profile) documents the same loop (``compile_utils.
LossesContainer``: ``self._loss_metric.update_state(total_loss_metric_value, sample_weight=batch_dim)``;
the same ``metrics``/``weighted_metrics`` sentences in ``Model.compile``), and refuses a mean-reduced loss
object under a strategy outside the built-in loops: ``ReductionV2``'s docstring, "`SUM_OVER_BATCH_SIZE`
... This reduction type is not supported when used with `tf.distribute.Strategy` outside of built-in
training loops like `tf.keras` `compile` and `fit`", and for ``AUTO`` "Using `AUTO` in that case will raise
an error".  ``sum``, ``none`` and ``compute_average_loss`` are unscaled on both lines.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.case import REPLICA_ROUTES, Case, Expected, Options
from harness.dtypes import FLOAT_DTYPES, WORK, round_to
from harness.oracle import tolerance as tol
from harness.oracle.keras3 import Keras3

__all__ = ["batches", "expected_training", "sample_weights"]

SIGMOID_OUTPUT = "keras.activations.sigmoid"  # what Dense(activation="sigmoid") applies (activations.get)


def batches(n: int, batch_size: int | None) -> list[slice]:
    """The batches of ``fit``/``evaluate`` without shuffling: consecutive slices of ``batch_size``, the last
    one partial (the array data adapter's ``num_batches = ceil(n / batch_size)``)."""
    size = batch_size or max(n, 1)
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def sample_weights(case: Case, *, multiplicative: bool = False) -> tuple[np.ndarray | None, str | None]:
    """The per-sample weights the loop uses: ``sample_weight``, or ``class_weight`` mapped over the labels.

    Both at once: refused on Keras 3; ``multiplicative`` (Keras 2: "`class_weight` and `sample_weight` are
    multiplicative", tf_keras data_adapter ``_make_class_weight_map_fn``) their product.
    """
    spec = case.training
    assert spec is not None
    if spec.class_weight is None:
        return (None if case.sample_weight is None else np.asarray(case.sample_weight, dtype=np.float64)), None
    if case.sample_weight is not None and not multiplicative:
        return None, "class_weight and sample_weight cannot be given together"
    y = np.asarray(case.y_true, dtype=np.float64)
    if y.ndim > 1:
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else y[..., 0]
    classes = np.round(y).astype(np.int64)  # round half to even, as tf.round and np.round both do
    table = dict(spec.class_weight)
    weights = np.array([table.get(int(k), 1.0) for k in classes], dtype=np.float64)
    if case.sample_weight is not None:
        weights = weights * np.asarray(case.sample_weight, dtype=np.float64)  # both float32: exact in float64
    return weights, None


def expected_training(semantics: Keras3, case: Case) -> Expected:
    """What a training-loop or replica case reports, by the rules in the module docstring.

    The documented loss of ``evaluate`` and ``fit`` is the compiled loss of the data ("Returns the loss
    value"), and the batch size is not part of it: the value is the loop's aggregation over one batch of all
    the data.  The bound is that of the loop's own arithmetic over its batches, which for the batch means
    (``sum_over_batch_size``, ``mean``) is exactly the whole data's mean in exact arithmetic, so a correct
    loop is within it.  Where the loop's batch-size weighted mean of per-batch losses is another number
    (``sum``, ``mean_with_sample_weight``), the loss ``evaluate`` reports depends on ``batch_size``: a
    registered divergence (``loop-loss-depends-on-batch-size``), whose value ``loop_training`` computes.
    """
    spec = case.training
    assert spec is not None
    if spec.route in REPLICA_ROUTES:
        return _replicas(semantics, case)
    looped = loop_training(semantics, case)
    if looped.value is None or spec.batch_size is None:
        return looped
    whole = loop_training(semantics, replace(case, training=replace(spec, batch_size=None)))
    if whole.value is None:
        return whole
    return Expected(value=whole.value, bound=looped.bound, dtype=looped.dtype, rule=looped.rule)


def loop_training(semantics: Keras3, case: Case) -> Expected:
    """What the training loop computes as the reported loss (Keras's source: the module docstring): the
    per-batch losses averaged with the batch sizes as weights, with its bound."""
    spec = case.training
    assert spec is not None
    # metrics.Mean(name="loss"): dtype None, so floatx() (Metric.__init__: dtype_policies.get(dtype or
    # backend.floatx())), float32 by default, and the step's loss is cast to it
    tracker = semantics.floatx
    m = tol.error_model(tracker)
    rule = m.describe()
    weights, raises = sample_weights(case, multiplicative=semantics.name == "keras2")
    if raises:
        return Expected(raises=raises, dtype=tracker, rule=rule)
    # the model's output, the loss's y_pred, is the Dense layer's: it computes in its policy's compute dtype,
    # floatx, casting its float inputs to it (autocast), and applies its activation there
    output, x = case.pred_dtype, case.y_pred
    if output in FLOAT_DTYPES:  # the data as fed (the case's dtype), then cast to the layer's
        output, x = semantics.floatx, round_to(case.y_pred, case.pred_dtype)
    n = int(case.y_pred.shape[0])
    on_batch = spec.route in ("test_on_batch", "train_on_batch")
    parts = batches(n, None if on_batch else spec.batch_size)
    producer = SIGMOID_OUTPUT if spec.activation == "sigmoid" else None
    values, errors, sizes = [], [], []
    for s in parts:
        batch = Case(
            id=case.id, y_true=case.y_true[s], y_pred=x[s], true_dtype=case.true_dtype,
            pred_dtype=output, options=case.options, producer=producer,
            sample_weight=None if weights is None else weights[s], weight_dtype=case.weight_dtype,
        )  # fmt: skip
        e = semantics.expected(batch)
        if e.raises is not None:
            return Expected(raises=e.raises, dtype=tracker, rule=rule)
        assert e.value is not None and e.bound is not None
        if e.value.shape != ():
            return Expected(raises=f"the compiled loss is not a scalar (reduction={case.options.reduction!r})", dtype=tracker, rule=rule)
        values.append(float(e.value))
        # the step's loss is cast to the tracker's dtype (CompileLoss: ops.cast(..., self.dtype)); under a
        # strategy each replica's local mean is scaled by 1/R and back (exact for R = 2) and times its size
        # again: one more rounding each
        errors.append(float(e.bound) + m.u * abs(float(e.value)) * (1 if spec.strategy is None else 3))
        sizes.append(s.stop - s.start)
    v = np.asarray(values, dtype=WORK)
    w = np.asarray(sizes, dtype=WORK)
    products = tol.product_error(v, np.asarray(errors, dtype=WORK), w, m)
    with np.errstate(invalid="ignore"):
        total = np.sum(v * w, dtype=WORK)
    total_err = tol.sum_error(v * w, products, None, m)
    count = WORK(np.sum(w))
    with np.errstate(invalid="ignore", divide="ignore"):
        value = WORK(0) if count == 0 else total / count
    bound = tol.divide_error(np.asarray(value), total_err, np.asarray(count), WORK(tol.count_error(n, m)), m)
    if not spec.metric:
        return Expected(value=np.asarray(value, dtype=WORK), bound=np.asarray(bound, dtype=WORK), dtype=tracker, rule=rule)
    metric_case = Case(
        id=case.id, y_true=case.y_true, y_pred=x, true_dtype=case.true_dtype, pred_dtype=output,
        options=Options(from_logits=case.options.from_logits, label_smoothing=case.options.label_smoothing),
        api="metrics.BinaryCrossentropy", producer=producer,
        sample_weight=weights if spec.metric == "weighted_metrics" else None, weight_dtype=case.weight_dtype,
    )  # fmt: skip
    e = semantics.metric(metric_case)
    if e.raises is not None:
        return Expected(raises=e.raises, dtype=tracker, rule=rule)
    assert e.value is not None and e.bound is not None
    return Expected(
        value=np.array([value, e.value], dtype=WORK),
        bound=np.array([bound, e.bound], dtype=WORK),
        dtype=tracker,
        rule=rule + "; [loss, metric]",
    )


def _replicas(semantics: Keras3, case: Case) -> Expected:
    """The loss over the whole batch (module docstring), with the bound of the replicas' own arithmetic."""
    spec = case.training
    assert spec is not None
    plain = replace(case, training=None)
    c = semantics.compute_dtype(plain)
    m = tol.error_model(c)
    refused = ("auto", "sum_over_batch_size")
    if semantics.name == "keras2" and spec.route in ("run", "cross_replica") and case.options.reduction in refused:
        return Expected(
            raises=f"Keras 2 refuses reduction={case.options.reduction!r} under a tf.distribute strategy outside compile/fit",
            dtype=c, rule=m.describe(),
        )  # fmt: skip
    if spec.route == "run:compute_average_loss":
        # per-example losses (the loss's reduction must leave them: "none"), times the weights, summed, / N
        unweighted = replace(plain, sample_weight=None)
        e = semantics.expected(unweighted)
        if e.raises is not None or e.value is None or e.bound is None:
            return e
        if e.value.ndim != 1:
            return Expected(raises="compute_average_loss takes per-example losses: the loss's reduction must be 'none'", dtype=c, rule=e.rule)
        weights = None if case.sample_weight is None else np.asarray(case.sample_weight, dtype=WORK)
        if weights is not None:
            weights = np.broadcast_to(weights, e.value.shape)
        total, total_err = semantics.reduce(e.value, e.bound, weights, "sum", m)
        n = int(case.y_pred.shape[0])
        value = np.asarray(total / WORK(n) if n else WORK(0), dtype=WORK)
        bound = tol.divide_error(value, total_err, np.asarray(WORK(n)), WORK(tol.count_error(n, m)), m)
        # the sum over replicas of the per-replica quotients: one more addition per replica
        return Expected(value=value, bound=np.asarray(bound + spec.replicas * m.u * np.abs(value), dtype=WORK), dtype=c, rule=e.rule)
    e = semantics.expected(plain)
    if e.raises is not None or e.value is None or e.bound is None or spec.route == "cross_replica":
        return e
    # strategy.run: each replica reduces its slice (a sum, or a quotient scaled by 1/R), and the results are
    # summed: per replica one division and one scaling more than the whole batch's, and one addition
    extra = 3 * spec.replicas * m.u * np.abs(np.asarray(e.value, dtype=WORK))
    return Expected(value=e.value, bound=np.asarray(e.bound + extra, dtype=WORK), dtype=e.dtype, rule=e.rule)
