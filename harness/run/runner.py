"""The pipeline: for each case, reference and target, then compare, then the registry's verdict.

Cases are planned into jobs (``plan_jobs``: stackable cases of one signature together) and evaluated in
this process (``run_cases``) or in TensorFlow worker processes (``run_parallel``, see workers.py).  A case
whose evaluation raises inside the harness becomes an ``error`` record; a case that kills or hangs its
worker becomes a ``crash`` or ``timeout`` failure; neither takes the other records with it.  Ctrl-C
stops the run and keeps what was done (``RunResult.interrupted``).  ``on_record`` sees each record as it
completes, which is how runs stream to disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from harness.case import Case, Expected, Outcome, realize, template_of
from harness.judge.compare import Comparison
from harness.judge.matching import record_facets
from harness.judge.registry import Divergence, Registry
from harness.oracle import expected
from harness.run.evaluate import CaseResult, evaluate
from harness.run.workers import DeadlineReached, WorkerPool

__all__ = ["NO_VERDICT", "STATUSES", "DeadlineReached", "Record", "RunResult", "Target", "judged", "plan_jobs", "run_cases", "run_parallel", "verdict"]

# outside: the case is outside the documented domain, no verdict (Expected.basis); unsupported: the installed
# Keras cannot express the case (an argument, a reduction or an API it lacks), with the reason in the note
STATUSES = ("pass", "fail", "xfail", "xpass", "error", "outside", "unsupported")
NO_VERDICT = ("outside", "unsupported")


class Target(Protocol):
    name: str

    def run(self, case: Case) -> Outcome: ...

    def run_many(self, cases: Sequence[Case]) -> list[Outcome]: ...

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
    # a crash or timeout: its class (quarantine.py): id, cause, whether inferred, the confirmed ids, facets
    evidence: Mapping[str, Any] | None = None


@dataclass(frozen=True, eq=False)
class RunResult:
    records: tuple[Record, ...]
    seconds: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    deadline: float | None = None  # the deadline (seconds) the run stopped at, or None: it was not reached
    not_run: tuple[str, ...] = ()  # ids of the cases that did not run (interrupted, or the deadline)
    findings: tuple[Mapping[str, Any], ...] = ()  # what no single record says (workers.WorkerPool.findings)
    pool: Mapping[str, Any] = field(default_factory=dict)  # the workers' measurements and classes

    def totals(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for r in self.records:
            counts[r.status] += 1
        counts["total"] = len(self.records)
        return counts

    @property
    def ok(self) -> bool:
        t = self.totals()
        return (
            t["fail"] == 0 and t["xpass"] == 0 and t["error"] == 0 and not self.interrupted and self.deadline is None
            and not self.findings
        )


# Families whose agreement under a matching registry entry is a pass, not an xpass (see judged).
LENIENT_XPASS = frozenset({"pairs"})


def verdict(comparison: Comparison, divergence: Divergence | None) -> tuple[str, str]:
    """(status, note) of a comparison given the registry entry that matches its case, if any."""
    if divergence is None:
        return ("pass", "") if comparison.agrees else ("fail", "")
    if comparison.agrees:
        return "xpass", f"registered divergence {divergence.id!r} no longer reproduces"
    unexplained = [k for k in comparison.kinds if k not in divergence.kinds]
    if not unexplained:
        return "xfail", f"known divergence {divergence.id!r}"
    return "fail", f"registered divergence {divergence.id!r} explains {sorted(divergence.kinds)}, not {unexplained[0]!r}"


def _record(case: Case, result: CaseResult, registry: Registry, profile: str) -> Record:
    """The record of one evaluated case, with the registry's verdict."""
    comparison, exp = result.comparison, result.expected
    if comparison.kind in ("error", "unsupported"):  # the harness failed, or the installed Keras cannot express it
        return Record(case, comparison.kind, comparison, exp, result.outcome, note=comparison.message.splitlines()[-1])
    if exp is None:  # crash or timeout: the reference still gives the reproduction its expected value
        try:
            exp = expected(case, profile=profile)
        except Exception:  # noqa: BLE001 - the record stands without it
            exp = None
    facets = result.facets if exp is result.expected else None  # (made against the expectation it came with)
    record = judged(case, comparison, exp, result.outcome, registry, profile, facets=facets)
    return record if result.evidence is None else replace(record, evidence=result.evidence)


def judged(
    case: Case, comparison: Comparison, exp: Expected | None, out: Outcome | None, registry: Registry, profile: str,
    *, facets: dict[str, Any] | None = None,
) -> Record:  # fmt: skip
    """The record of a compared case with the registry's verdict (``Registry.judge``, then ``verdict``): the one
    place run, replay, merge and the pytest suites turn a comparison into pass, fail, xfail or xpass; a case
    outside the documented domain is ``outside`` whatever happened (no registry entry reads it).  ``facets``:
    the record's ``record_facets(case, exp, profile)``, when they were made where the case was evaluated."""
    if exp is not None and exp.outside is not None:
        return Record(case, "outside", comparison, exp, out, None, f"outside the documented domain: {exp.outside}")
    divergence = registry.judge(record_facets(case, exp, profile) if facets is None else facets, comparison.kinds)
    status, note = verdict(comparison, divergence)
    if status == "xpass" and divergence is not None and divergence.intermittent:
        # the entry says its class shows the divergence for some values only: agreement here proves nothing
        status, note = "pass", f"matches registered {divergence.id!r}, which shows for some values of its class only"
    elif status == "xpass" and divergence is not None and case.tags.get("family") in LENIENT_XPASS:
        # as for fuzz draws: a case that combines facets freely can hold a registered class without showing it
        # (another element's NaN or infinity swallows the difference), so its agreement proves nothing;
        # strictness about xpass stays with the grid's families, built to show each divergence
        status, note = "pass", f"matches registered {divergence.id!r}, which did not show in this combination"
    return Record(case, status, comparison, exp, out, divergence if status in ("xfail", "xpass") else None, note)


# A training-loop or replica case builds a model or a strategy and traces its steps (seconds each on a busy
# machine): a few to a job, so that a job of them stays well under the run's per-job ceiling (--timeout).
TRAINING_JOB_SIZE = 4


def plan_jobs(cases: Sequence[Case], *, job_size: int = 128) -> list[list[tuple[int, Case]]]:
    """Cases grouped into jobs: stackable cases of one signature next to each other, at most job_size
    (at most TRAINING_JOB_SIZE training-loop or replica cases)."""
    from harness.stacking import batch_key, trace_key

    def order(i: int) -> tuple[bool, str, str, int]:
        # stackable cases of one signature together; traced cases of one function together, so that a
        # worker traces (and XLA compiles) each function once instead of every worker tracing all of them
        return batch_key(cases[i]) is None, repr(batch_key(cases[i])), repr(trace_key(cases[i])), i

    keyed = sorted(range(len(cases)), key=order)
    jobs = []
    for chosen, size in (
        ([i for i in keyed if cases[i].training is None], job_size),
        ([i for i in keyed if cases[i].training is not None], min(job_size, TRAINING_JOB_SIZE)),
    ):
        jobs += [[(i, cases[i]) for i in chosen[k : k + size]] for k in range(0, len(chosen), size)]
    return jobs


def run_cases(
    cases: Sequence[Case],
    target: Any,
    registry: Registry,
    *,
    profile: str = "keras3",
    progress: Callable[[int, int], None] | None = None,
    oracle: Callable[..., Expected] = expected,
    on_record: Callable[[Record], None] | None = None,
    job_size: int = 128,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Run every case in this process through ``target`` (a ``TFTarget`` or anything with ``run_many``).

    A failure inside one case becomes that case's error record; Ctrl-C keeps what was done.  ``deadline``:
    seconds from now after which no further job starts (the run then stops with what it did).
    """
    stop = None if deadline is None else clock() + deadline

    def execute(jobs: list[list[tuple[int, Case]]]) -> Iterable[CaseResult]:
        for job in jobs:
            if stop is not None and clock() >= stop:
                raise DeadlineReached
            yield from evaluate(job, target, profile, oracle=oracle)

    return _collect(cases, registry, profile, execute, progress, on_record, job_size, deadline)


def run_parallel(
    cases: Sequence[Case],
    registry: Registry,
    *,
    workers: int,
    factory: str | None = None,
    profile: str = "keras3",
    backend: str = "tensorflow",
    timeout: float = 120.0,
    progress: Callable[[int, int], None] | None = None,
    on_record: Callable[[Record], None] | None = None,
    job_size: int = 128,
    pool: WorkerPool | None = None,
    deadline: float | None = None,
    quarantine: bool = True,
    on_finding: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[RunResult, dict[str, Any]]:
    """Run every case in ``workers`` worker processes, Keras bound to ``backend`` in each; returns the result and
    their versions.

    ``pool``: an open pool to run in (its own settings apply; the caller closes it), so that its workers can
    import TensorFlow while the caller does something else, or serve several runs.  ``deadline``: seconds
    from now at which the run stops (jobs in flight are abandoned, their cases listed as not run).
    ``on_finding``: sees each job-level finding as the pool makes it (how a run keeps them for ``--resume``)."""
    if pool is not None:
        return _pooled(pool, cases, registry, profile, progress, on_record, job_size, deadline), pool.versions
    pool_options: dict[str, Any] = {"factory": factory, "profile": profile, "backend": backend, "timeout": timeout, "quarantine": quarantine}
    with WorkerPool(workers, **pool_options) as own:
        own.on_finding = on_finding
        return _pooled(own, cases, registry, profile, progress, on_record, job_size, deadline), own.versions


def _pooled(
    pool: WorkerPool,
    cases: Sequence[Case],
    registry: Registry,
    profile: str,
    progress: Callable[[int, int], None] | None,
    on_record: Callable[[Record], None] | None,
    job_size: int,
    deadline: float | None,
) -> RunResult:
    stop = None if deadline is None else pool.clock() + deadline
    result = _collect(cases, registry, profile, lambda jobs: pool.run(jobs, deadline=stop), progress, on_record, job_size, deadline)
    return replace(
        result,
        findings=tuple(pool.findings),
        pool={
            "watchdog": pool.watchdog.as_dict(),
            "classes": pool.quarantine.as_dicts(),
            "worker_startup_seconds": [round(s, 3) for s in pool.startups],
            "replacements": dict(pool.replacements),
            "start_failures": list(pool.start_failures),
        },
    )


def _collect(
    cases: Sequence[Case],
    registry: Registry,
    profile: str,
    execute: Callable[[list[list[tuple[int, Case]]]], Iterable[CaseResult]],
    progress: Callable[[int, int], None] | None,
    on_record: Callable[[Record], None] | None,
    job_size: int,
    deadline: float | None = None,
) -> RunResult:
    records: dict[int, Record] = {}
    # where the time went: the evaluation's stages, summed over records (in the workers when there are any),
    # then this process's own work on each record: the verdict, and on_record (the stream, in a run)
    seconds = {"reference": 0.0, "target": 0.0, "compare": 0.0, "verdict": 0.0, "on_record": 0.0}
    interrupted = False
    stopped: float | None = None
    total = len(cases)
    clock = time.perf_counter
    try:
        for result in execute(plan_jobs(cases, job_size=job_size)):
            # a deferred case as its worker made it; made here only when it was not (a crash, a timeout)
            case = result.case if result.case is not None else _made(cases[result.index])
            t0 = clock()
            try:
                record = _record(case, result, registry, profile)
            except Exception as exc:  # noqa: BLE001 - one broken case must not end the run
                comparison = Comparison("error", f"case: {case.id}\ninternal error: {type(exc).__name__}: {exc}")
                record = Record(case, "error", comparison, note=f"{type(exc).__name__}: {exc}")
            records[result.index] = record
            for k, v in result.seconds.items():
                seconds[k] = seconds.get(k, 0.0) + v
            t1 = clock()
            seconds["verdict"] += t1 - t0
            if on_record is not None:
                on_record(record)
                seconds["on_record"] += clock() - t1
            if progress is not None:
                progress(len(records), total)
    except KeyboardInterrupt:
        interrupted = True
    except DeadlineReached:
        stopped = deadline
    not_run = tuple(c.id for i, c in enumerate(cases) if i not in records) if interrupted or stopped is not None else ()
    return RunResult(tuple(records[i] for i in sorted(records)), seconds, interrupted, stopped, not_run)


def _made(case: Any) -> Case:
    """A case made here (a deferred case whose worker did not send it back made: it crashed, hung, or could
    not make it); one that cannot be made is its template under its own id, for the error record to name."""
    try:
        return realize(case)
    except Exception:  # noqa: BLE001 - the worker's error result says what went wrong
        return replace(template_of(case), id=case.id)


def iter_failures(records: Iterable[Record]) -> list[Record]:
    """Records with a verdict that did not pass: crashes and hangs first, then the unexpected ones, then known ones."""
    order = {"error": 0, "fail": 1, "xpass": 2, "xfail": 3}
    return sorted(
        (r for r in records if r.status in order),
        key=lambda r: (r.comparison.kind not in ("crash", "timeout"), order[r.status], r.case.id),
    )
