"""How long a suite will take, from measured per-record costs by kind, said before it starts.

A record's cost depends on its kind, the way its TensorFlow call is made (``kind_of``): ``stacked`` (an
unreduced case that shares one call with others of its signature, stacking.batch_key), ``eager``,
``function`` and ``xla`` (a call of its own, in that mode; a gradient or a reduction always is).  Each kind
has a cost per record in a worker (target, reference and comparison together), and every record has a cost
in the run's own process (generation, verdict, the stream line, the report summary).  The workers and the
run's process share the machine's cores, so the estimate is the work over the cores the run can use, but
never less than the run's own process alone needs (it does not divide):

    cpu     = sum over kinds (records of the kind x its cost) + records x MAIN_COST
    seconds = max(records x MAIN_COST, cpu / min(workers, cores))

COSTS and MAIN_COST were measured with ``python benchmarks/bench_suite.py --costs --skip-suite`` (it prints
the figures to paste here: each kind's worker seconds over a sample of its records from the default suite
and a two-seed sweep, and the run's own seconds per record), on an idle machine of 2 cores.  Checked against
whole runs there: the nightly suite (1,002,534 records, 999,490 of them stacked) took 478 s, 481 s and 515 s
on 2 workers in three runs on 2026-12-07; the estimate says (999,490 x 0.7 ms + 1,002,534 x 0.3 ms + the
few thousand calls of their own, 23 s) / 2 = 512 s.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable

from harness.case import Case
from harness.stacking import batch_key

__all__ = ["COSTS", "MAIN_COST", "estimate", "kind_of", "kinds", "render"]

# seconds per record in one worker, by kind; and in the run's own process, per record (2026-12-07, idle, 2
# cores, TensorFlow 2.21.0; the traced kinds include each sampled function's trace or XLA compile, which a run
# pays once per function and worker)
COSTS = {"stacked": 0.0007, "eager": 0.0024, "function": 0.0170, "xla": 0.0511}
MAIN_COST = 0.0003


def kind_of(case: Case) -> str:
    if batch_key(case) is not None:
        return "stacked"
    return case.mode if case.mode in COSTS else "eager"


def kinds(cases: Iterable[Case]) -> Counter[str]:
    return Counter(kind_of(c) for c in cases)


def estimate(counts: Counter[str] | dict[str, int], workers: int, cores: int | None = None) -> float:
    """Expected seconds for ``counts`` records of each kind on ``workers`` workers (0: in this process) and
    ``cores`` cores (None: this machine's)."""
    n = sum(counts.values())
    cpu = sum(k * COSTS[kind] for kind, k in counts.items()) + n * MAIN_COST
    parallel = max(1, min(max(workers, 1), cores or os.cpu_count() or 1))
    return max(n * MAIN_COST, cpu / parallel)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(name: str, counts: Counter[str] | dict[str, int], workers: int) -> str:
    """The line a run prints before it starts: records, expected time, and how the time was derived."""
    n = sum(counts.values())
    parts = ", ".join(f"{counts[k]:,} {k}" for k in COSTS if counts.get(k))
    return (
        f"suite {name}: {n:,} records ({parts}); expected about {_duration(estimate(counts, workers))} on "
        f"{max(workers, 1)} worker(s) and {os.cpu_count() or 1} core(s) (measured per-record costs by kind, harness/run/estimate.py)"
    )
