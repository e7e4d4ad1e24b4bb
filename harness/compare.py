"""The comparator: TensorFlow's outcome against the reference's expectation, in phases.

Phases, as numpy.testing's ``assert_array_compare`` orders them: raised or not, shape, dtype, the locations
of NaN and of each signed infinity, and last the finite values against the error bound.  The first phase
that fails names the failure ``kind``:

``exception``  one side raised and the other did not
``shape``      result shapes differ
``dtype``      result dtype is not the loss's compute dtype
``nan_inf``    NaN or infinity in different places
``tolerance``  a finite value is farther from the reference than its error bound
``unbounded``  the bound itself is not finite for a finite expected value (a sum too long for the
               format); such a record cannot be judged and is never reported as a pass
``crash``      TensorFlow killed its worker process on this case (workers.py)
``timeout``    TensorFlow did not return within the time limit on this case (workers.py)

Differences are measured on every record, passing or not: largest absolute, relative and ULP difference
over the elements that are finite on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.case import Case, Expected, Outcome
from harness.dtypes import FLOAT_DTYPES, ulp_distance
from harness.jsonio import encode_number

__all__ = ["KINDS", "Comparison", "compare"]

KINDS = ("exception", "shape", "dtype", "nan_inf", "tolerance", "unbounded", "crash", "timeout")
_ROWS = 5


@dataclass(frozen=True)
class Comparison:
    """Verdict of one comparison.  ``kind`` is None when the outcome agrees with the expectation."""

    kind: str | None
    message: str
    mismatched: int = 0
    total: int = 0
    max_abs: float | None = None
    max_rel: float | None = None
    max_ulp: int | None = None
    also: tuple[str, ...] = ()  # further kinds found after the first (tolerance beside nan_inf)

    @property
    def agrees(self) -> bool:
        return self.kind is None

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every failure kind found, the first one first."""
        return () if self.kind is None else (self.kind, *self.also)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "also": list(self.also),
            "message": self.message,
            "mismatched": self.mismatched,
            "total": self.total,
            "max_abs": encode_number(self.max_abs),
            "max_rel": encode_number(self.max_rel),
            "max_ulp": self.max_ulp,
        }


def _fmt(x: float) -> str:
    return f"{float(x):.9g}"


def _index(flat: int, shape: tuple[int, ...]) -> str:
    return str(tuple(int(i) for i in np.unravel_index(flat, shape))) if shape else "()"


def compare(case: Case, expected: Expected, outcome: Outcome) -> Comparison:
    """Compare ``outcome`` (target) with ``expected`` (reference) for ``case``."""
    header = f"case: {case.id}"
    if expected.raises is not None or outcome.error is not None:
        if expected.raises is not None and outcome.error is not None:
            return Comparison(None, f"{header}\nraised as expected: {outcome.error}")
        if expected.raises is not None:
            return Comparison(
                "exception",
                f"{header}\nexpected an error ({expected.raises}); TensorFlow returned {outcome.value!r}",
            )
        return Comparison("exception", f"{header}\nexpected a value; TensorFlow raised {outcome.error}")

    assert expected.value is not None and expected.bound is not None and outcome.value is not None
    e = np.asarray(expected.value, dtype=np.longdouble)
    a = np.asarray(outcome.value, dtype=np.float64)
    if a.shape != e.shape:
        return Comparison("shape", f"{header}\nshape mismatch: actual (TF) {a.shape}, expected {e.shape}")
    if outcome.dtype != expected.dtype:
        return Comparison("dtype", f"{header}\ndtype mismatch: actual (TF) {outcome.dtype}, expected {expected.dtype}")

    n = int(e.size)
    a_ld = a.astype(np.longdouble)
    finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(finite, np.abs(a_ld - e), 0)
        rel = np.where(finite & (e != 0), diff / np.where(e == 0, 1, np.abs(e)), np.where(diff > 0, np.inf, 0))
    ulp_dtype = expected.dtype if expected.dtype in FLOAT_DTYPES else "float64"
    ulps = np.where(finite, ulp_distance(a, e.astype(np.float64), ulp_dtype), 0)
    stats = {
        "total": n,
        "max_abs": float(diff.max()) if n else 0.0,
        "max_rel": float(rel.max()) if n else 0.0,
        "max_ulp": int(ulps.max()) if n else 0,
    }

    nan_bad = np.isnan(a) != np.isnan(e)
    inf_bad = (np.isposinf(a) != np.isposinf(e)) | (np.isneginf(a) != np.isneginf(e))
    bad = nan_bad | inf_bad
    bound = np.asarray(expected.bound, dtype=np.longdouble)
    if bad.any():
        # The finite elements are still checked: a registered NaN at one position must not hide a wrong
        # value at another, so the record carries the tolerance kind too (see ``also``).
        over = finite & np.isfinite(bound) & (diff > bound)
        message = _mismatch(header, "NaN/inf location mismatch", a, e, diff, expected, ulps, bad)
        also: tuple[str, ...] = ()
        if over.any():
            also = ("tolerance",)
            message += "\n" + _mismatch(header, f"and not equal to tolerance ({expected.rule})", a, e, diff, expected, ulps, over)
        return Comparison("nan_inf", message, int(bad.sum()), also=also, **stats)

    unbounded = finite & ~np.isfinite(bound)
    if unbounded.any():
        return Comparison(
            "unbounded",
            _mismatch(header, "no finite error bound (sum too long for the format)", a, e, diff, expected, ulps, unbounded),
            int(unbounded.sum()),
            **stats,
        )
    over = finite & (diff > bound)
    if over.any():
        title = f"Not equal to tolerance ({expected.rule})"
        return Comparison("tolerance", _mismatch(header, title, a, e, diff, expected, ulps, over), int(over.sum()), **stats)
    return Comparison(None, f"{header}\nagrees within the bound", 0, **stats)


def _mismatch(
    header: str,
    title: str,
    a: np.ndarray,
    e: np.ndarray,
    diff: np.ndarray,
    expected: Expected,
    ulps: np.ndarray,
    bad: np.ndarray,
) -> str:
    """numpy-style message: the count, up to five rows, and the largest differences."""
    n = a.size
    k = int(bad.sum())
    lines = [title, header, f"Mismatched elements: {k} / {n} ({100.0 * k / max(n, 1):.3g}%)"]
    lines.append(" index: actual (TF), expected (reference), |diff|, bound, ULP")
    bound = np.broadcast_to(np.asarray(expected.bound, dtype=np.longdouble), a.shape)
    for flat in np.flatnonzero(bad.ravel())[:_ROWS]:
        i = np.unravel_index(flat, a.shape) if a.shape else ()
        lines.append(
            f" {_index(flat, a.shape)}: {_fmt(a[i])}, {_fmt(e[i])}, {_fmt(diff[i])}, {_fmt(bound[i])}, {int(ulps[i]) if ulps.shape else int(ulps)}"
        )
    if k > _ROWS:
        lines.append(f" ... {k - _ROWS} more")
    finite = np.isfinite(a) & np.isfinite(e)
    if finite.any():
        lines.append(f"Max absolute difference among finite values: {_fmt(diff[finite].max())}")
        lines.append(f"Max ULP difference among finite values: {int(np.max(ulps[finite]))}")
    return "\n".join(lines)
