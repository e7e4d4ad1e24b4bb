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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import numpy as np

from harness.case import Case, Expected, Outcome
from harness.dtypes import FLOAT_DTYPES, ulp_distance
from harness.errors import UsageError
from harness.jsonio import decode_number, encode_number

__all__ = ["KINDS", "Comparison", "compare", "compare_many"]

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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Comparison:
        """Inverse of ``as_dict``, every field included (``also`` too: a record that failed as both nan_inf and
        tolerance must not come back as nan_inf only, or a registry entry for nan_inf would excuse it)."""
        if not isinstance(d, Mapping) or "kind" not in d or "message" not in d:
            raise UsageError(f"comparison={d!r:.80} is not an object with a kind and a message")
        kind, also = d["kind"], d.get("also", [])
        if not isinstance(kind, (str, type(None))) or not isinstance(also, list) or not all(isinstance(k, str) for k in also):
            raise UsageError(f"comparison kind={kind!r}, also={also!r}: not a kind name and a list of them")
        max_ulp = d.get("max_ulp")
        return cls(
            kind,
            str(d["message"]),
            int(d.get("mismatched", 0)),
            int(d.get("total", 0)),
            None if d.get("max_abs") is None else decode_number(d["max_abs"], "max_abs"),
            None if d.get("max_rel") is None else decode_number(d["max_rel"], "max_rel"),
            None if max_ulp is None else int(max_ulp),
            tuple(also),
        )


def _fmt(x: SupportsFloat) -> str:
    return f"{float(x):.9g}"


def _index(flat: int, shape: tuple[int, ...]) -> str:
    return str(tuple(int(i) for i in np.unravel_index(flat, shape))) if shape else "()"


def compare(case: Case, expected: Expected, outcome: Outcome, *, target: str = "TensorFlow") -> Comparison:
    """Compare ``outcome`` (target) with ``expected`` (reference) for ``case``; ``target`` names what computed
    the outcome in the messages (the pytest plugin's is the user's loss)."""
    header = f"case: {case.id}"
    short = "TF" if target == "TensorFlow" else target
    if expected.outside is not None:
        # no verdict: the documentation says nothing of this input, so what happened is recorded, not judged
        got = f"raised {outcome.error}" if outcome.error is not None else f"returned {outcome.value!r} ({outcome.dtype})"
        return Comparison(None, f"{header}\noutside the documented domain ({expected.outside}); {target} {got}")
    if expected.raises is not None or outcome.error is not None:
        if expected.raises is not None and outcome.error is not None:
            return Comparison(None, f"{header}\nraised as expected: {outcome.error}")
        if expected.raises is not None:
            return Comparison(
                "exception",
                f"{header}\nexpected an error ({expected.raises}); {target} returned {outcome.value!r}",
            )
        return Comparison("exception", f"{header}\nexpected a value; {target} raised {outcome.error}")

    assert expected.value is not None and expected.bound is not None and outcome.value is not None
    e = np.asarray(expected.value, dtype=np.longdouble)
    a = np.asarray(outcome.value, dtype=np.float64)
    if a.shape != e.shape:
        return Comparison("shape", f"{header}\nshape mismatch: actual ({short}) {a.shape}, expected {e.shape}")
    if outcome.dtype != expected.dtype:
        return Comparison("dtype", f"{header}\ndtype mismatch: actual ({short}) {outcome.dtype}, expected {expected.dtype}")

    n = int(e.size)
    finite, diff, rel, ulps = _differences(a, e, expected.dtype)
    stats = _stats(n, diff.max(), rel.max(), ulps.max()) if n else _stats(0, 0.0, 0.0, 0)
    bad = _misplaced(a, e)
    bound = np.asarray(expected.bound, dtype=np.longdouble)
    if bad.any():
        # The finite elements are still checked: a registered NaN at one position must not hide a wrong
        # value at another, so the record carries the tolerance kind too (see ``also``).
        over = finite & np.isfinite(bound) & (diff > bound)
        message = _mismatch(header, short, "NaN/inf location mismatch", a, e, diff, expected, ulps, bad)
        also: tuple[str, ...] = ()
        if over.any():
            also = ("tolerance",)
            message += "\n" + _mismatch(header, short, f"and not equal to tolerance ({expected.rule})", a, e, diff, expected, ulps, over)
        return Comparison("nan_inf", message, int(bad.sum()), also=also, **stats)

    unbounded = finite & ~np.isfinite(bound)
    if unbounded.any():
        return Comparison(
            "unbounded",
            _mismatch(header, short, "no finite error bound (sum too long for the format)", a, e, diff, expected, ulps, unbounded),
            int(unbounded.sum()),
            **stats,
        )
    over = finite & (diff > bound)
    if over.any():
        title = f"Not equal to tolerance ({expected.rule})"
        return Comparison("tolerance", _mismatch(header, short, title, a, e, diff, expected, ulps, over), int(over.sum()), **stats)
    return _agreed(case, stats)


def compare_many(cases: Sequence[Case], expecteds: Sequence[Expected], outcomes: Sequence[Outcome]) -> list[Comparison]:
    """``compare`` of each row, equal to it, but agreeing rows of one shape and dtype are judged in one vectorised
    pass (thousands of small records cost a call per group); every other row goes through ``compare`` itself."""
    rows = list(zip(cases, expecteds, outcomes, strict=True))
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, (_, exp, out) in enumerate(rows):
        value, bound, out_value = exp.value, exp.bound, out.value
        if exp.raises is None and out.error is None and value is not None and bound is not None and out_value is not None:
            key = (np.shape(value), np.shape(bound), np.shape(out_value), exp.dtype, out.dtype)
            groups.setdefault(key, []).append(i)
    agreed: dict[int, Comparison] = {}
    for (shape, bound_shape, out_shape, dtype, out_dtype), members in groups.items():
        if shape != bound_shape or shape != out_shape or dtype != out_dtype:
            continue
        try:
            verdicts = _agreeing([rows[i][1] for i in members], [rows[i][2] for i in members], shape, dtype)
        except Exception:  # noqa: BLE001, S112 - the group is compared row by row instead
            continue
        agreed.update((i, _agreed(rows[i][0], stats)) for i, stats in zip(members, verdicts, strict=True) if stats is not None)
    return [agreed[i] if i in agreed else compare(*row) for i, row in enumerate(rows)]


def _agreeing(
    expecteds: Sequence[Expected], outcomes: Sequence[Outcome], shape: tuple[int, ...], dtype: str | None
) -> list[dict[str, Any] | None]:
    """For rows whose values and bounds all have ``shape`` and whose dtypes are ``dtype``: each row's
    statistics where it agrees within its bound (as ``compare`` finds them), None where it fails."""
    e = np.stack([np.asarray(x.value, dtype=np.longdouble) for x in expecteds])
    a = np.stack([np.asarray(o.value, dtype=np.float64) for o in outcomes])
    bound = np.stack([np.asarray(x.bound, dtype=np.longdouble) for x in expecteds])
    finite, diff, rel, ulps = _differences(a, e, dtype)
    fails = _misplaced(a, e) | (finite & ~np.isfinite(bound)) | (finite & (diff > bound))
    failed = np.asarray(fails.reshape(len(expecteds), -1).any(axis=1))  # a flag per row; asarray: typed scalar-or-array
    n = math.prod(shape)
    if not n:
        return [None if f else _stats(0, 0.0, 0.0, 0) for f in failed]
    axes = tuple(range(1, a.ndim))
    maxima = zip(diff.max(axis=axes), rel.max(axis=axes), ulps.max(axis=axes), strict=True)
    return [None if f else _stats(n, *m) for f, m in zip(failed, maxima, strict=True)]


def _differences(a: np.ndarray, e: np.ndarray, dtype: str | None) -> tuple[np.ndarray, ...]:
    """Elementwise, for arrays of any shape: where both sides are finite, and there |a - e| and the relative
    difference in long double and the distance in ULPs of ``dtype`` (float64 if not a float dtype), else 0."""
    finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(finite, np.abs(a.astype(np.longdouble) - e), 0)
        rel = np.where(finite & (e != 0), diff / np.where(e == 0, 1, np.abs(e)), np.where(diff > 0, np.inf, 0))
    ulp_dtype = dtype if dtype in FLOAT_DTYPES else "float64"
    ulps = np.where(finite, ulp_distance(a, e.astype(np.float64), ulp_dtype), 0)
    return finite, diff, rel, ulps


def _misplaced(a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Elementwise: NaN, +inf or -inf on one side only."""
    nan_bad = np.isnan(a) != np.isnan(e)
    inf_bad = (np.isposinf(a) != np.isposinf(e)) | (np.isneginf(a) != np.isneginf(e))
    return nan_bad | inf_bad


def _stats(n: int, max_abs: Any, max_rel: Any, max_ulp: Any) -> dict[str, Any]:
    return {"total": n, "max_abs": float(max_abs), "max_rel": float(max_rel), "max_ulp": int(max_ulp)}


def _agreed(case: Case, stats: dict[str, Any]) -> Comparison:
    return Comparison(None, f"case: {case.id}\nagrees within the bound", 0, **stats)


def _mismatch(
    header: str,
    short: str,
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
    lines.append(f" index: actual ({short}), expected (reference), |diff|, bound, ULP")
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
