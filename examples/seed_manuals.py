"""The hand-written BCEs of the two seed articles (../shared/seeds/), transcribed as functions for
``bce-harness explain --manual examples/seed_manuals.py:NAME``.

Each body is the article's code with its constants as the article wrote them; only the function wrapper and
the name are ours.  tests/instrument/test_explain.py runs each one through ``explain`` with the article's
inputs and options and checks the diagnosis (the articles get some details wrong).
"""

from __future__ import annotations

import numpy as np

# -- "Implementing Binary Cross Entropy loss gives different answer than Tensorflow's" (seed 1) ------------


def seed1_manual_bce_probs(y_true, y_pred, eps=1e-7):
    """Its ``manual_bce_probs``: elementwise, unreduced (it then compares ``tf.reduce_mean`` of it)."""
    import tensorflow as tf

    y_pred = tf.clip_by_value(y_pred, eps, 1.0 - eps)
    return -(y_true * tf.math.log(y_pred) + (1.0 - y_true) * tf.math.log(1.0 - y_pred))


def seed1_reduce_mean(y_true, y_pred):
    """``tf.reduce_mean(manual_bce_probs(y_true, y_pred))``, its reduced comparison."""
    import tensorflow as tf

    return tf.reduce_mean(seed1_manual_bce_probs(y_true, y_pred))


# -- "How can I manually verify calculations using tf.keras.losses.BinaryCrossentropy?" (seed 2) ----------


def seed2_example1(y_true, y_pred):
    """Example 1: clip, the formula, the sum divided by len(y_true)."""
    epsilon = 1e-7
    return -np.sum(
        y_true * np.log(np.clip(y_pred, epsilon, 1 - epsilon))
        + (1 - y_true) * np.log(np.clip(1 - y_pred, epsilon, 1 - epsilon))
    ) / len(y_true)


def seed2_example2(y_true, y_pred_logits):
    """Example 2, from_logits=True: a sigmoid, then Example 1's clipped formula."""
    y_pred = 1 / (1 + np.exp(-y_pred_logits))
    epsilon = 1e-7
    return -np.sum(
        y_true * np.log(np.clip(y_pred, epsilon, 1 - epsilon))
        + (1 - y_true) * np.log(np.clip(1 - y_pred, epsilon, 1 - epsilon))
    ) / len(y_true)


def seed2_example3(y_true, y_pred):
    """Example 3, label smoothing 0.1 as the article smooths."""
    smoothing_factor = 0.1
    y_true_smoothed = y_true * (1 - smoothing_factor) + smoothing_factor * (1 - y_true)
    epsilon = 1e-7
    return -np.sum(
        y_true_smoothed * np.log(np.clip(y_pred, epsilon, 1 - epsilon))
        + (1 - y_true_smoothed) * np.log(np.clip(1 - y_pred, epsilon, 1 - epsilon))
    ) / len(y_true)
