"""Records per second of the harness against the naive loop, measured in the same run.

The naive loop is what a person writes first: for each record, construct the loss (and, in the traced
modes, trace a new function), call it once, compute the reference, compare.  The harness plans jobs, stacks unreduced cases into one call, reuses loss
objects, and spreads the work over worker processes.  Both are run here, on this machine, in one process
run, and the ratio of their rates is printed with where the harness's time goes.

    python benchmarks/bench_suite.py [--workers N] [--naive-sample N] [--sweep-seeds N]

``--sweep-seeds`` adds a second workload: the unreduced records of the value grid under several seeds,
the shape of a nightly value sweep, where stacking carries most of the load.  Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from harness.compare import compare  # noqa: E402
from harness.generator import default_suite  # noqa: E402
from harness.reference import expected  # noqa: E402
from harness.registry import load_registry  # noqa: E402
from harness.report import meta, write_reports  # noqa: E402
from harness.runner import run_cases, run_parallel  # noqa: E402
from harness.target import TFTarget  # noqa: E402
from harness.workers import default_workers  # noqa: E402


def naive(cases) -> float:
    """Seconds for the naive loop over ``cases``: per record a new target (so a new loss object, and a new
    traced function in the traced modes), one call, one reference, one comparison."""
    start = time.perf_counter()
    for c in cases:
        compare(c, expected(c), TFTarget().run(c))
    return time.perf_counter() - start


def sample(cases, n):
    step = max(1, len(cases) // n)
    return cases[::step][:n]


def measure(label: str, cases, registry, workers: int, naive_n: int) -> None:
    # Fixed costs first, each measured on its own: TensorFlow's import in this process (the naive loop and
    # --workers 0 pay it once), and the pool's start-up (its workers import TensorFlow) with one record.
    t = time.perf_counter()
    target = TFTarget()
    target.run(cases[0])
    t_import = time.perf_counter() - t
    t_start = 0.0
    if workers:
        t = time.perf_counter()
        run_parallel(cases[:1], registry, workers=workers)
        t_start = time.perf_counter() - t
    t0 = time.perf_counter()
    if workers == 0:
        result = run_cases(cases, target, registry)
        versions = {}
    else:
        result, versions = run_parallel(cases, registry, workers=workers)
    t_run = time.perf_counter() - t0
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        write_reports(result, meta(seed=0, profile="keras3", versions=versions, env={}, extra={}), out)
    t_report = time.perf_counter() - t1
    picked = sample(list(cases), naive_n)
    t_naive = naive(picked)  # TensorFlow is imported and its eager context warm: per-record work only
    wall = t_run + t_report
    harness_rate = len(cases) / wall
    steady_rate = len(cases) / max(wall - t_start, 1e-9)
    naive_rate = len(picked) / t_naive
    print(f"\n== {label}: {len(cases)} records, workers={workers}")
    print(f"harness: {harness_rate:8.0f} records/s  ({wall:.2f} s wall: the run, its worker start-up and its reports)")
    if workers:
        print(f"         {steady_rate:8.0f} records/s  without the pool's start-up ({t_start:.2f} s, measured alone)")
    print(f"naive:   {naive_rate:8.0f} records/s  ({len(picked)} records sampled evenly from the same list, {t_naive:.2f} s)")
    print(f"ratio:   {harness_rate / naive_rate:8.1f}x" + (f"  ({steady_rate / naive_rate:.1f}x without start-up)" if workers else ""))
    cpu = result.seconds
    print(
        "harness time (worker CPU seconds, summed): "
        + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
        + f"; report writing {t_report:.2f} s wall; TensorFlow import here {t_import:.2f} s (not counted)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--naive-sample", type=int, default=400)
    parser.add_argument("--sweep-seeds", type=int, default=0)
    args = parser.parse_args()

    registry = load_registry()
    t0 = time.perf_counter()
    cases = default_suite()
    print(f"generation: {len(cases)} records in {time.perf_counter() - t0:.2f} s")
    measure("default suite", cases, registry, args.workers, args.naive_sample)
    measure("default suite, in-process", cases, registry, 0, args.naive_sample)
    if args.sweep_seeds:
        sweep = [
            c
            for seed in range(args.sweep_seeds)
            for c in default_suite(seed=seed, special_cases=None)
            if c.tags["family"] == "values" and c.options.reduction in (None, "none")
        ]
        measure(f"value sweep over {args.sweep_seeds} seeds", sweep, registry, args.workers, args.naive_sample)


if __name__ == "__main__":
    main()
