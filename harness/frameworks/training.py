"""The training-loop paths: the case's loss compiled into a tiny model and reached through ``evaluate``,
``test_on_batch``, ``fit`` (one epoch, learning rate 0) or ``train_on_batch``.

The model's output is the case's predictions, known exactly: one ``Dense(C)`` layer with an identity kernel
and a zero bias on an input that is ``y_pred`` (``x @ I + 0`` is ``x`` in every format), with the case's
activation (``"sigmoid"``: ``y_pred`` holds the logits, as a ``Dense(1, activation="sigmoid")`` output
layer would make them).  SGD with a learning rate of 0 leaves the weights where they are, and they are set
back before every case anyway, so a model is built once per signature and reused.

Imported by the target package only (``harness.frameworks.TFTarget`` hands it its TensorFlow); the strategy it
needs for replicas comes from ``harness.frameworks.distribute``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from harness.case import TRAINING_ROUTES, Case, Options

__all__ = ["METRIC_NAME", "TrainingRunner"]

METRIC_NAME = "bce_metric"  # the compiled metric's name, so its entry in the logs is found by name


class TrainingRunner:
    """Runs training-loop cases; ``make_loss(options)`` builds the compiled loss (the target's factory)."""

    def __init__(self, tf: Any, make_loss: Any) -> None:
        self.tf = tf
        self._make_loss = make_loss
        self._models: dict[tuple[Any, ...], tuple[Any, list[np.ndarray]]] = {}

    def run(self, case: Case, strategy: Any = None) -> tuple[np.ndarray, str]:
        """The reported loss (and metric, when compiled with one) of ``case``, as float64, and its dtype."""
        spec = case.training
        assert spec is not None and spec.route in TRAINING_ROUTES
        model = self._model(case, strategy)
        x = np.asarray(case.y_pred, dtype=np.float32)
        y = np.asarray(case.y_true, dtype=np.float32)
        sw = None if case.sample_weight is None else np.asarray(case.sample_weight, dtype=np.float32)
        cw = None if spec.class_weight is None else dict(spec.class_weight)
        batch = spec.batch_size or max(len(x), 1)
        if spec.route == "evaluate":
            logs = model.evaluate(x, y, batch_size=batch, sample_weight=sw, verbose=0, return_dict=True)
        elif spec.route == "test_on_batch":
            logs = model.test_on_batch(x, y, sample_weight=sw, return_dict=True)
        elif spec.route == "fit":
            history = model.fit(
                x, y, batch_size=batch, epochs=1, shuffle=False, sample_weight=sw, class_weight=cw, verbose=0
            )
            logs = {k: v[-1] for k, v in history.history.items()}
        else:
            logs = model.train_on_batch(x, y, sample_weight=sw, class_weight=cw, return_dict=True)
        values = [logs["loss"]] + ([logs[METRIC_NAME]] if spec.metric else [])
        # the loss tracker's dtype; before Keras 3.2 a metric's dtype is None, and its variables say it
        tracker = model.metrics[0] if model.metrics else None
        dtype = getattr(tracker, "dtype", None) or (tracker.variables[0].dtype if tracker is not None and tracker.variables else "float32")
        return np.asarray([float(v) for v in values] if spec.metric else float(values[0]), dtype=np.float64), str(dtype)

    def _model(self, case: Case, strategy: Any) -> Any:
        """A compiled model of the case's signature with its initial weights, built once per signature (once
        per case under a strategy: its first ``fit`` or ``evaluate`` builds it from the first batch, which
        the cases must each see)."""
        spec = case.training
        assert spec is not None
        width = int(case.y_pred.shape[-1]) if case.y_pred.ndim == 2 else 1
        key = (width, spec.activation, case.options, spec.metric)
        cached = None if strategy is not None else self._models.get(key)
        if cached is not None:
            model, weights = cached
            model.set_weights(weights)
            # as a model that ran nothing before: *_on_batch reset the trackers themselves only from Keras
            # 3.15 (on_batch-calls-reset-trackers), so the case would otherwise report a running mean over the
            # cases this worker ran before it
            model.reset_metrics()
            return model
        keras = self.tf.keras
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model = build_model(keras, width, spec.activation)
            metrics = {} if spec.metric is None else {spec.metric: [metric(keras, case.options)]}
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=self._make_loss(case.options), **metrics)
        if strategy is None:
            self._models[key] = (model, model.get_weights())
        return model


def build_model(keras: Any, width: int, activation: str) -> Any:
    """Input -> Dense(width, activation) with an identity kernel and a zero bias: the output is the input,
    or its sigmoid."""
    # the identity kernel set after the build: the initializer's name "identity" is Keras 3.2+ only
    model = keras.Sequential(
        [keras.Input((width,)), keras.layers.Dense(width, activation=activation, kernel_initializer="zeros", bias_initializer="zeros")]
    )
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.eye(width, dtype=kernel.dtype), bias])
    return model


def metric(keras: Any, options: Options) -> Any:
    """The ``BinaryCrossentropy`` metric compiled beside the loss, with the loss's from_logits and smoothing."""
    return keras.metrics.BinaryCrossentropy(
        name=METRIC_NAME, from_logits=options.from_logits, label_smoothing=options.label_smoothing
    )
