"""The calls of Keras's own entry points, the same on every backend: the loss class, the loss function and
``keras.ops`` (``TFTarget`` and ``KerasTarget`` both build them here; each adds the entry points only its
backend has)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.case import API_LOSS_CLASS, Case, Options

__all__ = ["keras_call", "weight_argument"]


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


def weight_argument(case: Case, tensor: Callable[[Any, str], Any]) -> Any:
    """``sample_weight`` as the call gets it: None, a Python scalar for a 0-d weight (unless the gradient with
    respect to it is asked, which needs a tensor), else ``tensor(values, weight_dtype)``."""
    if case.sample_weight is None:
        return None
    if case.sample_weight.ndim == 0 and case.grad is None:
        return float(case.sample_weight)
    return tensor(case.sample_weight, case.weight_dtype)
