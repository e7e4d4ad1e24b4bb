"""Replicas: the loss under ``tf.distribute.MirroredStrategy`` over two logical CPU devices.

The two devices exist only if ``configure_logical_cpus`` ran before TensorFlow initialised its devices
(``TFTarget`` calls it right after importing TensorFlow, in every worker and in ``--workers 0``); a process
where that came too late gets an error outcome for its replica cases, with that reason.

Routes (``harness.case.REPLICA_ROUTES``): ``run`` calls the loss object on each replica's slice inside
``strategy.run`` and sums the per-replica results with ``strategy.reduce("SUM")``;
``run:compute_average_loss`` does the same with the per-example losses averaged by
``tf.nn.compute_average_loss(..., global_batch_size=N)``, the custom-training-loop recipe of the
tf.distribute guide; ``cross_replica`` calls the loss on the whole batch in the strategy's scope but outside
``strategy.run``.  The training routes run under the strategy through ``harness.frameworks.training``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.case import Case

__all__ = ["REPLICAS", "ReplicaRunner", "configure_logical_cpus"]

REPLICAS = 2


def configure_logical_cpus(tf: Any, n: int = REPLICAS) -> bool:
    """Split the first CPU into ``n`` logical devices; False when TensorFlow has initialised them already.

    The logical devices change no other case: ops are still placed on the first one unless a strategy
    places them elsewhere.
    """
    cpus = tf.config.list_physical_devices("CPU")
    if not cpus:
        return False
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except (RuntimeError, ValueError):
        # RuntimeError: devices already initialised; ValueError: a different split was configured before
        return len(tf.config.list_logical_devices("CPU")) >= n
    return True


class ReplicaRunner:
    """Runs replica cases; ``loss_for(options)`` is the target's (cached) loss object."""

    def __init__(self, tf: Any, loss_for: Any) -> None:
        self.tf = tf
        self._loss_for = loss_for
        self._strategy: Any = None

    def strategy(self) -> Any:
        if self._strategy is None:
            cpus = self.tf.config.list_logical_devices("CPU")
            if len(cpus) < REPLICAS:
                raise RuntimeError(
                    f"MirroredStrategy needs {REPLICAS} logical CPU devices and this process has {len(cpus)}: "
                    "TensorFlow initialised its devices before the harness could split the CPU"
                )
            self._strategy = self.tf.distribute.MirroredStrategy([d.name for d in cpus[:REPLICAS]])
        return self._strategy

    def run(self, case: Case) -> tuple[np.ndarray, str]:
        tf = self.tf
        spec = case.training
        assert spec is not None
        strategy = self.strategy()
        loss = self._loss_for(case.options)
        y = tf.constant(np.asarray(case.y_true, dtype=np.float64), dtype=getattr(tf, case.true_dtype))
        p = tf.constant(np.asarray(case.y_pred, dtype=np.float64), dtype=getattr(tf, case.pred_dtype))
        w = None if case.sample_weight is None else tf.constant(np.asarray(case.sample_weight, np.float64), dtype=getattr(tf, case.weight_dtype))
        if spec.route == "cross_replica":
            with strategy.scope():
                result = loss(y, p) if w is None else loss(y, p, sample_weight=w)
        else:
            splits = spec.splits or _even(int(case.y_pred.shape[0]))
            offsets = np.concatenate([[0], np.cumsum(splits)]).astype(int)

            def sliced(t: Any) -> Any:
                if t is None:
                    return None
                return strategy.experimental_distribute_values_from_function(
                    lambda ctx: t[int(offsets[ctx.replica_id_in_sync_group]) : int(offsets[ctx.replica_id_in_sync_group + 1])]
                )

            global_batch = int(case.y_pred.shape[0])
            average = spec.route == "run:compute_average_loss"

            def step(yr: Any, pr: Any, wr: Any = None) -> Any:
                if average:  # the per-example losses, weighted and divided by the global batch
                    return tf.nn.compute_average_loss(loss(yr, pr), sample_weight=wr, global_batch_size=global_batch)
                return loss(yr, pr) if wr is None else loss(yr, pr, sample_weight=wr)

            args = (sliced(y), sliced(p)) + (() if w is None else (sliced(w),))
            per_replica = strategy.run(step, args=args)
            result = strategy.reduce("SUM", per_replica, axis=None)
        value = np.asarray(tf.cast(result, tf.float64).numpy(), dtype=np.float64)
        return value, result.dtype.name


def _even(n: int) -> tuple[int, ...]:
    """The split tf.distribute makes of a batch of n: the first replicas get one more when it is odd."""
    base, extra = divmod(n, REPLICAS)
    return tuple(base + (1 if r < extra else 0) for r in range(REPLICAS))
