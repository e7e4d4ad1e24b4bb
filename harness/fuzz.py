"""Property-based search: Hypothesis draws whole cases, each divergence is shrunk and saved for replay.

``fuzz`` runs the pipeline (reference, target, comparator) on cases drawn by ``strategies.cases()``.  A draw
that disagrees is a *finding* unless a registry entry that matches the case lists the failure's kind (any
matching entry, not only the first: a random case can hold two registered divergences at once).  A draw that
agrees is never a finding, even where an entry matches: a random draw can sit in a registered class without
showing it (a scalar weight of 1, a NaN elsewhere in the same row), so strictness about ``xpass`` stays with
the grid suite, whose cases are built to show each divergence.

Hypothesis tells failures apart by the exception raised, so each failure kind raises its own exception
class: Hypothesis then shrinks every kind separately, freely across options, to a minimal case.  Hypothesis
also stops generating soon after its first failure, so the search runs in rounds (see ``fuzz``).  The
shrunk case's *fingerprint* hashes the API, its option signature and the failure kind, so the same kind of
divergence gets the same name on every run and a saved regression is not saved twice.

Hypothesis is imported when ``fuzz`` runs (the ``fuzz`` extra); the rest of this module needs only NumPy.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.case import Case, Expected, Outcome
from harness.errors import UsageError
from harness.generate.saved import DEFAULT_REGRESSIONS, save_case
from harness.jsonio import atomic_write_text
from harness.judge.compare import KINDS, Comparison, compare
from harness.judge.matching import record_facets
from harness.judge.registry import Divergence, Registry
from harness.oracle import expected
from harness.report.repro import snippet
from harness.run.runner import Target
from harness.run.workers import process_failure

__all__ = [
    "DEFAULT_EXAMPLES",
    "Finding",
    "FuzzResult",
    "SavedFinding",
    "explanation",
    "fingerprint",
    "fuzz",
    "require_hypothesis",
    "save_finding",
    "shard_seed",
]

# The default budget: the cases a search round generates (shrinking adds its own).  About 11 ms a case on one
# core (Hypothesis's drawing about 6, reference and TensorFlow about 5), so a round that finds nothing takes
# some 12 s.  tests/instrument/test_fuzz.py finds every planted fault well within it.
DEFAULT_EXAMPLES = 1000
PROCESS_KINDS = ("crash", "timeout")  # a draw that killed or hung its worker (PooledTarget)
PROCESS_FAILURES = 6  # such draws a round shrinks with, at most (each costs a worker, or a time limit)


@dataclass(frozen=True, eq=False)
class Finding:
    """A shrunk divergence nobody registered: the case (id ``fuzz/<fingerprint>``) and both sides."""

    fingerprint: str
    case: Case
    expected: Expected
    outcome: Outcome
    comparison: Comparison

    @property
    def actual(self) -> str:
        """What TensorFlow returned or raised, for people."""
        o = self.outcome
        if o.error is not None:
            return o.error
        return f"{o.value.tolist() if o.value is not None else None} ({o.dtype})"


@dataclass(frozen=True, eq=False)
class FuzzResult:
    findings: tuple[Finding, ...]
    seed: int
    examples: int  # the budget asked for
    calls: int  # cases evaluated, shrinking included
    seconds: float
    known: Mapping[str, int] = field(default_factory=dict)  # draws explained, by registry entry id


@dataclass(frozen=True)
class SavedFinding:
    repro: Path
    regression: Path
    new: bool  # False: the regression file was already there (the same fingerprint found before)


def explanation(registry: Registry, facets: Mapping[str, Any], kind: str | tuple[str, ...] | None) -> Divergence | None:
    """The first registry entry that matches a record's ``facets`` and lists every failure ``kind``, if any.

    ``kind`` is one kind or all of a comparison's (``Comparison.kinds``): a registered NaN must not explain
    a wrong value found beside it in the same record.
    """
    return registry.explain(facets, (kind,) if kind is None or isinstance(kind, str) else kind)


def _smoothing_class(ls: float) -> str:
    return "0" if ls == 0 else "1" if ls == 1 else "(0,1)"


def fingerprint(case: Case, kind: str) -> str:
    """12 hex digits naming a kind of divergence: the API, the option signature and the failure kind.

    The option signature is what shrinking leaves standing: from_logits, whether labels are smoothed
    (0, between, 1), whether the axis is the last one, the reduction (None and "none" are one), the loss
    dtype as given and the form of sample_weight.  Values, sizes and input dtypes are left out, so a
    divergence found again with other numbers gets the same name.
    """
    if kind not in KINDS:
        raise UsageError(f"kind={kind!r} is not one of {', '.join(KINDS)}")
    o = case.options
    rank = max(case.y_true.ndim, case.y_pred.ndim)
    signature = {
        "api": case.api,
        "kind": kind,
        "from_logits": o.from_logits,
        "label_smoothing": _smoothing_class(o.label_smoothing),
        "axis": "last" if rank and o.axis % rank == rank - 1 else "other",
        "reduction": "none" if o.reduction is None else o.reduction,
        "dtype": o.dtype or "default",
        "weights": case.facets["weights"],
    }
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:12]


class _Divergence(AssertionError):
    """Raised inside the search for an unexplained divergence; one subclass per failure kind."""


_DIVERGENCE_BY_KIND: dict[str, type[_Divergence]] = {
    kind: type(f"Divergence_{kind}", (_Divergence,), {}) for kind in KINDS
}


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def require_hypothesis() -> Any:
    """The hypothesis module, or UsageError with the extra to install."""
    try:
        import hypothesis
    except ImportError as exc:
        raise UsageError(
            f"hypothesis is not installed ({exc}); install the extra: pip install 'bce-harness[fuzz]'"
        ) from None
    return hypothesis


def shard_seed(seed: int, shard: tuple[int, int] | None) -> int:
    """The seed shard ``(k, n)`` of a search with ``seed`` runs with: ``seed`` itself without shards, else a
    32-bit hash of the three, so the shards of one search draw different cases (consecutive seeds would not
    do: a search's rounds take ``seed``, ``seed + 1``, ...) and each shard repeats with the same arguments."""
    if shard is None:
        return seed
    k, n = shard
    return int.from_bytes(hashlib.sha256(f"bce-harness fuzz {seed} shard {k}/{n}".encode()).digest()[:4], "big")


def fuzz(
    target: Target,
    registry: Registry,
    *,
    examples: int = DEFAULT_EXAMPLES,
    seed: int | None = None,
    strategy: Any = None,
    profile: str = "keras3",
    oracle: Callable[..., Expected] = expected,
    backend: str = "tensorflow",
) -> FuzzResult:
    """Search ``strategy`` (default ``strategies.cases()``) for divergences of ``target`` from the reference.
    ``backend``: the Keras backend ``target`` runs; draws it cannot express are filtered out.

    The search runs in rounds.  Each round is one Hypothesis run of up to ``examples`` generated cases;
    Hypothesis ends a round's generation soon after its first failure and shrinks what it found, so the
    next round continues with a fresh seed, the failure kinds already found set aside.  The search stops
    at the first round that finds nothing new: ``examples`` cases have then been tried in vain.  ``seed``
    makes the whole search repeatable (None: a random one, returned in the result).  A failure inside the
    harness itself (the reference or the comparator raising) is raised as RuntimeError naming the case.
    """
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise UsageError(f"examples={examples!r} is not a positive integer")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise UsageError(f"seed={seed!r} is not a non-negative integer")
    hypothesis = require_hypothesis()
    from harness.generate.strategies import cases

    seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    strategy = cases() if strategy is None else strategy
    if backend != "tensorflow":
        # draws the backend cannot express are not made (harness/backends.py); the rest carry the backend's tag
        from harness.backends import split, unsupported

        strategy = strategy.filter(lambda c: unsupported(c, backend) is None).map(lambda c: split([c], backend)[0][0])
    search = _Search(target, registry, profile, oracle)
    start = time.perf_counter()
    for round_seed in range(seed, seed + len(KINDS) + 1):
        found = len(search.findings)
        search.run(hypothesis, strategy, examples=examples, seed=round_seed)
        if len(search.findings) == found:
            break
    for fp, finding in list(search.findings.items()):
        search.findings[fp] = search.fewer_elements(finding)
    return FuzzResult(
        findings=tuple(search.findings[fp] for fp in sorted(search.findings)),
        seed=seed,
        examples=examples,
        calls=search.calls,
        seconds=time.perf_counter() - start,
        known=dict(sorted(search.known.items())),
    )


class _Search:
    """The state of one fuzz search across its rounds: what was found, what the registry explained."""

    def __init__(self, target: Target, registry: Registry, profile: str, oracle: Callable[..., Expected]) -> None:
        self.target = target
        self.registry = registry
        self.profile = profile
        self.oracle = oracle
        self.findings: dict[str, Finding] = {}
        self._keras: dict[str, Any] | None = None
        self.known: Counter[str] = Counter()
        self.calls = 0
        self._crash: list[str] = []
        # Draws that killed or hung their worker this round: each costs a worker (and a hang its limit), so
        # after PROCESS_FAILURES of them a round evaluates only Hypothesis's final replays (see check)
        self._process_failures = 0

    def run(self, hypothesis: Any, strategy: Any, *, examples: int, seed: int) -> None:
        """One Hypothesis run: generate, and shrink each new failure kind to a recorded Finding."""
        from hypothesis.control import current_build_context

        done = {f.comparison.kind for f in self.findings.values()}
        self._process_failures = 0

        @hypothesis.settings(
            max_examples=examples,
            database=None,
            deadline=None,
            derandomize=False,
            phases=(hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink),
            suppress_health_check=list(hypothesis.HealthCheck),
            report_multiple_bugs=True,
            verbosity=hypothesis.Verbosity.quiet,
            print_blob=False,
        )
        @hypothesis.seed(seed)
        @hypothesis.given(strategy)
        def check(case: Case) -> None:
            final = current_build_context().is_final
            kind = self.check(case, final=final)
            if kind is not None and kind not in done:
                raise _DIVERGENCE_BY_KIND[kind](case.id)

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - divergences are expected here; anything else is re-raised
            # a draw that crashed once and not on its replay (Flaky) is not a finding; the next round goes on
            others = [e for e in _leaves(exc) if not isinstance(e, (_Divergence, hypothesis.errors.Flaky))]
            if others:
                detail = self._crash[0] if self._crash else f"{type(others[0]).__name__}: {others[0]}"
                raise RuntimeError(f"the harness failed during the fuzz search (seed {seed}): {detail}") from others[0]

    def check(self, case: Case, *, final: bool) -> str | None:
        """The failure kind of ``case`` if it is an unexplained divergence (recorded when ``final``), else None.

        Once PROCESS_FAILURES draws of this round killed or hung their worker, the rest of the round's
        shrinking is not evaluated (None: as if they passed) and only Hypothesis's final replay of the smallest
        failing draw runs: shrinking a crash would otherwise cost a worker for every step that still crashes.
        """
        if not final and self._process_failures >= PROCESS_FAILURES:
            return None
        try:
            exp, out, comparison = self._evaluate(case)
        except Exception as exc:
            if final:
                self._crash.append(f"{type(exc).__name__}: {exc}; case: {json.dumps(case.as_dict(), allow_nan=False)}")
            raise
        if comparison.kind in PROCESS_KINDS:
            self._process_failures += 1
        if comparison.agrees:
            return None
        entry = explanation(self.registry, record_facets(case, exp, self.profile), comparison.kinds)
        if entry is not None:
            self.known[entry.id] += 1
            return None
        assert comparison.kind is not None
        if final:
            fp = fingerprint(case, comparison.kind)
            self.findings[fp] = _finding(fp, case, exp, out, comparison)
        return comparison.kind

    def _settings(self) -> dict[str, Any]:
        """The epsilon and floatx the target's Keras has (keras.json under KERAS_HOME, or a call), which the
        reference judges against as ``run`` does; read once, from the target or the versions its workers sent."""
        if self._keras is None:
            if hasattr(self.target, "keras_settings"):
                self._keras = dict(self.target.keras_settings())
            else:
                v = self.target.versions() if hasattr(self.target, "versions") else {}
                self._keras = {k: v[f"keras_{k}"] for k in ("epsilon", "floatx") if v.get(f"keras_{k}") is not None}
        return self._keras

    def _evaluate(self, case: Case) -> tuple[Expected, Outcome, Comparison]:
        self.calls += 1
        out = self.target.run(case)  # first: a worker's versions (and its Keras's settings) come with its first reply
        exp = self.oracle(case, profile=self.profile, **self._settings()) if self.oracle is expected else (
            self.oracle(case, profile=self.profile))  # fmt: skip
        failure = process_failure(out)  # the call killed or hung its worker (PooledTarget)
        if failure is not None:
            assert out.error is not None
            return exp, out, Comparison(failure, f"case: {case.id}\n{out.error.partition(': ')[2]}")
        return exp, out, compare(case, exp, out)

    def fewer_elements(self, finding: Finding, *, budget: int = 200) -> Finding:
        """Delete batch rows, time steps and columns from a finding while it still diverges the same way.

        Hypothesis shrinks sizes and values, but it seldom lowers two sizes together (the batch and the
        length of per-sample weights, say): every array drawn after them would shift.  This pass deletes
        one index along one axis at a time (with the matching weights) and keeps the first deletion after
        which the case still fails with the same first kind and no registry entry explains it, until no
        deletion does or ``budget`` cases have been evaluated: the result is 1-minimal under deletion.
        """
        from harness.generate.regimes import regime_of, shape_kind

        kind = finding.comparison.kind
        spent = 0
        if kind in PROCESS_KINDS:  # each deletion that still crashes or hangs costs a worker
            budget = min(budget, PROCESS_FAILURES)
        while spent < budget:
            for candidate in _one_index_fewer(finding.case, shape_kind):
                candidate = replace(candidate, tags={**candidate.tags, "regime": regime_of(candidate)})
                exp, out, comparison = self._evaluate(candidate)
                spent += 1
                facets = record_facets(candidate, exp, self.profile)
                if comparison.kind == kind and explanation(self.registry, facets, comparison.kinds) is None:
                    finding = _finding(finding.fingerprint, candidate, exp, out, comparison)
                    break
                if spent >= budget:
                    break
            else:
                break
        return finding


def _finding(fp: str, case: Case, exp: Expected, out: Outcome, comparison: Comparison) -> Finding:
    """The Finding of ``case``, renamed ``fuzz/<fp>`` (its message too)."""
    saved = replace(case, id=f"fuzz/{fp}")
    message = comparison.message.replace(f"case: {case.id}", f"case: {saved.id}")
    return Finding(fp, saved, exp, out, replace(comparison, message=message))


def _one_index_fewer(case: Case, shape_kind: Callable[..., str | None]) -> Iterator[Case]:
    """``case`` with one index deleted along one axis both inputs have, weights cut to match, the shape
    kind unchanged (so a (B, C) batch keeps two columns and every batch one sample)."""
    y, p, w = case.y_true, case.y_pred, case.sample_weight
    rank = max(y.ndim, p.ndim)
    if rank == 0:
        return
    axis = case.options.axis % rank
    for k in range(min(y.ndim, p.ndim)):
        for i in range(y.shape[k]):
            fewer_y, fewer_p = np.delete(y, i, axis=k), np.delete(p, i, axis=k)
            if shape_kind(fewer_y.shape, fewer_p.shape) != case.tags.get("shape"):
                continue
            fewer_w = w
            if w is not None and w.ndim > 0 and k != axis:
                loss_axis = k if k < axis else k - 1  # the loss has every input axis but ``axis``
                if case.tags.get("weights") == "per_element":
                    fewer_w = np.delete(w, i, axis=loss_axis)
                elif loss_axis == 0:  # per-sample, column and zero weights follow the loss's first axis
                    fewer_w = np.delete(w, i, axis=0)
            yield replace(case, y_true=fewer_y, y_pred=fewer_p, sample_weight=fewer_w)


def save_finding(
    finding: Finding,
    *,
    out: str | Path,
    regressions: str | Path = DEFAULT_REGRESSIONS,
    provenance: Mapping[str, Any] | None = None,
) -> SavedFinding:
    """Write ``out/repro_<fp>.py`` (standalone: exit 1 while the divergence reproduces) and, unless it is
    there already, ``regressions/<fp>.json`` (a case file, saved.save_case: the case, and ``finding``: kind,
    message and ``provenance``; saved.read_saved reads both back)."""
    factory = (provenance or {}).get("loss_factory")
    repro = atomic_write_text(
        Path(out) / f"repro_{finding.fingerprint}.py",
        snippet(finding.case, finding.expected, actual=finding.actual, loss_factory=factory),
    )
    regression = Path(regressions) / f"{finding.fingerprint}.json"
    if regression.exists():
        return SavedFinding(repro, regression, new=False)
    about = {
        "fingerprint": finding.fingerprint,
        "kind": finding.comparison.kind,
        "message": finding.comparison.message,
        "actual": finding.actual,
        **(provenance or {}),
    }
    save_case(regression, finding.case, finding=about)  # a case file (generate/saved.py): replay reads it
    return SavedFinding(repro, regression, new=True)
