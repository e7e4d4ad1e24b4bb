"""How long a suite will take, from measured per-record costs by kind, said before it starts.

A record's cost depends on its kind, the way its TensorFlow call is made (``kind_of``): ``stacked`` (an
unreduced case that shares one call with others of its signature, stacking.batch_key), ``eager``,
``function`` and ``xla`` (a call of its own, in that mode; a gradient or a reduction always is).  Each kind
has a cost per record in a worker (target, reference and comparison together), and every record has a cost
in the run's own process (generation, verdict, the stream line, the report summary), which does not divide
over the workers.  The estimate is

    seconds = sum over kinds (records of the kind x its cost) / workers + records x MAIN_COST

COSTS and MAIN_COST were measured with ``python benchmarks/bench_suite.py --costs`` (it prints the figures
to paste here: each kind's worker seconds over its records, from a run of the default suite and a value
sweep), on 2 cores shared with other jobs, so they are on the slow side of an idle machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from harness.case import Case
from harness.stacking import batch_key

__all__ = ["COSTS", "MAIN_COST", "estimate", "kind_of", "kinds", "render"]

# seconds per record in one worker, by kind; and in the run's own process, per record
COSTS = {"stacked": 0.0014, "eager": 0.006, "function": 0.012, "xla": 0.030}
MAIN_COST = 0.004


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
