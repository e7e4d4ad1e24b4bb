"""Option families: the rows a run's summary, the drift report, the HTML heatmap and JUnit group records by.

A family is a record's ``family`` tag and whether it fed probabilities or logits.  Ground floor: it reads
a record as its ``results.json`` dict, so every stage that groups records reads this one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["group_of"]


def group_of(record: Mapping[str, Any]) -> str:
    """The option family of a record: its family tag and probs/logits (the run summary's rows)."""
    kind = "logits" if record.get("options", {}).get("from_logits") else "probs"
    tags = record.get("tags", {})
    family = tags.get("family", "?")
    if family == "config":  # the configuration family: one row per setting (Keras's policy, epsilon, floatx)
        return f"config/{tags.get('setting', '?')}/{kind}"
    return f"{family}/{kind}"
