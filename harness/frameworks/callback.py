"""The Keras side of ``harness.keras.BCECheck``: a callback that calls ``check`` every Nth batch of ``fit``
and ``evaluate``.  It lives here because it subclasses ``keras.callbacks.Callback`` and only the target may
import Keras; the check itself (the oracle's diagnosis) is the commands floor's, in ``harness.keras``."""

from __future__ import annotations

from typing import Any

from harness.errors import UsageError
from harness.frameworks import import_tensorflow

import_tensorflow()
import keras  # noqa: E402 - after TensorFlow's quiet import

__all__ = ["EveryNthBatch"]


class EveryNthBatch(keras.callbacks.Callback):
    """Calls ``self.check(where)`` after every ``every``-th batch of fit and of evaluate."""

    def __init__(self, every: int) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise UsageError(f"every={every!r} is not a positive integer")
        super().__init__()
        self.every = every

    def check(self, where: str) -> Any:  # pragma: no cover - the subclass's
        raise NotImplementedError

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if (batch + 1) % self.every == 0:
            self.check(f"fit batch {batch + 1}")

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if (batch + 1) % self.every == 0:
            self.check(f"evaluate batch {batch + 1}")
