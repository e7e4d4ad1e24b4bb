"""Bad arguments to the public functions: each raises UsageError naming the argument and the bad value.

Every row of the table is the bad call itself, as source text: it is both the test id and, evaluated in
``NAMESPACE``, the call under test, so the id can never drift from what is run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.case import Case, Options
from harness.dtypes import float_format, round_to, ulp_distance
from harness.errors import EXIT_USAGE, UsageError
from harness.generate.grid import default_suite, select
from harness.oracle import expected

CASE = Case(id="t", y_true=np.ones((1, 2)), y_pred=np.full((1, 2), 0.5), true_dtype="float32", pred_dtype="float32")
NAMESPACE: dict[str, Any] = {
    "Case": Case,
    "Options": Options,
    "default_suite": default_suite,
    "select": select,
    "float_format": float_format,
    "round_to": round_to,
    "ulp_distance": ulp_distance,
    "expected": expected,
    "case": CASE,
    "cases": [CASE],
}

# A Case call needs five arguments; the rows below vary one of them.
CASE_ARGS = "id='t', y_true=[1.0], y_pred=[0.5], true_dtype='float32'"


def bad(call: str, name: str, value: str, *, bug: str | None = None) -> Any:
    """A row: the call, then what its message must contain: the argument's name and the bad value.

    ``bug`` marks a row whose message falls short today (strict xfail: it fails once the harness is fixed,
    so the marker is removed then).
    """
    marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=bug)] if bug else []
    return pytest.param(call, name, value, id=call, marks=marks)


ROWS = [
    bad("Options(label_smoothing=float('nan'))", "label_smoothing", "nan"),
    bad("Options(label_smoothing=float('inf'))", "label_smoothing", "inf"),
    bad("Options(label_smoothing='0.1')", "label_smoothing", "'0.1'"),
    bad("Options(label_smoothing=True)", "label_smoothing", "True"),
    bad("Options(axis=1.5)", "axis", "1.5"),
    bad("Options(axis=True)", "axis", "True"),
    bad("Options(dtype='float8')", "dtype", "'float8'"),
    bad("Options(dtype='int32')", "dtype", "'int32'"),
    bad("Options(from_logits=1)", "from_logits", "=1"),
    bad("Options(from_logits='True')", "from_logits", "'True'"),
    bad("Options(reduction=0)", "reduction", "=0"),
    bad("default_suite(seed=-1)", "seed", "-1"),
    bad("default_suite(seed=1.5)", "seed", "1.5"),
    bad("default_suite(seed=True)", "seed", "True"),
    bad("select(cases, max_cases=0)", "max_cases", "=0"),
    bad("select(cases, max_cases=2.0)", "max_cases", "2.0"),
    bad("float_format('int8')", "dtype", "'int8'"),
    bad("round_to(1.0, 'complex64')", "dtype", "'complex64'"),
    bad("ulp_distance(1.0, 1.0, 'int32')", "dtype", "'int32'"),
    bad(f"Case({CASE_ARGS}, pred_dtype='float32', api='CategoricalCrossentropy')", "api", "'CategoricalCrossentropy'"),
    bad("Case(id='', y_true=[1.0], y_pred=[0.5], true_dtype='float32', pred_dtype='float32')", "id", "''"),
    bad(
        f"Case({CASE_ARGS}, pred_dtype='float32', sample_weight=[1.0], weight_dtype='int32')", "weight_dtype", "'int32'"
    ),
    bad(
        f"Case({CASE_ARGS}, pred_dtype='int32')",
        "pred_dtype",
        "'int32'",
    ),
    bad(
        "Case(id='t', y_true=[1.0], y_pred=[0.5], true_dtype='uint8', pred_dtype='float32')",
        "true_dtype",
        "'uint8'",
    ),
    bad(
        f"Case({CASE_ARGS}, pred_dtype='float32', sample_weight=[1.0], weight_dtype=None)",
        "weight_dtype",
        "None",
    ),
    bad(
        "Case(id='t', y_true=[1.0], y_pred=[0.1], true_dtype='float32', pred_dtype='float16')",
        "y_pred",
        "0.1",
    ),
    bad("expected(case, profile='keras9')", "profile", "'keras9'"),
]


@pytest.mark.parametrize("call, name, value", ROWS)
def test_bad_argument_raises_usage_error(call: str, name: str, value: str) -> None:
    with pytest.raises(UsageError) as info:
        eval(call, dict(NAMESPACE))  # the call is a literal of the table above
    message = str(info.value)
    assert isinstance(info.value, ValueError) and info.value.exit_code == EXIT_USAGE
    assert "\n" not in message
    assert name in message, message
    assert value in message, message


def test_the_namespace_accepts_good_calls() -> None:
    """The rows fail because of their one bad argument, not because the namespace or the template is wrong."""
    good = [
        "Options(label_smoothing=0.1, axis=0, dtype='float16', from_logits=True, reduction=None)",
        "select(cases, max_cases=1)",
        "float_format('bfloat16')",
        "round_to(1.0, 'float16')",
        "expected(case, profile='keras3')",
        f"Case({CASE_ARGS}, pred_dtype='float16', sample_weight=[1.0], weight_dtype='float16')",
    ]
    for call in good:
        eval(call, dict(NAMESPACE))
