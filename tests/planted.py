"""Loss factories with planted process-level faults, imported by name by the worker processes.

``make`` builds Keras's loss, except for two option values that no generated case uses: label_smoothing
0.375 aborts the process (as a C++ CHECK failure would) and 0.625 hangs (after printing a line).
"""

from __future__ import annotations

import os
import time

from harness.case import Options

ABORT_SMOOTHING = 0.375
HANG_SMOOTHING = 0.625
HANG_SAYS = "planted hang: sleeping for an hour"


def make(options: Options):
    import tensorflow as tf

    if options.label_smoothing == ABORT_SMOOTHING:

        def abort(y_true, y_pred, sample_weight=None):
            os.abort()

        return abort
    if options.label_smoothing == HANG_SMOOTHING:

        def hang(y_true, y_pred, sample_weight=None):
            print(HANG_SAYS)  # belongs in the timeout record, not in the run's output
            time.sleep(3600)

        return hang
    # dtype only when set: Keras 2's constructor has no such argument (the tf215 and tf-legacy-keras lines)
    dtype = {} if options.dtype is None else {"dtype": options.dtype}
    return tf.keras.losses.BinaryCrossentropy(
        from_logits=options.from_logits,
        label_smoothing=options.label_smoothing,
        axis=options.axis,
        reduction=options.reduction,
        **dtype,
    )


# -- faults that hit a whole class of cases (issue 12) --------------------------------------------------------
# Each wraps Keras's loss and misbehaves on a class of inputs, as a broken TensorFlow build would: every case
# of the class crashes or hangs, every other case is Keras's own answer.  Eager calls see the values; a traced
# call sees only static shapes, so the value faults fire in eager mode only.


def _keras_loss(options: Options):
    import tensorflow as tf

    dtype = {} if options.dtype is None else {"dtype": options.dtype}
    return tf.keras.losses.BinaryCrossentropy(
        from_logits=options.from_logits,
        label_smoothing=options.label_smoothing,
        axis=options.axis,
        reduction=options.reduction,
        **dtype,
    )


def _wrap(options: Options, fires):
    loss = _keras_loss(options)

    def call(y_true, y_pred, sample_weight=None):
        fires(y_true, y_pred)
        return loss(y_true, y_pred) if sample_weight is None else loss(y_true, y_pred, sample_weight=sample_weight)

    return call


def _values(*tensors):
    import numpy as np
    import tensorflow as tf

    if not tf.executing_eagerly():
        return None
    return [np.asarray(t.numpy(), dtype=np.float64) for t in tensors]


def hang_on_inf(options: Options):
    """Hangs on every call whose inputs hold an infinite value."""
    import numpy as np

    def fires(y_true, y_pred):
        values = _values(y_true, y_pred)
        if values is not None and any(np.isinf(v).any() for v in values):
            print(HANG_SAYS)
            time.sleep(3600)

    return _wrap(options, fires)


def segv_on_empty(options: Options):
    """Dies of SIGSEGV on every call with an empty input (static shapes: also when traced)."""
    import signal

    def fires(y_true, y_pred):
        if any(0 in tuple(t.shape) for t in (y_true, y_pred)):
            os.kill(os.getpid(), signal.SIGSEGV)

    return _wrap(options, fires)


def abort_on_heavy_smoothing(options: Options):
    """Aborts (as a failed C++ CHECK would) on every call with a label smoothing above a quarter."""
    if options.label_smoothing > 0.25:

        def abort(y_true, y_pred, sample_weight=None):
            os.abort()

        return abort
    return _keras_loss(options)


_CALLS = [0]


def mixed(options: Options):
    """Several faults at once, on classes the quarantine must tell apart, and a worker that misbehaves:

    * SIGSEGV on every empty input (a class its signature names);
    * SIGABRT on every input of shape (8, 3) (a class its signature cannot name: its samples pass, so it
      must be lifted, and no other case recorded as crashed);
    * os._exit(3) on the 60th call of each worker process, whatever the case (not reproducible);
    * garbage written to file descriptor 1 on every call (it must stay out of the run's output).
    """
    import signal

    def fires(y_true, y_pred):
        os.write(1, b"\x00\xffgarbage from the loss\n")
        _CALLS[0] += 1
        if _CALLS[0] == 60:
            os._exit(3)
        if any(0 in tuple(t.shape) for t in (y_true, y_pred)):
            os.kill(os.getpid(), signal.SIGSEGV)
        if tuple(y_pred.shape) == (8, 3):
            os.abort()

    return _wrap(options, fires)


def segv_on_rank3(options: Options):
    """SIGSEGV on every call with an input of rank 3 or more (also a stacked call of rank-2 cases)."""
    import signal

    def fires(y_true, y_pred):
        if max(len(y_true.shape), len(y_pred.shape)) >= 3:
            os.kill(os.getpid(), signal.SIGSEGV)

    return _wrap(options, fires)


def doubled(options: Options):
    """Keras's loss, times two: a factory whose divergence only a reproduction that calls it shows."""
    import tensorflow as tf

    dtype = {} if options.dtype is None else {"dtype": options.dtype}
    loss = tf.keras.losses.BinaryCrossentropy(
        from_logits=options.from_logits,
        label_smoothing=options.label_smoothing,
        axis=options.axis,
        reduction=options.reduction,
        **dtype,
    )

    def call(y_true, y_pred, sample_weight=None):
        return 2 * loss(y_true, y_pred, sample_weight=sample_weight)

    return call


# -- faults that show under one configuration only (issue 14) -------------------------------------------------


def wrong_under_mixed_float16(options: Options, policy=None):
    """Keras's loss, except that under the global mixed_float16 policy it computes in float16, as a release
    that let the global policy reach the loss would (the loss is documented to use floatx, not the policy)."""
    import tensorflow as tf

    real = _keras_loss(options)

    def loss(y_true, y_pred, sample_weight=None):
        if tf.keras.mixed_precision.global_policy().name == "mixed_float16":
            y_pred = tf.cast(tf.cast(y_pred, tf.float16), y_pred.dtype)
        return real(y_true, y_pred) if sample_weight is None else real(y_true, y_pred, sample_weight=sample_weight)

    return loss


def wrong_with_a_loss_policy(options: Options, policy=None):
    """Keras's loss; given a dtype policy, it computes in the policy's variable dtype (float32) instead of its
    compute dtype, as a release that read the wrong half of the policy would."""
    import tensorflow as tf

    if policy is None:
        return _keras_loss(options)
    return tf.keras.losses.BinaryCrossentropy(
        from_logits=options.from_logits, label_smoothing=options.label_smoothing, axis=options.axis,
        reduction=options.reduction, dtype=policy.variable_dtype,
    )  # fmt: skip


def stale_epsilon(options: Options, policy=None):
    """Keras's loss computed under the default epsilon whatever keras.config.set_epsilon said."""
    import tensorflow as tf

    real = _keras_loss(options)
    backend = tf.keras.backend

    def loss(y_true, y_pred, sample_weight=None):
        configured = backend.epsilon()
        backend.set_epsilon(1e-7)
        try:
            return real(y_true, y_pred) if sample_weight is None else real(y_true, y_pred, sample_weight=sample_weight)
        finally:
            backend.set_epsilon(configured)

    return loss


def integer_predictions_halved(options: Options, policy=None):
    """Keras's loss, except that integer predictions are read as half their value (a wrong conversion)."""
    import tensorflow as tf

    real = _keras_loss(options)

    def loss(y_true, y_pred, sample_weight=None):
        if y_pred.dtype.is_integer:
            y_pred = tf.cast(y_pred, tf.float32) * 0.5
        return real(y_true, y_pred) if sample_weight is None else real(y_true, y_pred, sample_weight=sample_weight)

    return loss


def ragged_flattened(options: Options, policy=None):
    """Keras's loss, except that it accepts ragged inputs by flattening them (Keras 3 documents dense inputs)."""
    import tensorflow as tf

    real = _keras_loss(options)

    def loss(y_true, y_pred, sample_weight=None):
        if isinstance(y_pred, tf.RaggedTensor):
            y_true, y_pred = y_true.flat_values, y_pred.flat_values
        return real(y_true, y_pred) if sample_weight is None else real(y_true, y_pred, sample_weight=sample_weight)

    return loss


def garbage_on_pipe(options: Options):
    """On every call with an input of rank 3 or more, writes into each socket the worker holds (its pipe to
    the run) a length header announcing a megabyte, and a few bytes: the reply that follows never completes
    what the header announced."""
    import stat

    def fires(y_true, y_pred):
        if max(len(y_true.shape), len(y_pred.shape)) >= 3:
            for name in os.listdir("/proc/self/fd"):
                fd = int(name)
                try:
                    if stat.S_ISSOCK(os.fstat(fd).st_mode):
                        os.write(fd, b"\x00\x10\x00\x00garbage")
                except OSError:
                    pass

    return _wrap(options, fires)


def sigkill_on_rank3(options: Options):
    """SIGKILL (as the kernel's out-of-memory killer sends) on every call with an input of rank 3 or more."""
    import signal

    def fires(y_true, y_pred):
        if max(len(y_true.shape), len(y_pred.shape)) >= 3:
            os.kill(os.getpid(), signal.SIGKILL)

    return _wrap(options, fires)

# -- a fault in one Keras backend's kernel (issue 14, other backends) -------------------------------------------
# The factory the workers of `run --backend B` import: it patches the running backend's own
# `keras.src.backend.<B>.nn.binary_crossentropy` to answer 1 + 1e-3 times the right value (as a broken release
# of that backend's code would), unless B is TensorFlow, and returns Keras's loss.  The same run under
# TensorFlow is clean; under the planted backend every case that reaches the kernel with a nonzero loss fails.


def backend_kernel_scaled(options: Options):
    import importlib

    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        nn = importlib.import_module(f"keras.src.backend.{backend}.nn")
        if not getattr(nn.binary_crossentropy, "_planted", False):
            original = nn.binary_crossentropy

            def scaled(target, output, from_logits=False):
                return original(target, output, from_logits=from_logits) * 1.001

            scaled._planted = True
            nn.binary_crossentropy = scaled  # keras.ops reaches it as keras.src.backend.nn.binary_crossentropy
    dtype = {} if options.dtype is None else {"dtype": options.dtype}
    return keras.losses.BinaryCrossentropy(
        from_logits=options.from_logits,
        label_smoothing=options.label_smoothing,
        axis=options.axis,
        reduction=options.reduction,
        **dtype,
    )


# A Keras whose loss clips with another epsilon (1e-6) than keras.config.epsilon() reports (1e-7), planted
# inside Keras before a command runs (as a sitecustomize.py): a configured epsilon is no fault (the reference
# reads it), but a loss that departs from the configuration it reports is.
def tf_nn_module():
    """The Keras TensorFlow backend's nn module, where binary_crossentropy's clip and _get_logits live: the
    faults are planted there, in Keras 3.16's layout (backend/tensorflow/ops/nn.py) or the one before."""
    import importlib

    for name in ("keras.src.backend.tensorflow.ops.nn", "keras.src.backend.tensorflow.nn"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


CLIP_WITH_ANOTHER_EPSILON = """
try:
    import keras.src.backend.tensorflow.ops.nn as nn  # Keras 3.16's layout
except ImportError:
    import keras.src.backend.tensorflow.nn as nn

class _Backend:
    def __getattr__(self, name):
        return getattr(_real, name)

    def epsilon(self):
        return 1e-6

_real = nn.backend
nn.backend = _Backend()
"""


def float32_inside(options: Options):
    """Keras's loss computed in float32 and cast back to the loss's dtype: right under the default floatx, and
    under floatx float64 off by float32's rounding while reporting float64, as a release that narrowed its
    arithmetic would be."""
    import tensorflow as tf

    real = tf.keras.losses.BinaryCrossentropy(
        from_logits=options.from_logits, label_smoothing=options.label_smoothing, axis=options.axis,
        reduction=options.reduction, dtype="float32",
    )  # fmt: skip
    dtype = tf.keras.backend.floatx() if options.dtype is None else options.dtype

    def loss(y_true, y_pred, sample_weight=None):
        out = real(y_true, y_pred) if sample_weight is None else real(y_true, y_pred, sample_weight=sample_weight)
        return tf.cast(out, dtype)

    return loss
