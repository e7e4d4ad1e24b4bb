"""``harness.keras.BCECheck``: a Keras callback that checks the model's BCE against the oracle every Nth
batch of ``fit`` or ``evaluate``.

Callbacks do not see the batch's data, so the check runs on a (small) ``x, y`` the callback is given: the
loss on ``model(x)`` and on ``model.predict(x)`` against the documented BCE of the outputs, with the causes
``harness.modelcheck`` names (evaluate and the compiled metrics are left out: a nested evaluate would reset
the running loop's loss tracker).  Each report is kept in ``reports`` as ``(where, ModelReport)``; a route
that departs is printed once per batch checked, or raised as an AssertionError with ``strict=True``.

Importing this module imports Keras (through ``harness.frameworks.callback``, the only door).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.frameworks.callback import EveryNthBatch
from harness.modelcheck import ModelReport, check_model, render_text

__all__ = ["BCECheck"]


class BCECheck(EveryNthBatch):
    def __init__(self, x: Any, y: Any, *, every: int = 100, sample_weight: Any = None, strict: bool = False) -> None:
        super().__init__(every)
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        self.strict = strict
        self.reports: list[tuple[str, ModelReport]] = []

    def check(self, where: str) -> ModelReport:
        report = check_model(self.model, self.x, self.y, sample_weight=self.sample_weight, evaluate=False)
        self.reports.append((where, report))
        if not report.agrees:
            text = f"BCECheck at {where}:\n{render_text(report)}"
            if self.strict:
                raise AssertionError(text)
            print(text)
        return report
