"""How long a suite will take, from measured per-record costs by kind, said before it starts.

A record's cost depends on its kind, the way its TensorFlow call is made (``kind_of``): ``stacked`` (an
unreduced case that shares one call with others of its signature, stacking.batch_key), ``eager``,
``function`` and ``xla`` (a call of its own, in that mode; a gradient or a reduction always is).  Each kind
has a cost per record in a worker (target, reference and comparison together), and every record has a cost
in the run's own process (generation, verdict, the stream line, the report summary), which does not divide
over the workers.  The estimate is

    seconds = sum over kinds (records of the kind x its cost) / workers + records x MAIN_COST

COSTS and MAIN_COST were measured with ``python benchmarks/bench_suite.py --costs --skip-suite`` (it prints
the figures to paste here: each kind's worker seconds over a sample of its records from the default suite
and a two-seed sweep, and the run's own seconds per record), on 2 cores shared with other jobs, so they
are on the slow side of an idle machine.  Checked against a whole run: the nightly suite at 40,000
records took 302 s on 2 workers, where the estimate says 40,000 x (5.5 ms / 2 + 1.9 ms) = 186 s plus
the pool's start-up; the growth benchmark's slope, 5.1 ms a record, is the better figure for a long run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from harness.case import Case
from harness.stacking import batch_key

__all__ = ["COSTS", "MAIN_COST", "estimate", "kind_of", "kinds", "render"]

# seconds per record in one worker, by kind; and in the run's own process, per record
# (2026-12-02, load average about 15 on 2 cores: several times an idle machine's; the traced kinds include
# each sampled function's trace or XLA compile, which a run pays once per function and worker)
COSTS = {"stacked": 0.0055, "eager": 0.0105, "function": 0.0738, "xla": 0.2053}
MAIN_COST = 0.0019


def kind_of(case: Case) -> str:
    if batch_key(case) is not None:
        return "stacked"
    return case.mode if case.mode in COSTS else "eager"


def kinds(cases: Iterable[Case]) -> Counter[str]:
    return Counter(kind_of(c) for c in cases)


def estimate(counts: Counter[str] | dict[str, int], workers: int) -> float:
    """Expected seconds for ``counts`` records of each kind on ``workers`` workers (0: in this process)."""
    n = sum(counts.values())
    return sum(k * COSTS[kind] for kind, k in counts.items()) / max(workers, 1) + n * MAIN_COST


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
        f"{max(workers, 1)} worker(s) (measured per-record costs by kind, harness/run/estimate.py)"
    )
