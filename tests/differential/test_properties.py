"""Differential properties: TensorFlow against the reference over the Hypothesis strategies.

Where the grid suite (test_differential.py) checks fixed cases, these draw them: every shape kind, dtype,
option and weight form, values weighted toward the boundaries.  A divergence fails the test unless a
registry entry matching the case explains its kind (fuzz.explanation).  A draw that agrees passes even
where an entry matches: a random case can sit in a registered class without showing it, so holding the
registry to account (xpass) stays with the grid.  The number of draws is the Hypothesis profile's
(tests/conftest.py): quick by default, thorough with BCE_HYPOTHESIS_PROFILE=nightly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.case import REDUCTIONS, Case, Options
from harness.fuzz import explanation
from harness.generate.strategies import cases, option_kwargs, probabilities
from harness.judge.compare import compare
from harness.judge.matching import record_facets
from harness.judge.registry import load_registry
from harness.oracle import expected
from harness.oracle.profiles import select_profile
from harness.report.repro import snippet

SELECTION = select_profile()
REGISTRY = load_registry().for_versions(SELECTION.tensorflow, SELECTION.keras)

pytestmark = [
    pytest.mark.tensorflow,
    pytest.mark.skipif(SELECTION.profile != "keras3", reason="the strategies draw Keras 3 options"),
]

UNREDUCED = (None, "none")
REDUCED = tuple(r for r in REDUCTIONS if r not in UNREDUCED)


def _check(case: Case, tf_target) -> None:
    exp = expected(case, profile=SELECTION.profile)
    out = tf_target.run(case)
    comparison = compare(case, exp, out)
    if comparison.agrees:
        return
    entry = explanation(REGISTRY, record_facets(case, exp, SELECTION.profile), comparison.kinds)
    if entry is None:
        actual = out.error or f"{out.value!r} ({out.dtype})"
        pytest.fail(f"{comparison.message}\n\nReproduction:\n{snippet(case, exp, actual=actual)}", pytrace=False)


@given(data=st.data())
def test_elementwise_losses_match_the_reference(data: st.DataObject, tf_target) -> None:
    _check(data.draw(cases(reductions=UNREDUCED), label="case"), tf_target)


@given(data=st.data())
def test_reduced_losses_match_the_reference(data: st.DataObject, tf_target) -> None:
    _check(data.draw(cases(reductions=REDUCED), label="case"), tf_target)


@given(data=st.data())
def test_options_left_out_are_the_documented_defaults(data: st.DataObject, tf_target) -> None:
    """A loss built with some options left out computes what Options' defaults (the documented ones) give.

    The target passes every option explicitly, so this is the one place Keras's own defaults are called.
    """
    tf = tf_target.tf
    kwargs = data.draw(option_kwargs(axes=(-1, 0, 1)), label="constructor keywords")
    y = data.draw(st.sampled_from([0.0, 1.0]).map(lambda v: np.full((3, 2), v)), label="y_true")
    p = data.draw(probabilities((3, 2), dtype="float32"), label="y_pred")
    options = Options(**kwargs)
    case = Case(id="defaults", y_true=y, y_pred=p, true_dtype="float32", pred_dtype="float32", options=options)
    explicit = tf_target.run(case)
    try:
        value = tf.keras.losses.BinaryCrossentropy(**kwargs)(tf.constant(y, tf.float32), tf.constant(p, tf.float32))
    except Exception as exc:  # noqa: BLE001 - then the explicit call must have raised too
        assert explicit.error is not None, f"{kwargs}: raised {exc!r} left out, returned {explicit.value} given"
        return
    assert explicit.error is None, f"{kwargs}: raised {explicit.error} given, returned {value} left out"
    assert value.dtype.name == explicit.dtype
    np.testing.assert_array_equal(np.asarray(value.numpy(), dtype=np.float64), explicit.value)
