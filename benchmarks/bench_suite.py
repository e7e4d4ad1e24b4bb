"""Records per second of the harness against the naive loop, measured in the same run, and the floor.

The naive loop is what a person writes first: for each record, construct the loss (and, in the traced
modes, trace a new function), call it once, compute the reference, compare.  The harness plans jobs, stacks
unreduced cases into one call, reuses loss objects and traces, vectorises the reference and the comparison,
and spreads the work over worker processes; it also judges every record against the registry, streams it
to ``records.jsonl`` and writes the reports, exactly as ``bce-harness run`` does.  Both are run here, on this
machine, in one process run.

    python benchmarks/bench_suite.py [--workers N] [--naive-sample N] [--sweep-seeds N] [--no-floor] [--recovery N]
                                     [--growth 10000,100000,1000000 [--keep DIR]] [--scaling] [--plot PATH]

Two ratios are printed, each comparing like with like: *warm*, both sides with TensorFlow already imported
(the naive loop in this process, the harness without its pool's start-up, which is its workers importing
TensorFlow); and *end to end*, both sides paying their import (the naive loop once, the harness its pool).

The *floor* is the part no faithful runner can skip: one real TensorFlow call per record that cannot share a
stacked call (every reduction, every weighted, masked, traced or gradient call), and one trace per traced
signature.  It is measured here: those calls in one process (each traced function traced once), and, with
workers, in as many processes at once, each a share of the plan's jobs balanced by their time alone (what
the machine gives several TensorFlow processes together, not one process's time divided); the naive loop's
time over it is the best ratio any runner could reach on that workload.

Workloads: the default suite, with workers and in this process; with ``--sweep-seeds N`` also the
nightly suite's value sweep over the seeds 1..N (740 unreduced records a seed), where stacking carries the
load, filed as a streamed run files it.  With ``--recovery N``: a worker's start-up (spawn to ready, TensorFlow's import), and
what each of N crashes in a row costs with a spare worker started ahead and without one (every call of
the loss dies of SIGSEGV; no quarantine, so every crash is paid).  With ``--growth SIZES`` the nightly
suite at each size (records per second and peak RSS of the whole process tree, a fitted line, a plot;
benchmarks/growth.py), and with ``--scaling`` the default suite at ``--workers 1..cores``.  The three
ratios the nightly is judged by: the default suite's records/s as a share of the floor's ("share:"), the
value sweep against the naive loop ("ratio:" under ``--sweep-seeds``), and the growth's constants.
Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from harness import engine  # noqa: E402
from harness.case import Case  # noqa: E402
from harness.engine import RunSpec  # noqa: E402
from harness.frameworks import TFTarget  # noqa: E402
from harness.generate.grid import default_suite  # noqa: E402
from harness.judge.compare import compare  # noqa: E402
from harness.oracle import expected  # noqa: E402
from harness.report.summary import write_reports  # noqa: E402
from harness.run.runner import RunResult, plan_jobs  # noqa: E402
from harness.run.workers import WorkerPool, default_workers  # noqa: E402
from harness.stacking import batch_key  # noqa: E402


def naive(cases: Sequence[Case]) -> float:
    """Seconds for the naive loop over ``cases``: per record a new target (so a new loss object, and a new
    traced function in the traced modes), one call, one reference, one comparison."""
    start = time.perf_counter()
    for c in cases:
        compare(c, expected(c), TFTarget().run(c))
    return time.perf_counter() - start


def floor_seconds(cases: Sequence[Case], processes: int = 1, job_seconds: Sequence[float] | None = None) -> tuple[int, float, list[float]]:
    """(records, seconds, each plan job's seconds) of the TensorFlow calls no runner may batch, measured as
    workers make them: in ``processes`` fresh processes at once, each with TensorFlow on one thread, each
    unstackable record's own call, in plan order, each process a share of the plan's jobs (so each traced
    function is traced once); the seconds are the slowest process's, from a common start.  The shares are
    balanced by ``job_seconds`` (each job's time alone, from a one-process measurement), longest first."""
    jobs = [[c for _, c in job if batch_key(c) is None] for job in plan_jobs(cases)]
    weights = list(job_seconds) if job_seconds is not None else [float(len(j)) for j in jobs]
    shares: list[list[int]] = [[] for _ in range(processes)]
    load = [0.0] * processes
    for j in sorted(range(len(jobs)), key=lambda j: -weights[j]):  # each job to the least loaded share
        k = load.index(min(load))
        shares[k].append(j)
        load[k] += weights[j]
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        ready = manager.Barrier(processes)
        with ctx.Pool(processes) as pool:
            pending = [pool.apply_async(_calls_alone, ([jobs[j] for j in sorted(share)], ready)) for share in shares]
            done = [p.get() for p in pending]
    per_job = [0.0] * len(jobs)
    for share, (_, _, times) in zip(shares, done, strict=True):
        for j, t in zip(sorted(share), times, strict=True):
            per_job[j] = t
    return sum(n for n, _, _ in done), max(t for _, t, _ in done), per_job


def _calls_alone(jobs: list[list[Case]], ready=None) -> tuple[int, float, list[float]]:
    target = TFTarget(threads=1)
    target.run(default_suite(special_cases=None)[0])  # the first call's one-off costs are not the floor's
    if ready is not None:
        ready.wait()  # every process has imported TensorFlow: the calls start together
    start = time.perf_counter()
    times = []
    for job in jobs:
        t = time.perf_counter()
        for c in job:
            target.run(c)
        times.append(time.perf_counter() - t)
    return sum(map(len, jobs)), time.perf_counter() - start, times


def sample(cases: Sequence[Case], n: int) -> list[Case]:
    step = max(1, len(cases) // n)
    return list(cases[::step][:n])


def harness_run(spec: RunSpec, workers: int) -> tuple[RunResult, float, float, float]:
    """The run as ``bce-harness run`` makes it, through the same API (harness.engine.run: the suite planned
    and generated, run in chunks, every record judged and streamed), then its reports: (result, pool
    start-up s, run s, report s).  The pool is started first and timed alone: its workers import TensorFlow."""
    with tempfile.TemporaryDirectory() as out, contextlib.ExitStack() as stack:
        pool = stack.enter_context(WorkerPool(workers)) if workers else None
        t0 = time.perf_counter()
        if pool is not None:  # one single-record job for each worker: every worker started, TensorFlow imported
            first = default_suite(special_cases=None)[0]
            list(pool.run([[(0, first)] for _ in range(workers)]))
        t1 = time.perf_counter()
        output = engine.run(dataclasses.replace(spec, out=out, workers=workers, force=True), pool=pool)
        t2 = time.perf_counter()
        write_reports(output.result, output.meta, out, output.bulk)
        return output.result, t1 - t0, t2 - t1, time.perf_counter() - t2


def measure(
    label: str, spec: RunSpec, cases: Sequence[Case], workers: int, naive_n: int, t_import: float, *, floor: bool,
) -> None:  # fmt: skip
    """``spec``'s run (whose cases are ``cases``) against the naive loop on a sample of the same cases."""
    result, t_start, t_run, t_report = harness_run(spec, workers)
    picked = sample(cases, naive_n)
    t_naive = naive(picked)
    n = len(cases)
    naive_each = t_naive / len(picked)
    warm = t_run + t_report
    print(f"\n== {label}: {n} records, workers={workers}")
    print(f"harness: {n / warm:8.0f} records/s warm ({t_run:.2f} s run and stream, {t_report:.2f} s reports)")
    if workers:
        print(f"         {n / (warm + t_start):8.0f} records/s end to end (+ {t_start:.2f} s pool start-up)")
    print(f"naive:   {1 / naive_each:8.0f} records/s warm ({len(picked)} records sampled evenly from the same list, {t_naive:.2f} s)")
    print(f"         {n / (n * naive_each + t_import):8.0f} records/s end to end (+ {t_import:.2f} s TensorFlow import)")
    ratio_end = (n * naive_each + t_import) / (warm + t_start)
    print(f"ratio:   {naive_each * n / warm:8.1f}x warm, {ratio_end:.1f}x end to end")
    sec = result.seconds
    where = "in the workers, summed" if workers else "in this process"
    print(
        f"where:   evaluation {where}: reference {sec['reference']:.2f} s, TensorFlow {sec['target']:.2f} s, "
        f"compare {sec['compare']:.2f} s; in this process: verdicts {sec['verdict']:.2f} s, stream "
        f"{sec['on_record']:.2f} s, reports {t_report:.2f} s"
    )
    if floor:
        alone, t_floor, per_job = floor_seconds(cases)
        if alone:
            k = max(workers, 1)
            ideal = t_floor / k
            print(
                f"floor:   {alone} records need their own TensorFlow call: {t_floor:.2f} s of calls in one process, "
                f"{ideal:.2f} s if {k} worker(s) shared them without slowing one another"
            )
            if k > 1:  # what the machine gives k TensorFlow processes at once (caches, memory bandwidth)
                _, together, again = floor_seconds(cases, k, per_job)  # shares balanced by each job's time alone
                print(
                    f"         the same calls in {k} processes at once, shares balanced by their time alone: {together:.2f} s "
                    f"(the calls {sum(again):.2f} s summed: each process {t_floor / sum(again):.0%} as fast as alone)"
                )
            else:
                together = ideal
            print(f"         no runner can exceed {naive_each * n / together:.1f}x warm on this workload")
            # the floor's records per second: the whole workload at the speed of its unshareable calls alone
            print(
                f"share:   the harness's {n / warm:.0f} records/s warm are {100 * together / warm:.0f}% of the floor's "
                f"{n / together:.0f} records/s, made by {k} process(es) at once (target: at least 90%); "
                f"{100 * ideal / warm:.0f}% of the {n / ideal:.0f} records/s of one process's calls divided by {k}"
            )
        else:
            print("floor:   every record can share a stacked call: no call-bound limit on this workload")


def recovery(n: int) -> None:
    """Seconds per crash, N crashes in a row, with and without a spare; and the workers' start-up."""
    cases = [c for c in default_suite() if c.api == "BinaryCrossentropy" and c.mode == "eager"][:n]
    jobs = [[(i, c)] for i, c in enumerate(cases)]
    print(f"\n== recovery: {n} crashes in a row (every call dies of SIGSEGV), one worker")
    for spare in ("none", "ahead"):
        with WorkerPool(1, factory="_crash:make", quarantine=False, retry_crashes=False, spare=spare) as pool:
            list(pool.run([[(n, default_suite(special_cases=None)[0])]]))  # up, and (with a spare) its spare started
            if spare == "ahead":  # the spare imports TensorFlow while the first worker works, as in a run
                assert pool._spare is not None and pool._spare.conn.poll(600)
            t = time.perf_counter()
            kinds = [r.comparison.kind for r in pool.run(jobs)]
            each = (time.perf_counter() - t) / n
            assert kinds == ["crash"] * n, kinds
            startups = pool.startups
        print(
            f"spare {spare:5}: {each:6.2f} s a crash; worker start-up {min(startups):.2f} to {max(startups):.2f} s "
            f"({len(startups)} workers)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--naive-sample", type=int, default=400)
    parser.add_argument("--sweep-seeds", type=int, default=0)
    parser.add_argument("--no-in-process", action="store_true", help="skip the default suite in this process (workers 0)")
    parser.add_argument("--no-floor", action="store_true", help="skip measuring the floor (about 15 s on the default suite)")
    parser.add_argument("--recovery", type=int, default=0, metavar="N", help="also measure N crashes in a row, with and without a spare")
    parser.add_argument("--recovery-only", action="store_true", help="measure only the recovery")
    parser.add_argument("--growth", default="", metavar="SIZES", help="nightly suite sizes, comma-separated (e.g. 10000,100000,1000000)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR", help="with --growth: the largest size's run is written to DIR and kept")
    parser.add_argument("--scaling", action="store_true", help="the default suite at --workers 1..cores")
    parser.add_argument("--plot", default="reports/benchmark/growth", help="the growth plot, without suffix (.png or .svg)")
    parser.add_argument("--skip-suite", action="store_true", help="only --growth, --scaling and --costs")
    parser.add_argument("--costs", action="store_true", help="per-record costs by kind, for harness/run/estimate.py")
    args = parser.parse_args()
    if args.recovery_only:
        recovery(args.recovery or 6)
        return

    if args.growth or args.scaling or args.costs:
        from growth import costs, growth, scaling  # benchmarks/growth.py, beside this file

        if args.costs:
            costs()
        if args.growth:
            plot = Path(args.plot)
            plot.parent.mkdir(parents=True, exist_ok=True)
            growth([int(x) for x in args.growth.split(",") if x.strip()], args.workers, plot, keep=args.keep)
        if args.scaling:
            scaling(list(range(1, (os.cpu_count() or 1) + 1)), ["run", "--suite", "default"])
        if args.skip_suite:
            return
    t = time.perf_counter()
    TFTarget().run(default_suite(special_cases=None)[0])  # TensorFlow's import and first call, in this process
    t_import = time.perf_counter() - t
    t0 = time.perf_counter()
    cases = default_suite()
    print(f"generation: {len(cases)} records in {time.perf_counter() - t0:.2f} s; TensorFlow import and first call here {t_import:.2f} s")
    measure("default suite", RunSpec(), cases, args.workers, args.naive_sample, t_import, floor=not args.no_floor)
    if not args.no_in_process:
        measure("default suite, in-process", RunSpec(), cases, 0, args.naive_sample, t_import, floor=False)
    if args.sweep_seeds:
        t0 = time.perf_counter()
        from harness.generate.grid import sweep_family

        sweep = [c for seed in range(1, args.sweep_seeds + 1) for c in sweep_family(seed)]  # the nightly's own sweep
        print(f"\ngeneration: {len(sweep)} sweep records (the nightly's sweep, seeds 1..{args.sweep_seeds}) in {time.perf_counter() - t0:.2f} s")
        # the run of the same sweep: the default suite with --seeds 1..N, its base selected away
        spec = RunSpec(seeds=(1, args.sweep_seeds), select="*/seed=*")
        measure(
            f"value sweep over {args.sweep_seeds} seeds, run as bce-harness run --seeds runs it", spec, sweep, args.workers,
            args.naive_sample, t_import, floor=not args.no_floor,
        )  # fmt: skip
    if args.recovery:
        recovery(args.recovery)


if __name__ == "__main__":
    main()
