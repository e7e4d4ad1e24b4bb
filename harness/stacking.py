"""The stacking policy: which cases may share one call, and what a traced function is reused for.

Both sides of a comparison group cases the same way: the target stacks compatible unreduced cases into one
TensorFlow call, and the oracle and the comparator vectorise over the same groups.  The policy lives here,
on the ground floor, so that the runner, the workers and the target read one definition and none of them
reaches into another.  NumPy-free and TensorFlow-free: it reads a case's facets only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from harness.case import Case, Outcome, template_of

__all__ = ["MAX_STACK", "batch_key", "map_stacked", "split_stacked", "trace_key"]

T = TypeVar("T")
MAX_STACK = 512  # cases per stacked call: a few MB of float64 at the suite's largest shapes


def map_stacked(
    cases: Sequence[Case],
    one: Callable[[Case], T],
    stacked: Callable[[Sequence[Case]], Sequence[T] | None],
    *,
    max_stack: int = MAX_STACK,
) -> list[T]:
    """``one(case)`` for each case, in order, except that cases sharing a ``batch_key`` go to ``stacked`` in
    groups of up to ``max_stack``, which returns one result per case, or None to have them done one by one.
    The grouping both sides of a comparison use: the target's calls and the reference's."""
    out: list[T | None] = [None] * len(cases)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, case in enumerate(cases):
        key = batch_key(case)
        if key is None:
            out[i] = one(case)
        else:
            groups.setdefault(key, []).append(i)
    for indices in groups.values():
        for start in range(0, len(indices), max_stack):
            chunk = indices[start : start + max_stack]
            rows = stacked([cases[i] for i in chunk]) if len(chunk) > 1 else None
            for j, i in enumerate(chunk):
                out[i] = rows[j] if rows is not None else one(cases[i])
    return [r for r in out if r is not None]


def trace_key(case: Case) -> tuple[Any, ...]:
    """What decides the Python function the target builds for a case, and so what a trace is reused for."""
    case = template_of(case)  # (a deferred case's template decides it as the case would)
    return (
        case.api, case.mode, case.options, case.producer, case.grad,
        None if case.mask is None else case.mask.tobytes() + str(case.mask.shape).encode(),
        case.sample_weight is not None and case.sample_weight.ndim == 0,
        case.training,
        case.config,
    )  # fmt: skip


def batch_key(case: Case) -> tuple[Any, ...] | None:
    """The signature under which unreduced cases can share one stacked call, or None.

    Stacking adds a leading axis, which leaves the semantics alone only when: nothing is reduced
    (reduction None or "none"), the axis counts from the end, labels and predictions have the same rank
    (Keras reconciles ranks that differ by a trailing 1 depending on the rank, which stacking changes), and
    there is no sample_weight (a scalar or a per-sample weight would broadcast differently).
    """
    case = template_of(case)  # (a deferred case's template: the same shapes and options)
    o = case.options
    if case.api != "BinaryCrossentropy" or case.mode != "eager" or case.producer or case.grad or case.mask is not None or case.config:
        return None
    if case.training is not None:  # a model or a strategy between the inputs and the loss
        return None
    if o.reduction not in (None, "none") or o.axis >= 0 or case.sample_weight is not None:
        return None
    if case.y_true.ndim != case.y_pred.ndim or case.y_pred.ndim == 0:
        return None
    return (case.api, o, case.true_dtype, case.pred_dtype, case.y_true.shape, case.y_pred.shape)


def split_stacked(values: Any, dtype: str, n: int, started: float) -> list[Outcome] | None:
    """The per-case outcomes of one stacked call over ``n`` cases (``values`` stacked on a new leading axis),
    each with its share of the time since ``started``; None when the result is not one value per case (the
    cases then run one by one)."""
    import time

    if values.shape[:1] != (n,):
        return None
    each = (time.perf_counter() - started) / n
    return [Outcome(value=values[j], dtype=dtype, seconds=each) for j in range(n)]
