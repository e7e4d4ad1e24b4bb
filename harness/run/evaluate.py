"""One job's work, wherever it runs (a worker process or this one): for each case, the oracle's
expectation, the target's outcome and their comparison, each timed, stacking what can be stacked the
same way on both sides (``harness.stacking``).

May import: the ground floor, the oracle and the judge.  It is handed its target; it imports no TensorFlow.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.case import Case, Deferred, Expected, Outcome, realize, template_of
from harness.judge.compare import Comparison, compare, compare_many
from harness.judge.matching import record_facets
from harness.oracle import expected
from harness.run.quarantine import signature

__all__ = ["CaseResult", "evaluate", "expectations"]


@dataclass(frozen=True, eq=False)
class CaseResult:
    """One case evaluated: both sides, the comparison, and where the time went (seconds)."""

    index: int
    expected: Expected | None
    outcome: Outcome | None
    comparison: Comparison
    seconds: dict[str, float]
    evidence: dict[str, Any] | None = None  # a crash or timeout: its class (quarantine.FaultClass.evidence)
    # what the run's process reads off the case, made where the case was evaluated (a worker has the cycles
    # to spare; the run's process would spend them on every record): the registry's facets for the verdict
    # (``judge.matching.record_facets`` under ``expected``), and the quarantine's signature; None when they
    # could not be made there (the run's process then makes them, and says what went wrong)
    facets: dict[str, Any] | None = None
    signature: dict[str, str] | None = None
    case: Case | None = None  # the case a ``Deferred`` stood for, as it was made here


def evaluate(
    jobs: Sequence[tuple[int, Case]], target: Any, profile: str, *, oracle: Callable[..., Expected] = expected
) -> list[CaseResult]:
    """Reference, target and comparison for a job of (index, case) pairs, in this process.

    The comparisons are made in one ``compare_many`` call; if it raises, one ``compare`` per record instead,
    so that the record at fault gets the error.
    """
    deferred = {i for i, c in jobs if isinstance(c, Deferred)}  # (sent back made, with their results)
    unmade: list[CaseResult] = []
    if deferred:
        jobs, unmade = _realized(jobs)
    cases = [c for _, c in jobs]
    if oracle is expected:
        # judged against the epsilon and floatx the target's Keras has (keras.json under KERAS_HOME, or a call)
        settings: dict[str, Any] = getattr(target, "keras_settings", dict)()
        oracle = functools.partial(expected, **settings)
    # what the installed Keras cannot express (an argument, reduction or policy it lacks) is not run
    lacking = getattr(target, "unsupported", lambda case: None)
    reasons = [lacking(c) for c in cases]
    t0 = time.perf_counter()
    exps = expectations(cases, profile, oracle=oracle)
    t1 = time.perf_counter()
    runnable = [c for c, why in zip(cases, reasons, strict=True) if why is None]
    ran = iter(target.run_many(runnable) if runnable else [])
    outcomes = [next(ran) if why is None else Outcome(error=f"not expressible: {why}") for why in reasons]
    t2 = time.perf_counter()
    rows = list(zip(jobs, exps, outcomes, strict=True))
    judged = [(k, exp) for k, exp in enumerate(exps) if not isinstance(exp, BaseException) and reasons[k] is None]
    try:
        verdicts = compare_many([cases[k] for k, _ in judged], [exp for _, exp in judged], [outcomes[k] for k, _ in judged])
        many: dict[int, Comparison] | None = dict(zip((k for k, _ in judged), verdicts, strict=True))
    except Exception:  # noqa: BLE001 - the per-record loop below attributes the error to its record
        many = None
    t3 = time.perf_counter()
    results = []
    n = max(len(cases), 1)
    for k, ((index, case), exp, out) in enumerate(rows):
        c0 = time.perf_counter()
        exp_value: Expected | None
        if reasons[k] is not None:
            comparison = Comparison("unsupported", f"case: {case.id}\nnot expressible on the installed Keras: {reasons[k]}")
            exp_value = None if isinstance(exp, BaseException) else exp
        elif isinstance(exp, BaseException):
            msg = f"internal error in the reference: {type(exp).__name__}: {exp}"
            comparison = Comparison("error", f"case: {case.id}\n{msg}")
            exp_value = None
        elif many is not None:
            comparison, exp_value = many[k], exp
        else:
            try:
                comparison = compare(case, exp, out)
            except Exception as exc:  # noqa: BLE001
                comparison = Comparison("error", f"case: {case.id}\ninternal error in the comparator: {exc!r}")
            exp_value = exp
        compare_seconds = (t3 - t2) / n if many is not None else time.perf_counter() - c0
        seconds = {"reference": (t1 - t0) / n, "target": (t2 - t1) / n, "compare": compare_seconds}
        results.append(CaseResult(
            index, exp_value, out, comparison, seconds, None, *_read_off(case, exp_value, profile), case if index in deferred else None,
        ))  # fmt: skip
    return unmade + results


def _realized(jobs: Sequence[tuple[int, Any]]) -> tuple[list[tuple[int, Case]], list[CaseResult]]:
    """The job with its deferred cases made, and an error result for each that could not be (a generator's
    fault is the harness's, not the loss's: the case's record says so, and the job's other cases run)."""
    ok, failed = [], []
    for i, c in jobs:
        try:
            ok.append((i, realize(c)))
        except Exception as exc:  # noqa: BLE001 - that case's error record
            error = Comparison("error", f"case: {c.id}\ninternal error making the case: {type(exc).__name__}: {exc}")
            # its code path as the quarantine reads it is its template's (the values were never made)
            failed.append(CaseResult(i, None, None, error, {}, None, None, _read_off(template_of(c), None, "")[1]))
    return ok, failed


def _read_off(case: Case, exp: Expected | None, profile: str) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """The record's facets and the case's quarantine signature, or None for what raised (the run's process
    makes it again, where the error becomes the record's)."""
    try:
        facets = None if exp is None else record_facets(case, exp, profile)
    except Exception:  # noqa: BLE001 - made again by the run's process, which records the error
        facets = None
    try:
        sig = signature(case)
    except Exception:  # noqa: BLE001 - as above
        sig = None
    return facets, sig


def expectations(
    cases: Sequence[Case], profile: str, *, oracle: Callable[..., Expected] = expected
) -> list[Expected | BaseException]:
    """The oracle's expectation for each case (or the exception it raised), stacking as the target does.

    Cases that share a ``stacking.batch_key`` differ only in their values and are unreduced, elementwise
    losses averaged over a negative axis: the expectation of the cases stacked along a new leading axis
    is, row by row, each case's own expectation, value and bound alike (no rule of the reference looks
    across rows; tests/instrument/test_reference.py checks the equality on every stackable group of the default suite).
    One vectorised call then replaces a row's worth of small ones.  A stacked call that raises, or
    returns another shape, falls back to one call per case.
    """
    from harness.stacking import map_stacked

    return map_stacked(
        cases, lambda case: _expect(oracle, case, profile), lambda group: _stacked_expectation(group, profile, oracle)
    )


def _expect(oracle: Callable[..., Expected], case: Case, profile: str) -> Expected | BaseException:
    try:
        return oracle(case, profile=profile)
    except Exception as exc:  # noqa: BLE001 - becomes this case's error record
        return exc


def _stacked_expectation(cases: Sequence[Case], profile: str, oracle: Callable[..., Expected]) -> list[Expected] | None:
    first = cases[0]
    try:
        stacked = replace(
            first,
            id=f"{first.id} (stacked)",
            y_true=np.stack([c.y_true for c in cases]),
            y_pred=np.stack([c.y_pred for c in cases]),
        )
        exp = oracle(stacked, profile=profile)
    except Exception:  # noqa: BLE001 - each case then gets its own call, and its own error
        return None
    if exp.value is None or exp.bound is None or exp.value.shape[:1] != (len(cases),) or exp.bound.shape != exp.value.shape:
        return None
    return [
        Expected(value=exp.value[j], bound=exp.bound[j], dtype=exp.dtype, raises=None, rule=exp.rule)
        for j in range(len(cases))
    ]
