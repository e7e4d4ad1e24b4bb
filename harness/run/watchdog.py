"""How long a job may take before its worker is killed: derived from what the run has measured.

The rule (README, "Scale and survival"):

* Each case has a *kind*: its mode (eager, function, xla; ``training`` for a training-loop case, which
  builds a model and traces its steps; ``replica`` for a loss called under a strategy), and
  ``first:<mode>`` when the worker that gets it has not yet traced its function (``target.trace_key``): a first trace, or an XLA compile, is timed apart.
* The run keeps, per kind, the mean and the slowest time a case of that kind took in a worker (reference,
  TensorFlow and comparison).  Until a kind has been measured, a prior stands in (``PRIORS``).
* A job's limit is ``MULTIPLE`` times (the sum of its cases' means plus the slowest of its kinds' slowest
  case), at least ``FLOOR`` seconds and at most the ceiling (``--timeout``).
* A single case that outlives its limit is a *suspect*, not yet a hang: it is run again with the escalated
  limit ``max(ESCALATED_FLOOR, ESCALATION * limit)`` (still at most the ceiling), so a slow case that
  finishes is never recorded as a hang; only a case that outlives that too is a ``timeout``.  (A suspect
  that joins a class of hangs already confirmed is not run again: see quarantine.py.)

Nothing here reads a clock: the pool passes the times in, and the tests pass made-up ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.case import REPLICA_ROUTES

__all__ = ["ESCALATED_FLOOR", "ESCALATION", "FLOOR", "MULTIPLE", "PRIORS", "Watchdog"]

FLOOR = 5.0  # seconds: the least any job gets (a job's transfer, a worker's scheduling on a busy machine)
MULTIPLE = 10.0  # how generous: a job may take ten times what its cases took so far
ESCALATION = 4.0
ESCALATED_FLOOR = 30.0
# (mean, slowest) seconds of a case of a kind not measured yet in this run
PRIORS: dict[str, tuple[float, float]] = {
    "eager": (0.02, 0.5),
    "function": (0.05, 1.0),
    "xla": (0.05, 1.0),
    # an eager call that compiles on first use: JAX compiles each primitive per shape and dtype (run --backend
    # jax), as slow as a first trace on a busy machine; TensorFlow's eager calls are never "first"
    "first:eager": (0.5, 5.0),
    "first:function": (0.5, 5.0),
    "first:xla": (1.0, 10.0),
    # a training-loop case builds (or reuses) a model and traces its step functions; a replica case calls the
    # loss under a strategy (the first one makes the strategy)
    "training": (1.5, 10.0),
    "first:training": (3.0, 20.0),
    "replica": (0.2, 2.0),
    "first:replica": (0.5, 5.0),
}
_DEFAULT_PRIOR = (0.05, 1.0)


@dataclass
class _Stats:
    total: float = 0.0
    count: int = 0
    slowest: float = 0.0


@dataclass
class Watchdog:
    """Per-kind timings and the limits derived from them.  ``ceiling``: the most any job gets."""

    ceiling: float
    floor: float = FLOOR
    multiple: float = MULTIPLE
    _stats: dict[str, _Stats] = field(default_factory=dict)

    @staticmethod
    def mode_of(case: Any) -> str:
        """The mode a case is timed as: its ``mode``; ``training`` for a case that goes through a model's loop
        (seconds: a model is built and its steps traced), ``replica`` for a loss called under a strategy."""
        spec = getattr(case, "training", None)
        if spec is None:
            return case.mode
        return "replica" if spec.route in REPLICA_ROUTES else "training"

    @staticmethod
    def kind(mode: str, first: bool, *, eager_compiles: bool = False) -> str:
        """The case's kind; eager calls trace nothing, unless the backend compiles them (``eager_compiles``)."""
        return f"first:{mode}" if first and (mode != "eager" or eager_compiles) else mode

    def observe(self, kind: str, seconds: float) -> None:
        """A case of ``kind`` took ``seconds`` in its worker."""
        s = self._stats.setdefault(kind, _Stats())
        s.total += seconds
        s.count += 1
        s.slowest = max(s.slowest, seconds)

    def mean(self, kind: str) -> float:
        s = self._stats.get(kind)
        return s.total / s.count if s and s.count else PRIORS.get(kind, _DEFAULT_PRIOR)[0]

    def slowest(self, kind: str) -> float:
        s = self._stats.get(kind)
        return s.slowest if s and s.count else PRIORS.get(kind, _DEFAULT_PRIOR)[1]

    def limit(self, kinds: Iterable[str]) -> float:
        """Seconds a job whose cases have ``kinds`` (one per case) may take."""
        kinds = list(kinds)
        expected = sum(self.mean(k) for k in kinds) + max((self.slowest(k) for k in set(kinds)), default=0.0)
        return min(self.ceiling, max(self.floor, self.multiple * expected))

    def escalated(self, limit: float) -> float:
        """The limit a suspect (a single case that outlived ``limit``) is run again with."""
        return min(self.ceiling, max(ESCALATED_FLOOR, ESCALATION * limit))

    def expired(self, started: float, now: float, limit: float) -> bool:
        return now - started > limit

    def as_dict(self) -> dict[str, dict[str, float]]:
        """What was measured, for the report's meta."""
        return {
            k: {"cases": s.count, "mean": round(s.total / s.count, 4), "slowest": round(s.slowest, 4)}
            for k, s in sorted(self._stats.items())
            if s.count
        }
