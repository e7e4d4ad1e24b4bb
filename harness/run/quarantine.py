"""Quarantine by class: when cases of one kind crash or hang again and again, stop paying for each.

A case's *signature* is the facets that choose TensorFlow's code path (``signature``): the entry point and
mode, the options, the dtypes, the shapes' kind (ranks, empty or not), the form of the weights and the value
regime (NaN, infinities, zeros and ones).  They are read from the arrays and options themselves, not from the
grid's tags, so a case drawn by the fuzzer or written by hand has one too.

A *class* is a failure (kind and cause: ``crash`` with its signal, or ``timeout``) and a conjunction of
facet values.  A confirmed failure starts a class with its whole signature, or joins the class of the same
failure whose facets, reduced to those the two share, match no case that completed (passed, failed or
raised, but did not take its worker down): the class grows by dropping the facets its members do not share,
and never over a case known to be fine.  Those shared facets (``conj``) are the most a class can say; its
*rule* (``rule``) is the least: a few of them, just enough that no case that completed matches (chosen
greedily, the facet that sets apart the most completed cases first: ``generalize``).  A class of hangs on
every infinite value then holds every case with an infinity (that ran in eager mode, if traced ones
completed), not only those of the dtypes and options its first members happened to have.

After ``confirm`` members the class is *active*: the cases still to run that match its rule are held back
instead of run, and ``samples`` of them, those least like the members and each other, are run to confirm it.
A case that matches the rule and completes narrows the rule (held cases it no longer matches are run after
all); one that matches the members' shared facets too lifts the class (all its held cases are run).  So a
class never records a case as crashed that a run showed to complete.  When the run has nothing else to do,
the held cases of a class whose samples all failed the same way are recorded at once as that failure,
``inferred``, with the ids of the members that were seen to fail.

Nothing here runs anything: the pool (workers.py) asks and tells.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.case import Case

__all__ = ["CONFIRM", "SAMPLES", "FaultClass", "Quarantine", "signature"]

CONFIRM = 2  # members seen to fail before a class holds its other cases back
SAMPLES = 2  # held cases run to confirm a class before the rest are inferred
# when two facets set apart as many completed cases, the one earlier here goes into a class's rule first: the
# coarse value regimes and code paths before the finer facets that imply them
_PREFERRED = ("empty", "nan", "inf", "mode", "from_logits", "api", "dtype", "pred_dtype", "true_dtype", "weights")


def _smoothing(ls: float) -> str:
    return "0" if ls == 0 else "1" if ls == 1 else "(0,1)"


def _values(a: np.ndarray | None) -> np.ndarray:
    return np.zeros(0) if a is None else np.asarray(a, dtype=np.float64)


def signature(case: Case) -> dict[str, str]:
    """The facets of ``case`` that choose its code path, as strings."""
    o = case.options
    y, p, w = _values(case.y_true), _values(case.y_pred), _values(case.sample_weight)
    found: dict[str, bool] = {}
    for name, a in (("true", y), ("pred", p), ("weight", w)):
        finite = bool(np.isfinite(a).all())  # (the common case: one test instead of two)
        found[f"nan_{name}"] = not finite and bool(np.isnan(a).any())
        found[f"inf_{name}"] = not finite and bool(np.isinf(a).any())
    rank = max(case.y_true.ndim, case.y_pred.ndim)
    if case.sample_weight is None:
        weights = "none"
    elif case.sample_weight.ndim == 0:
        weights = "scalar"
    else:
        weights = f"rank{case.sample_weight.ndim}" + ("-zeros" if not w.any() else "")
    return {
        "api": case.api,
        "mode": case.mode,
        "producer": case.producer or "none",
        "grad": case.grad or "none",
        "mask": "none" if case.mask is None else "mask",
        "route": "none" if case.training is None else case.training.route,
        "strategy": "none" if case.training is None else str(case.training.strategy),
        "from_logits": str(o.from_logits),
        "label_smoothing": _smoothing(o.label_smoothing),
        "axis": "last" if rank and o.axis % rank == rank - 1 else "other",
        "reduction": "none" if o.reduction is None else str(o.reduction),
        "dtype": o.dtype or "default",
        "true_dtype": case.true_dtype,
        "pred_dtype": case.pred_dtype,
        "weight_dtype": case.weight_dtype if case.sample_weight is not None else "none",
        "weights": weights,
        "true_rank": str(case.y_true.ndim),
        "pred_rank": str(case.y_pred.ndim),
        "empty": str(case.y_true.size == 0 or case.y_pred.size == 0),
        "nan": str(found["nan_true"] or found["nan_pred"] or found["nan_weight"]),
        "inf": str(found["inf_true"] or found["inf_pred"] or found["inf_weight"]),
        "zeros_or_ones": str(bool(((p == 0.0) | (p == 1.0)).any())),
        "true_empty": str(case.y_true.size == 0),
        "pred_empty": str(case.y_pred.size == 0),
        **{k: str(v) for k, v in found.items()},
    }


def _matches(conj: Mapping[str, str], sig: Mapping[str, str]) -> bool:
    return all(sig.get(k) == v for k, v in conj.items())


def _preference(facet: str) -> tuple[int, str]:
    return (_PREFERRED.index(facet) if facet in _PREFERRED else len(_PREFERRED), facet)


def generalize(conj: Mapping[str, str], completed: Iterable[Mapping[str, str]]) -> dict[str, str] | None:
    """The fewest facets of ``conj`` (greedily) that no signature in ``completed`` matches, or None when one
    matches all of ``conj``.  Greedy set cover: the facet that sets apart the most completed cases still
    matched goes in first (ties: ``_PREFERRED`` order, then the name)."""
    left = list(completed)
    rule: dict[str, str] = {}
    while left:
        counts = {k: sum(c.get(k) != v for c in left) for k, v in conj.items() if k not in rule}
        best = min(counts, key=lambda k: (-counts[k], _preference(k)), default=None)
        if best is None or counts[best] == 0:
            return None
        rule[best] = conj[best]
        left = [c for c in left if c.get(best) == conj[best]]
    return rule


@dataclass
class FaultClass:
    """Cases that fail alike: ``kind`` (crash or timeout), ``cause`` (the signal, exit code or "hang") and
    the facet values its members share."""

    id: str
    kind: str
    cause: str
    conj: dict[str, str]
    rule: dict[str, str] = field(default_factory=dict)  # the facets that hold cases (generalize)
    member_ids: list[str] = field(default_factory=list)  # the cases seen to fail (confirmed)
    member_sigs: list[dict[str, str]] = field(default_factory=list)  # their signatures, in the same order
    held: dict[int, Case] = field(default_factory=dict)  # matching cases not run
    sampling: set[int] = field(default_factory=set)  # samples out to run
    sampled: int = 0  # samples that failed as the class does
    lifted: str = ""  # why the class was given up (a matching case completed), or ""

    def evidence(self, *, inferred: bool) -> dict[str, Any]:
        return {
            "class": self.id,
            "cause": self.cause,
            "inferred": inferred,
            "confirmed": list(self.member_ids),
            "signature": dict(sorted(self.conj.items())),
            "rule": dict(sorted(self.rule.items())),
        }


class Quarantine:
    """The classes of a run and the cases they hold.  ``enabled=False``: nothing is ever held."""

    def __init__(self, *, confirm: int = CONFIRM, samples: int = SAMPLES, enabled: bool = True) -> None:
        self.confirm = confirm
        self.samples = samples
        self.enabled = enabled
        self.classes: list[FaultClass] = []
        self._passes: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}  # signatures of completed cases
        # signatures by index, with the id of the case they are of: a streamed run numbers each chunk's cases
        # from 0 again through the same pool, so an index alone names another case in the next chunk
        self._sigs: dict[int, tuple[str, dict[str, str]]] = {}

    def signature(self, index: int, case: Case, made: dict[str, str] | None = None) -> dict[str, str]:
        """``signature(case)``, remembered by index; ``made``: that signature as made elsewhere (a worker)."""
        known = self._sigs.get(index)
        if known is None or known[0] != case.id:
            known = self._sigs[index] = (case.id, signature(case) if made is None else made)
        return known[1]

    def _consistent(self, conj: Mapping[str, str]) -> bool:
        """No case that completed matches ``conj``."""
        return not any(_matches(conj, p) for p in self._passes.values())

    def _narrow(self, c: FaultClass, sig: Mapping[str, str]) -> list[tuple[int, Case]]:
        """A case with signature ``sig`` that matches ``c``'s rule completed: the rule takes one more of the
        class's facets, one that sets it apart (the first in ``_PREFERRED`` order).  Returns the held cases the
        rule no longer matches, to be run after all."""
        apart = sorted((k for k, v in c.conj.items() if k not in c.rule and sig.get(k) != v), key=_preference)
        if not apart:  # it matches all the members share: the class is wrong
            c.lifted = c.lifted or "a case with all its facets completed"
            out = sorted(c.held.items())
            c.held.clear()
            return out
        c.rule[apart[0]] = c.conj[apart[0]]
        out = [(i, case) for i, case in sorted(c.held.items()) if not _matches(c.rule, self.signature(i, case))]
        for i, _ in out:
            del c.held[i]
        return out

    def _live(self, kind: str, cause: str) -> Iterable[FaultClass]:
        return (c for c in self.classes if not c.lifted and c.kind == kind and c.cause == cause)

    def active(self, c: FaultClass) -> bool:
        return self.enabled and not c.lifted and len(c.member_ids) >= self.confirm

    # -- what the pool tells -------------------------------------------------------------------------------

    def completed(self, index: int, case: Case, made: dict[str, str] | None = None) -> list[tuple[int, Case]]:
        """``case`` ran to the end in its worker (which may have ``made`` its signature).  Returns the held
        cases of the classes it lifts, to be run."""
        if not self.enabled:
            return []
        sig = self.signature(index, case, made)
        self._passes[tuple(sorted(sig.items()))] = sig
        released: list[tuple[int, Case]] = []
        for c in self.classes:
            c.sampling.discard(index)
            if c.lifted:
                continue
            if _matches(c.conj, sig):
                c.lifted = f"{case.id} matches it and completed"
                released += sorted(c.held.items())
                c.held.clear()
            elif _matches(c.rule, sig):
                released += self._narrow(c, sig)
        return released

    def joins(self, index: int, case: Case, kind: str, cause: str) -> FaultClass | None:
        """The class a suspect (a case that failed once) would join without being run again: one of the same
        failure, with a member, whose facets shared with the suspect's match no completed case."""
        sig = self.signature(index, case)
        best: tuple[int, FaultClass] | None = None
        for c in self._live(kind, cause):
            shared = {k: v for k, v in c.conj.items() if sig.get(k) == v}
            if c.member_ids and self._consistent(shared) and (best is None or len(shared) > best[0]):
                best = (len(shared), c)
        return None if best is None else best[1]

    def confirmed(self, index: int, case: Case, kind: str, cause: str, *, sample_of: str | None = None) -> FaultClass:
        """``case`` failed (``kind``, ``cause``) and that is settled.  Returns its class, grown or new."""
        sig = self.signature(index, case)
        home = next((c for c in self.classes if c.id == sample_of and not c.lifted), None)
        if home is not None and (home.kind, home.cause) == (kind, cause):
            home.sampling.discard(index)
            home.sampled += 1
        else:
            home = self.joins(index, case, kind, cause)
        if home is None:
            digest = hashlib.sha256(f"{kind} {cause} {case.id}".encode()).hexdigest()[:8]
            home = FaultClass(f"{kind}-{cause}-{digest}", kind, cause, dict(sig), dict(sig))
            self.classes.append(home)
        else:
            # (a class that widens wants no new sample: its samples were drawn by its rule, which the members'
            # shared facets only bound, and least like its members)
            shared = {k: v for k, v in home.conj.items() if sig.get(k) == v}
            home.conj = shared
            home.rule = generalize(shared, self._passes.values()) or dict(shared)
        if case.id not in home.member_ids:
            home.member_ids.append(case.id)
            home.member_sigs.append(sig)
        return home

    def sample_failed_otherwise(self, index: int, sample_of: str) -> None:
        """A sample of ``sample_of`` failed, but not as its class does: the class is given up."""
        for c in self.classes:
            if c.id == sample_of and not c.lifted:
                c.lifted = "a sample failed otherwise"
                c.sampling.discard(index)

    def released(self) -> list[tuple[int, Case]]:
        """Held cases of classes lifted since last asked (``sample_failed_otherwise``, ``_narrow``)."""
        out: list[tuple[int, Case]] = []
        for c in self.classes:
            if c.lifted and c.held:
                out += sorted(c.held.items())
                c.held.clear()
        return out

    # -- what the pool asks --------------------------------------------------------------------------------

    def hold(self, job: list[tuple[int, Case]]) -> list[tuple[int, Case]]:
        """The cases of ``job`` to run: those an active class matches are held by it instead."""
        if not self.enabled or not any(self.active(c) for c in self.classes):
            return job
        kept = []
        for index, case in job:
            sig = self.signature(index, case)
            home = next((c for c in self.classes if self.active(c) and _matches(c.rule, sig)), None)
            if home is None:
                kept.append((index, case))
            else:
                home.held[index] = case
        return kept

    def _untested(self, c: FaultClass, index: int) -> set[str]:
        """The facets on which held case ``index`` differs from every member of ``c``: the rule holds it, but
        no case that failed so far had its value there."""
        sig = self.signature(index, c.held[index])
        return {k for k, v in c.conj.items() if sig.get(k) != v}

    def sample_jobs(self) -> list[tuple[str, tuple[int, Case]]]:
        """(class id, case) of held cases to run now, to confirm their class.  A class whose rule holds cases
        that differ from all its members somewhere is sampled until none is left: each sample the held case
        that differs on the most facets no sample of the round covers yet (ties: least like the members and
        the samples before it); one that fails widens the members' shared facets, one that completes narrows
        the rule and releases what it no longer holds.  Then at least ``samples`` in all, least like the
        members."""
        out: list[tuple[str, tuple[int, Case]]] = []
        for c in self.classes:
            if not self.active(c) or c.sampling or not c.held:
                continue
            untested = {i: self._untested(c, i) for i in c.held}
            if c.sampled >= self.samples and not any(untested.values()):
                continue
            seen = list(c.member_sigs)
            covered: set[str] = set()
            for _ in range(self.samples):
                if not c.held:
                    break

                def score(
                    item: tuple[int, Case],
                    seen: list[dict[str, str]] = seen,
                    covered: set[str] = covered,
                    untested: dict[int, set[str]] = untested,
                ) -> tuple[int, int, int]:
                    sig = self.signature(*item)
                    far = min((sum(sig[k] != s.get(k) for k in sig) for s in seen), default=0)
                    return (len(untested[item[0]] - covered), far, -item[0])

                index, case = max(c.held.items(), key=score)
                if covered and not untested[index] - covered and c.sampled + len([1 for cid, _ in out if cid == c.id]) >= self.samples:
                    break  # nothing new to test, and enough samples
                covered |= untested[index]
                del c.held[index]
                c.sampling.add(index)
                seen.append(self.signature(index, case))
                out.append((c.id, (index, case)))
        return out

    def settle(self) -> list[tuple[tuple[int, Case], dict[str, Any]]]:
        """When nothing else is left to run: the held cases of classes whose samples all failed as the class
        does, with their evidence, to be recorded as inferred failures; only those that differ from no
        member's shared facets (``sample_jobs`` samples the others first)."""
        out = []
        for c in self.classes:
            if self.active(c) and c.held and not c.sampling and c.sampled >= self.samples:
                evidence = c.evidence(inferred=True)
                settled = sorted((i, case) for i, case in c.held.items() if not self._untested(c, i))
                out += [(pair, evidence) for pair in settled]
                for i, _ in settled:
                    del c.held[i]
        return out

    def unsettled(self) -> list[tuple[int, Case]]:
        """Every case still held (the run stops early: these did not run)."""
        return sorted((i, case) for c in self.classes for i, case in c.held.items())

    def as_dicts(self) -> list[dict[str, Any]]:
        return [
            {
                "class": c.id,
                "kind": c.kind,
                "cause": c.cause,
                "signature": dict(sorted(c.conj.items())),
                "rule": dict(sorted(c.rule.items())),
                "confirmed": list(c.member_ids),
                "lifted": c.lifted or None,
            }
            for c in self.classes
        ]
