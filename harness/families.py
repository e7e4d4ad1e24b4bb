"""Option families: the rows the drift report, the HTML heatmap and JUnit group records by.

A family is a record's ``family`` tag and whether it fed probabilities or logits.  Ground floor: it reads
a record as its ``results.json`` dict, so the drift report, the HTML heatmap and JUnit read this one
definition.  The run summary's table (harness.report.summary._group) has a second rule on top: a record of
another Keras backend is grouped under it, ``paths`` records by entry point and mode, and the dtype beside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["group_of"]


def group_of(record: Mapping[str, Any]) -> str:
    """The option family of a record: its family tag and probs/logits (the rows of the drift report, the heatmap and JUnit)."""
    kind = "logits" if record.get("options", {}).get("from_logits") else "probs"
    tags = record.get("tags", {})
    family = tags.get("family", "?")
    if family == "config":  # the configuration family: one row per setting (Keras's policy, epsilon, floatx)
        return f"config/{tags.get('setting', '?')}/{kind}"
    return f"{family}/{kind}"
