"""Standalone reproductions: a script that needs only ``tensorflow`` and ``numpy`` and shows a divergence.

The script prints TensorFlow's result beside the expected one and exits 1 when they still disagree beyond
the bound the harness used (0 when they agree), so a maintainer can run it as it is, and it keeps working
as a check after a fix.
"""

from __future__ import annotations

import math

import numpy as np

from harness.case import Case, Expected

__all__ = ["snippet"]


def _num(x: float) -> str:
    if math.isnan(x):
        return "np.nan"
    if math.isinf(x):
        return "np.inf" if x > 0 else "-np.inf"
    return repr(float(x))


def _literal(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return repr(a.tolist())
    if a.ndim == 0:
        return _num(float(a))
    if a.size == 0:
        return f"np.zeros({tuple(a.shape)})"
    inner = ", ".join(_num(float(v)) for v in a.astype(np.float64).ravel())
    return f"np.array([{inner}]).reshape({tuple(a.shape)})"


def _tensor(a: np.ndarray, dtype: str) -> str:
    if dtype == "bool":
        return f"tf.constant(np.asarray({_literal(a)}) != 0)"
    return f"tf.constant({_literal(a)}, dtype=tf.{dtype})"


def snippet(case: Case, expected: Expected, *, actual: str = "") -> str:
    """Python source of a reproduction of ``case`` against ``expected``; ``actual`` is what TF printed."""
    o = case.options
    ctor = (
        f"tf.keras.losses.BinaryCrossentropy(from_logits={o.from_logits!r}, label_smoothing={o.label_smoothing!r}, "
        f"axis={o.axis!r}, reduction={o.reduction!r}"
        # dtype only when set: Keras 2's constructor has no such argument
        + ("" if o.dtype is None else f", dtype={o.dtype!r}")
        + ")"
    )
    lines = [
        f"# Reproduction of bce-harness case {case.id!r} (path {case.path})",
        "# Needs only tensorflow and numpy.  Exit status 1: the divergence reproduces; 0: it does not.",
    ]
    if actual:
        # every line a comment: a crash's or hang's message carries the worker's last output, lines and all
        lines.append("# TensorFlow returned when this was written: " + actual.replace("\n", "\n# "))
    lines += [
        "import os",
        "import sys",
        "",
        'os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")',
        "import numpy as np",
        "import tensorflow as tf",
        "",
        f"y_true = {_tensor(case.y_true, case.true_dtype)}",
        f"y_pred = {_tensor(case.y_pred, case.pred_dtype)}",
    ]
    if case.sample_weight is None:
        lines.append("sample_weight = None")
    elif case.sample_weight.ndim == 0 and case.grad is None:
        lines.append(f"sample_weight = {_num(float(case.sample_weight))}")
    else:
        lines.append(f"sample_weight = {_tensor(case.sample_weight, case.weight_dtype)}")
    lines += _call_source(case, ctor)
    lines.append("")
    if expected.raises is not None:
        lines += [
            f"# Expected: the call raises ({expected.raises}).",
            "try:",
            "    actual = run(y_true, y_pred, sample_weight)",
            "except Exception as exc:",
            '    print("raised as expected:", type(exc).__name__, exc)',
            "    sys.exit(0)",
            'print("returned instead of raising:", tf.cast(actual, tf.float64).numpy())',
            "sys.exit(1)",
        ]
        return "\n".join(lines) + "\n"
    assert expected.value is not None and expected.bound is not None
    lines += [
        "# Expected from the documented Keras semantics, computed in extended precision; |error| allowed: bound.",
        f"expected = {_literal(np.asarray(expected.value, dtype=np.float64))}",
        f"bound = {_literal(np.asarray(expected.bound, dtype=np.float64))}",
        "try:",
        "    actual = run(y_true, y_pred, sample_weight)",
        "except Exception as exc:",
        '    print("raised, but a value was expected:", type(exc).__name__, exc)',
        "    sys.exit(1)",
        "a = np.asarray(tf.cast(actual, tf.float64).numpy(), dtype=np.float64)",
        'print("actual (TF):", a.tolist(), actual.dtype.name)',
        f'print("expected:   ", np.asarray(expected).tolist(), {expected.dtype!r})',
        "same = a.shape == np.shape(expected) and actual.dtype.name == " + repr(expected.dtype),
        "if same:",
        "    with np.errstate(invalid='ignore'):",
        "        close = np.isclose(a, expected, rtol=0, atol=0, equal_nan=True) | (np.abs(a - expected) <= bound)",
        "    same = bool(np.all(close))",
        'print("agrees" if same else "DIVERGES")',
        "sys.exit(0 if same else 1)",
    ]
    return "\n".join(lines) + "\n"


def _call_source(case: Case, ctor: str) -> list[str]:
    """Source of ``run(y_true, y_pred, sample_weight)``: the case's entry point, producer, mask, gradient
    and mode, as harness/target.py builds them."""
    o = case.options
    lines = [""]
    if case.api == "metrics.BinaryCrossentropy":
        dtype = "" if o.dtype is None else f", dtype={o.dtype!r}"
        lines.append(
            f"metric = tf.keras.metrics.BinaryCrossentropy(from_logits={o.from_logits!r}, "
            f"label_smoothing={o.label_smoothing!r}{dtype})"
        )
    elif case.api == "BinaryCrossentropy":
        lines.append(f"loss = {ctor}")
    lines += ["", "", "def call(y_true, y_pred, sample_weight):"]
    if case.producer is not None:
        producer = f"tf.{case.producer}" if case.producer.startswith("keras.") else case.producer
        lines.append(f"    y_pred = {producer}(y_pred)")
    if case.mask is not None:
        lines += [
            "    try:  # the mask a Masking layer attaches (Keras 3.16 moved the helper)",
            "        from keras.src.backend import set_keras_mask",
            "    except ImportError:",
            "        from keras.src.backend.common.masking import set_keras_mask",
        ]
        if case.producer is None:
            lines.append("    y_pred = tf.identity(y_pred)")
        lines.append(f"    set_keras_mask(y_pred, tf.constant({case.mask.tolist()!r}))")
    if case.api == "BinaryCrossentropy":
        lines.append("    return loss(y_true, y_pred) if sample_weight is None else loss(y_true, y_pred, sample_weight=sample_weight)")
    elif case.api == "binary_crossentropy":
        lines.append(
            f"    return tf.keras.losses.binary_crossentropy(y_true, y_pred, from_logits={o.from_logits!r}, "
            f"label_smoothing={o.label_smoothing!r}, axis={o.axis!r})"
        )
    elif case.api == "ops.binary_crossentropy":
        lines.append(f"    return tf.keras.ops.binary_crossentropy(y_true, y_pred, from_logits={o.from_logits!r})")
    elif case.api == "nn.sigmoid_cross_entropy_with_logits":
        lines.append("    return tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)")
    else:
        lines += [
            "    for u in range(y_pred.shape[0]):  # one update_state per leading slice",
            "        metric.update_state(y_true[u], y_pred[u], sample_weight=None if sample_weight is None else sample_weight[u])",
            "    return metric.result()",
        ]
    lines += ["", ""]
    if case.grad is None:
        lines.append("run = call")
    else:
        source = "y_pred" if case.grad == "y_pred" else "sample_weight"
        lines += [
            "def run(y_true, y_pred, sample_weight):",
            f"    # the gradient of the result's sum with respect to {source}",
            "    with tf.GradientTape() as tape:",
            f"        tape.watch({source})",
            "        result = call(y_true, y_pred, sample_weight)",
            f"    return tape.gradient(result, {source})",
            "",
        ]
    if case.mode == "function":
        lines.append("run = tf.function(run)")
    elif case.mode == "xla":
        lines.append("run = tf.function(run, jit_compile=True)")
    return lines
