"""Put your own BCE under the specification oracle: the bce-harness pytest plugin in a project's own suite.

With bce-harness installed, pytest loads the plugin by itself (entry point ``pytest11``); run this file with
``pytest examples/test_custom_loss.py``.  The project's own suite runs it too (tests/instrument/test_plugin.py),
and once more with a wrong loss planted, which must fail.
"""

from __future__ import annotations

import pytest
from custom_loss import my_bce

from harness.pytest_plugin import assert_bce_matches


def test_typical_values():
    assert_bce_matches(my_bce, [1, 0, 1, 0], [0.9, 0.1, 0.6, 0.4])


def test_label_smoothing_and_the_clip():
    assert_bce_matches(my_bce, [[1, 0], [1, 1]], [[1.0, 0.0], [0.0, 0.3]], label_smoothing=0.1)


def test_logits_and_weights(bce):
    """The ``bce`` fixture: the same assertion under the profile --bce-profile chooses, and the expected value."""
    bce.assert_matches(my_bce, [[1, 0, 1], [0, 1, 1]], [[2.0, -30.0, 0.5], [40.0, -1.0, 3.0]], from_logits=True,
                       sample_weight=[0.5, 2.0])  # fmt: skip
    assert bce.expected([1, 0], [0.5, 0.5]).value == pytest.approx(0.6931471805599453)


@pytest.mark.bce_loss(my_bce, max_examples=40)
def test_drawn_cases():
    """The marker draws shapes, dtypes, values at the edges, label smoothing, logits and weights (every option
    my_bce's signature names; the others stay at Keras's defaults) and checks each against the oracle."""
