"""Faults planted in Keras's training loop and distribution code, as a broken release would ship them.

Not through the loss factory: each patches a Keras 3.15 internal in this process, and the loss itself is
stock.  ``unweighted_tracker``: the loss tracker averages the per-batch losses without weighing them by
the batch size (a partial last batch then counts as a full one); ``unscaled_under_strategy``: the step's
loss is not unscaled before it reaches the tracker, which changes nothing without a strategy and halves
the reported loss under two replicas.  Each returns a function that undoes it.
"""

from __future__ import annotations

from collections.abc import Callable


def unweighted_tracker() -> Callable[[], None]:
    from keras.src.metrics import reduction_metrics
    from keras.src.trainers import trainer

    class UnweightedMean(reduction_metrics.Mean):
        def update_state(self, values, sample_weight=None):
            return super().update_state(values)

    owner = getattr(trainer, "Trainer", None) or trainer.BaseTrainer  # Keras 3.16 renamed the class
    original = owner.compile

    def compile(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._loss_tracker = UnweightedMean(name="loss")

    owner.compile = compile

    def undo() -> None:
        owner.compile = original

    return undo


def unscaled_under_strategy() -> Callable[[], None]:
    from keras.src.losses import loss

    original = loss.unscale_loss_for_distribution
    loss.unscale_loss_for_distribution = lambda value: value

    def undo() -> None:
        loss.unscale_loss_for_distribution = original

    return undo
