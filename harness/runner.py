"""The pipeline: for each case, reference and target, then compare, then the registry's verdict.

A case whose evaluation raises inside the harness becomes an ``error`` record with the traceback's last
line; it never takes the other records with it.  ``KeyboardInterrupt`` stops the run and keeps what was
done (``RunResult.interrupted``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.case import Case, Expected, Outcome
from harness.compare import Comparison, compare
from harness.reference import expected as reference_expected
from harness.registry import Divergence, Registry

__all__ = ["STATUSES", "Record", "RunResult", "Target", "run_cases", "verdict"]

STATUSES = ("pass", "fail", "xfail", "xpass", "error")


class Target(Protocol):
    name: str

    def run(self, case: Case) -> Outcome: ...

    def versions(self) -> dict[str, Any]: ...


@dataclass(frozen=True, eq=False)
class Record:
    """One case's result: the inputs, both sides, the comparison, and the status after the registry."""

    case: Case
    status: str
    comparison: Comparison
    expected: Expected | None = None
    outcome: Outcome | None = None
    divergence: Divergence | None = None
    note: str = ""


@dataclass(frozen=True, eq=False)
class RunResult:
    records: tuple[Record, ...]
    seconds: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False

    def totals(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for r in self.records:
            counts[r.status] += 1
        counts["total"] = len(self.records)
        return counts

    @property
    def ok(self) -> bool:
        t = self.totals()
        return t["fail"] == 0 and t["xpass"] == 0 and t["error"] == 0 and not self.interrupted


def verdict(comparison: Comparison, divergence: Divergence | None) -> tuple[str, str]:
    """(status, note) of a comparison given the registry entry that matches its case, if any."""
    if divergence is None:
        return ("pass", "") if comparison.agrees else ("fail", "")
    if comparison.agrees:
        return "xpass", f"registered divergence {divergence.id!r} no longer reproduces"
    if comparison.kind in divergence.kinds:
        return "xfail", f"known divergence {divergence.id!r}"
    return "fail", f"registered divergence {divergence.id!r} explains {sorted(divergence.kinds)}, not {comparison.kind!r}"


def run_cases(
    cases: Sequence[Case],
    target: Target,
    registry: Registry,
    *,
    profile: str = "keras3",
    progress: Callable[[int, int], None] | None = None,
    oracle: Callable[..., Expected] = reference_expected,
) -> RunResult:
    """Run every case through reference and target; a failure inside one case becomes an error record."""
    records: list[Record] = []
    seconds = {"reference": 0.0, "target": 0.0, "compare": 0.0}
    interrupted = False
    total = len(cases)
    for i, case in enumerate(cases):
        try:
            records.append(_run_one(case, target, registry, profile, oracle, seconds))
        except KeyboardInterrupt:
            interrupted = True
            break
        except Exception as exc:  # noqa: BLE001 - one broken case must not end the run
            comparison = Comparison("exception", f"case: {case.id}\ninternal error: {type(exc).__name__}: {exc}")
            records.append(Record(case, "error", comparison, note=f"{type(exc).__name__}: {exc}"))
        if progress is not None:
            progress(i + 1, total)
    return RunResult(tuple(records), seconds, interrupted)


def _run_one(
    case: Case,
    target: Target,
    registry: Registry,
    profile: str,
    oracle: Callable[..., Expected],
    seconds: dict[str, float],
) -> Record:
    t0 = time.perf_counter()
    exp = oracle(case, profile=profile)
    t1 = time.perf_counter()
    out = target.run(case)
    t2 = time.perf_counter()
    comparison = compare(case, exp, out)
    t3 = time.perf_counter()
    seconds["reference"] += t1 - t0
    seconds["target"] += t2 - t1
    seconds["compare"] += t3 - t2
    divergence = registry.find(case.facets)
    status, note = verdict(comparison, divergence)
    return Record(case, status, comparison, exp, out, divergence if status in ("xfail", "xpass") else None, note)


def iter_failures(records: Iterable[Record]) -> list[Record]:
    """Records that did not pass, the unexpected ones first."""
    order = {"error": 0, "fail": 1, "xpass": 2, "xfail": 3}
    return sorted((r for r in records if r.status != "pass"), key=lambda r: (order[r.status], r.case.id))
