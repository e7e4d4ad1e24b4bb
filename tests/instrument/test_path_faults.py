"""Faults that show in one path only: inside a graph, under XLA, in the gradient, in the metric, under a mask.

Each is planted into Keras in this process (a patched function, as a broken release would ship it), the
paths family of the default suite runs through the real pipeline, and the failures must name that path
and no other.  A fresh TFTarget per test, so nothing traced before the fault is reused.
"""

from __future__ import annotations

import fnmatch

import pytest

from harness.frameworks import TFTarget
from harness.generate.grid import default_suite
from harness.oracle.profiles import select_profile
from harness.run.runner import run_cases

pytest.importorskip("keras.src.backend", reason="the faults are planted in Keras 3's TensorFlow backend")

pytestmark = [
    pytest.mark.tensorflow,
    pytest.mark.skipif(
        select_profile().profile != "keras3", reason="the paths family and these faults are Keras 3's (tf.keras >= 2.16)"
    ),
]


def _paths(pattern: str):
    return [c for c in default_suite() if fnmatch.fnmatchcase(c.id, pattern)]


def _failing(cases, registry) -> list[str]:
    result = run_cases(cases, TFTarget(), registry)
    assert not result.ok
    return [r.case.id for r in result.records if r.status in ("fail", "xpass", "error")]


def _scaled(fn, tf, when):
    """fn with its result scaled by 1 + 1e-3 while ``when()`` holds (at trace time in graphs)."""

    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        return out * tf.constant(1.001, out.dtype) if when() else out

    return wrapped


@pytest.fixture()
def keras_nn(tf_target, monkeypatch):
    from planted import tf_nn_module

    nn = tf_nn_module()
    if nn is None:
        pytest.skip("no Keras TensorFlow backend nn module in a known place")
    return tf_target.tf, nn, monkeypatch


def test_fault_only_inside_a_graph(keras_nn, registry):
    tf, nn, monkeypatch = keras_nn
    monkeypatch.setattr(nn, "binary_crossentropy", _scaled(nn.binary_crossentropy, tf, lambda: not tf.executing_eagerly()))
    failing = _failing(_paths("paths/*/[ef][au][gn]*/*"), registry)  # eager and function
    assert failing and all("/function/" in i for i in failing), failing


def test_fault_only_under_xla(keras_nn, registry):
    from tensorflow.python.ops import control_flow_util

    tf, nn, monkeypatch = keras_nn

    def in_xla() -> bool:
        return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())

    monkeypatch.setattr(nn, "binary_crossentropy", _scaled(nn.binary_crossentropy, tf, in_xla))
    failing = _failing(_paths("paths/BinaryCrossentropy/*/probs/*"), registry)
    assert failing and all("/xla/" in i for i in failing), failing


def test_fault_only_in_the_gradient(keras_nn, registry):
    tf, nn, monkeypatch = keras_nn
    original = nn.binary_crossentropy

    def wrong_gradient(target, output, from_logits=False):
        @tf.custom_gradient
        def inner(out):
            def grad(upstream):
                with tf.GradientTape() as tape:
                    tape.watch(out)
                    value = original(target, out, from_logits=from_logits)
                return tape.gradient(value, out, output_gradients=upstream) * tf.constant(1.01, out.dtype)

            return original(target, out, from_logits=from_logits), grad

        return inner(output)

    monkeypatch.setattr(nn, "binary_crossentropy", wrong_gradient)
    failing = _failing(_paths("paths/*/eager/*"), registry)
    assert failing and all("/grad=y_pred/" in i for i in failing), failing


def test_fault_only_in_the_metric(tf_target, monkeypatch, registry):
    import keras.src.metrics.reduction_metrics as rm

    tf = tf_target.tf
    original = rm.Mean.result
    monkeypatch.setattr(rm.Mean, "result", lambda self: original(self) * tf.constant(1.001, self.dtype))
    failing = _failing(_paths("paths/*/eager/*"), registry)
    assert failing and all(i.startswith("paths/metrics.BinaryCrossentropy/") for i in failing), failing


def test_fault_only_under_a_mask(tf_target, monkeypatch, registry):
    import keras.src.losses.loss as loss_module

    monkeypatch.setattr(loss_module, "apply_mask", lambda sample_weight, mask, dtype, reduction: sample_weight)
    failing = _failing(_paths("paths/BinaryCrossentropy/eager/*"), registry)
    assert failing and all("/mask/" in i for i in failing), failing
