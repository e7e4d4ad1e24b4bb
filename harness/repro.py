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
    call_args = "y_true, y_pred"
    lines = [
        f"# Reproduction of bce-harness case {case.id!r}",
        "# Needs only tensorflow and numpy.  Exit status 1: the divergence reproduces; 0: it does not.",
    ]
    if actual:
        lines.append(f"# TensorFlow returned when this was written: {actual}")
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
    if case.sample_weight is not None:
        if case.sample_weight.ndim == 0:
            lines.append(f"sample_weight = {_num(float(case.sample_weight))}")
        else:
            lines.append(f"sample_weight = {_tensor(case.sample_weight, case.weight_dtype)}")
        call_args += ", sample_weight=sample_weight"
    if expected.raises is not None:
        lines += [
            f"# Expected: the call raises ({expected.raises}).",
            "try:",
            f"    actual = {ctor}({call_args})",
            "except Exception as exc:",
            '    print("raised as expected:", type(exc).__name__, exc)',
            "    sys.exit(0)",
            'print("returned instead of raising:", actual.numpy())',
            "sys.exit(1)",
        ]
        return "\n".join(lines) + "\n"
    assert expected.value is not None and expected.bound is not None
    lines += [
        "# Expected from the documented Keras semantics, computed in extended precision; |error| allowed: bound.",
        f"expected = {_literal(np.asarray(expected.value, dtype=np.float64))}",
        f"bound = {_literal(np.asarray(expected.bound, dtype=np.float64))}",
        "try:",
        f"    actual = {ctor}({call_args})",
        "except Exception as exc:",
        '    print("raised, but a value was expected:", type(exc).__name__, exc)',
        "    sys.exit(1)",
        "a = np.asarray(actual.numpy(), dtype=np.float64)",
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
