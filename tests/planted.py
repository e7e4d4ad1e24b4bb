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
