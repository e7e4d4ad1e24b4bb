"""The calls of Keras's own entry points, the same on every backend: the loss class, the loss function and
``keras.ops`` (``TFTarget`` and ``KerasTarget`` both build them here; each adds the entry points only its
backend has)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.case import API_LOSS_CLASS, Options

__all__ = ["keras_call"]


def keras_call(keras: Any, api: str, o: Options, loss: Callable[[Options], Any]) -> Callable[..., Any] | None:
    """The bare call of ``api`` on (y_true, y_pred, sample_weight) with the options ``o``, or None when ``api``
    is not one of Keras's backend-neutral entry points.  ``loss(o)``: the loss object for the options."""
    if api == API_LOSS_CLASS:
        fn = loss(o)

        def call(y_true, y_pred, weight):
            return fn(y_true, y_pred) if weight is None else fn(y_true, y_pred, sample_weight=weight)

        return call
    if api == "binary_crossentropy":
        return lambda y_true, y_pred, weight: keras.losses.binary_crossentropy(
            y_true, y_pred, from_logits=o.from_logits, label_smoothing=o.label_smoothing, axis=o.axis
        )
    if api == "ops.binary_crossentropy":
        return lambda y_true, y_pred, weight: keras.ops.binary_crossentropy(y_true, y_pred, from_logits=o.from_logits)
    return None
