"""The named steps of a loss's documented computation, as a profile records them when asked.

``Keras3.expected(case, steps=[])`` appends one ``Step`` per step it takes, in the order it takes them: the
values after the step and the rule it follows with its citation.  Nothing is recorded (and no rule text is
formatted) when no one asks, so the oracle's hot path does not pay for the narration.  ``explain`` narrates
these records; it never sequences the steps itself.

NumPy and the standard library only, like the rest of the oracle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.jsonio import encode_array

__all__ = ["STEPS", "TITLES", "Step"]

# The steps, in the order Keras takes them (a call that raises stops after the step that raised).
STEPS: tuple[tuple[str, str], ...] = (
    ("inputs", "input conversion"),
    ("ranks", "rank reconciliation"),
    ("smoothing", "label smoothing"),
    ("prediction", "logits or probabilities"),
    ("clip", "clip"),
    ("terms", "elementwise terms"),
    ("axis", "mean over axis"),
    ("weights", "weights and mask"),
    ("reduction", "reduction"),
)
TITLES = dict(STEPS)


@dataclass(frozen=True, eq=False)
class Step:
    """One step Keras takes: what the documentation says it does, and the values it produces.

    ``main`` names the value a departure is judged on (the step's output)."""

    key: str
    rule: str
    values: Mapping[str, Any]
    main: str | None = None

    @property
    def title(self) -> str:
        return TITLES[self.key]

    def output(self) -> np.ndarray | None:
        return None if self.main is None else np.asarray(self.values[self.main])

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.key, "title": self.title, "rule": self.rule, "main": self.main,
                "values": {k: json_value(v) for k, v in self.values.items()}}  # fmt: skip


def json_value(v: Any) -> Any:
    """A step's value as JSON: an array losslessly (jsonio), anything else as it is."""
    if isinstance(v, (np.ndarray, np.generic)):
        return encode_array(np.asarray(v, dtype=np.float64))
    return v
