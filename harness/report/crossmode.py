"""Cross-mode divergences: the same call answered differently in eager, tf.function and XLA.

Each mode is compared with the reference on its own; this adds the comparison of the modes with each
other, because a user who trains with ``fit`` (a traced function) and debugs eagerly needs to know when
the two disagree.  Two modes disagree when one raised and the other did not, when their shapes, dtypes or
NaN/inf locations differ, or when their values differ by more than the error bound that the reference
allows an implementation: farther apart than that, at most one of them can be right.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.jsonio import encode_array

__all__ = ["CrossMode", "cross_mode_divergences", "mode_free_id"]

_MODE = re.compile(r"/(eager|function|xla)/")


def mode_free_id(case_id: str) -> str | None:
    """The id with its mode segment replaced by ``*``, or None for ids without one."""
    return _MODE.sub("/*/", case_id, count=1) if _MODE.search(case_id) else None


@dataclass(frozen=True)
class CrossMode:
    """One call whose modes disagree: what each mode returned, and how they differ."""

    call: str
    how: str
    outcomes: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"call": self.call, "how": self.how, "outcomes": self.outcomes}


def _summary(record: Any) -> Any:
    o = record.outcome
    if o is None:
        return None
    if o.error is not None:
        return {"error": o.error}
    return {"value": encode_array(o.value), "dtype": o.dtype, "status": record.status}


def _differ(a: Any, b: Any, bound: np.ndarray | None) -> str | None:
    oa, ob = a.outcome, b.outcome
    if oa is None or ob is None:
        return None
    if (oa.error is None) != (ob.error is None):
        return "one raised"
    if oa.error is not None:
        return None
    va, vb = np.asarray(oa.value, dtype=np.float64), np.asarray(ob.value, dtype=np.float64)
    if va.shape != vb.shape:
        return "shape"
    if oa.dtype != ob.dtype:
        return "dtype"
    if not (np.array_equal(np.isnan(va), np.isnan(vb)) and np.array_equal(np.isposinf(va), np.isposinf(vb))
            and np.array_equal(np.isneginf(va), np.isneginf(vb))):  # fmt: skip
        return "nan_inf"
    if bound is None or bound.shape != va.shape:
        return None
    finite = np.isfinite(va) & np.isfinite(vb)
    if np.any(np.abs(va[finite] - vb[finite]) > bound[finite]):
        return "value"
    return None


def cross_mode_divergences(records: Iterable[Any]) -> list[CrossMode]:
    """Calls whose modes disagree, in id order (records are runner.Record objects)."""
    groups: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in records:
        key = mode_free_id(r.case.id)
        if key is not None:
            groups[key][r.case.mode] = r
    found = []
    for key in sorted(groups):
        by_mode = groups[key]
        if len(by_mode) < 2:
            continue
        modes = sorted(by_mode)
        base = by_mode[modes[0]]
        bound = None
        if base.expected is not None and base.expected.bound is not None:
            bound = np.asarray(base.expected.bound, dtype=np.float64)
        hows = {how for m in modes[1:] if (how := _differ(base, by_mode[m], bound))}
        if hows:
            found.append(CrossMode(key, ", ".join(sorted(hows)), {m: _summary(by_mode[m]) for m in modes}))
    return found
