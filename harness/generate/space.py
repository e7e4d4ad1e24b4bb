"""The facets of a case, their values, and 2-way coverage: how much of the case space a suite exercises.

A *facet* is one way cases differ that can change what the loss computes: the entry point and how it is
called, the shape and its size, the dtypes, every option, the weights, a mask, what the labels are and
where the values sit.  ``FACETS`` names them and their values in one place; ``facets_of`` reads them off
any case (from its content, not its id, so every family is measured the same way); ``RULES`` says which
pairs of values cannot meet in one case, each with its reason; ``coverage`` measures a suite's single
values and pairs against the feasible ones (2-way combinatorial coverage, as NIST's ACTS counts it); and
``covering_rows`` builds a small set of cases that covers every feasible pair (a greedy covering array in
the manner of AETG, not a full product), which ``grid`` turns into the ``pairs`` family.

May import: the ground floor and the oracle (for the clip bound a regime is named after).
"""

from __future__ import annotations

import functools
import itertools
import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.case import API_LOSS_CLASS, Case, Options, compute_dtype_of
from harness.dtypes import FLOAT_DTYPES, float_format, round_to
from harness.errors import UsageError
from harness.generate.regimes import regime_of
from harness.oracle.keras3 import Keras3

__all__ = [
    "FACETS",
    "NA",
    "RULES",
    "Coverage",
    "coverage",
    "covering_rows",
    "facets_of",
    "feasible",
    "label_domain",
    "loss_shape",
    "weights_of",
    "realize",
    "size_bucket",
]

NA = "n/a"  # a facet the entry point does not have (the function APIs take no reduction, for one)

FUNCTIONS = ("binary_crossentropy", "ops.binary_crossentropy", "nn.sigmoid_cross_entropy_with_logits")
METRIC = "metrics.BinaryCrossentropy"

# Size buckets by element count of y_pred; each bucket's realised sizes are odd or prime (see _dims).
SIZES = {"0": (0, 0), "1": (1, 1), "small": (2, 64), "medium": (65, 512), "large": (513, 8192), "huge": (8193, 1 << 17)}
NIGHTLY_SIZES = ("huge",)  # only in the nightly suite

FACETS: dict[str, tuple[Any, ...]] = {
    "api": (API_LOSS_CLASS, *FUNCTIONS, METRIC),
    "mode": ("eager", "function", "xla"),
    "shape": ("rank1", "B1", "BC", "BTC", "BTHC", "labels_B_preds_B1", "labels_B1_preds_B"),
    "size": tuple(SIZES),
    "pred_dtype": FLOAT_DTYPES,
    "loss_dtype": ("default", *FLOAT_DTYPES, NA),
    "from_logits": (False, True),
    "label_smoothing": ("zero", "tiny", "typical", "one", "above_one", "negative", NA),
    "axis": ("last", "other", NA),
    "reduction": ("sum", "sum_over_batch_size", "mean", "mean_with_sample_weight", "none", "None", NA),
    "weights": ("none", "scalar", "per_sample", "column", "per_element", "zeros"),
    "mask": ("none", "mask"),
    "labels": ("hard", "soft", "outside", "nan", "infinite", "integer", "boolean"),
    "regime": ("typical", "boundary", "large", "infinite", "tiny", "nan"),
}

# The value each option class stands for when a case is realised.
SMOOTHING = {"zero": 0.0, "tiny": float(np.finfo(np.float32).tiny), "typical": 0.1, "one": 1.0, "above_one": 1.5, "negative": -0.25}
_RANK = {"rank1": 1, "B1": 2, "BC": 2, "BTC": 3, "BTHC": 4, "labels_B_preds_B1": 2, "labels_B1_preds_B": 2}


def size_bucket(n: int) -> str:
    return next(name for name, (lo, hi) in SIZES.items() if lo <= n <= hi) if n <= SIZES["huge"][1] else "huge"


def _compute_dtype(api: str, pred_dtype: str, loss_dtype: str) -> str:
    """The compute dtype of a row's facet values (case.compute_dtype_of, the one rule; "default" is no dtype)."""
    return compute_dtype_of(api, pred_dtype, None if loss_dtype in ("default", NA) else loss_dtype)


def _max_terms(dtype: str) -> int:
    """The largest sum the worst-case bound still judges: (n - 1) u <= 1/4, so gamma(n - 1) <= 1/3.  Past
    it the bound (tolerance.sum_error) says little, and at n u >= 1 it is infinite: no documented bound
    judges a float16 sum of 2,048 terms or a bfloat16 one of 256."""
    return int(0.25 / float_format(dtype).unit_roundoff) + 1


# -- which pairs cannot meet, and why -------------------------------------------------------------------

Rule = Callable[[str, Any, str, Any], str | None]


def _api_rules(fa: str, va: Any, fb: str, vb: Any) -> str | None:
    if fa != "api":
        return None
    api, facet, value = va, fb, vb
    takes = {
        "reduction": api == API_LOSS_CLASS,
        "loss_dtype": api in (API_LOSS_CLASS, METRIC),
        "label_smoothing": api in (API_LOSS_CLASS, METRIC, "binary_crossentropy"),
        "axis": api in (API_LOSS_CLASS, "binary_crossentropy"),
    }
    if facet in takes and (value == NA) == takes[facet]:
        return f"{api} {'takes' if takes[facet] else 'has no'} {facet} option"
    if facet == "weights" and value != "none" and api in FUNCTIONS:
        return f"{api} takes no sample_weight"
    if facet == "weights" and api == METRIC and value not in ("none", "per_sample"):
        return "the metric's weights are one per update_state call (the harness's per_sample form)"
    if facet == "from_logits" and api == "nn.sigmoid_cross_entropy_with_logits" and value is False:
        return "tf.nn.sigmoid_cross_entropy_with_logits takes logits only"
    if facet == "regime" and api == "nn.sigmoid_cross_entropy_with_logits" and value == "boundary":
        return "tf.nn.sigmoid_cross_entropy_with_logits takes logits only: the clip bounds are probability boundaries"
    if facet == "mask" and value == "mask" and api != API_LOSS_CLASS:
        return "a Keras mask reaches the loss class only (the metric is fed slices, which drop the mask)"
    if facet == "shape" and api == METRIC and value in ("rank1", "labels_B_preds_B1", "labels_B1_preds_B"):
        return "the metric's leading axis counts update_state calls: it needs equal ranks of at least 2"
    if facet == "shape" and api == METRIC and value == "B1":
        return "the metric's leading axis counts update_state calls: (B, 1) inputs would make one traced call per sample"
    if facet == "size" and api == METRIC and value == "0":
        return "an empty batch has no slices to feed update_state"

    return None


def _shape_rules(fa: str, va: Any, fb: str, vb: Any) -> str | None:
    if fa == "shape" and fb == "axis" and vb == "other" and va in ("rank1", "labels_B_preds_B1", "labels_B1_preds_B"):
        return "one feature axis: a rank-1 input, or one whose ranks Keras reconciles, has no other axis to reduce"
    if fa == "shape" and fb == "weights":
        if va == "rank1" and vb not in ("none", "scalar"):
            return "a rank-1 batch has one scalar loss: no sample to weight"
        if vb == "per_element" and _RANK[va] < 3:
            return "per-element weights differ from per-sample ones only on a loss of rank 2 (inputs of rank 3 or 4)"
    if fa == "shape" and fb == "size" and vb == "0" and va not in ("BC", "BTC"):
        return "an empty batch is built as (0, C) or (0, T, C), as Keras users meet it"
    if fa == "shape" and fb == "size" and vb == "1" and va == "BC":
        return "a (B, C) batch of one element is (1, 1): the B1 shape"
    if fa == "shape" and fb == "mask" and vb == "mask" and _RANK[va] < 3:
        return "the harness's mask marks time steps: it needs inputs of rank 3 or more"
    if fa == "axis" and fb == "weights" and va == "other" and vb not in ("none", "scalar"):
        return "per-sample weights are defined against the batch axis of the default axis"
    if fa == "axis" and fb == "mask" and va == "other" and vb == "mask":
        return "a time-step mask is defined on the loss of the default axis"
    if fa == "size" and fb == "weights" and va == "0" and vb != "none":
        return "an empty batch has no sample to weight"
    if fa == "size" and fb == "mask" and va == "0" and vb == "mask":
        return "an empty batch has no time step to mask"
    return None


def _dtype_rules(fa: str, va: Any, fb: str, vb: Any) -> str | None:
    if fa == "size" and fb in ("pred_dtype", "loss_dtype") and vb in FLOAT_DTYPES:
        if SIZES[va][1] > _max_terms(vb):
            return f"{vb} sums of more than {_max_terms(vb)} terms have no useful worst-case bound ((n - 1) u > 1/4)"
    return None


def _value_rules(fa: str, va: Any, fb: str, vb: Any) -> str | None:
    if fa == "from_logits" and fb == "regime":
        if va is False and vb in ("large", "infinite"):
            return "large and infinite values are logits: a probability lies in [0, 1]"
        if va is True and vb == "boundary":
            return "the clip bounds eps and 1 - eps are probability boundaries"
    if fa == "size" and fb in ("regime", "labels") and va == "0" and vb not in ("typical", "hard"):
        return "an empty batch holds no value to place"
    if fa == "labels" and fb == "regime" and va in ("nan", "infinite") and vb in ("nan", "infinite"):
        return "by design, one non-finite input class a case: a NaN or infinite prediction beside a NaN or infinite label makes any reduction NaN and hides both"
    if fa == "size" and fb == "regime" and va == "1" and vb in ("boundary",):
        return "the boundary regime pairs each bound with both labels: it needs two elements or more"
    return None


def _entry_points(facet: str, value: Any) -> frozenset[str] | None:
    """The entry points a facet value can occur with, or None where every entry point can."""
    apis = frozenset(FACETS["api"])
    if facet in ("loss_dtype", "label_smoothing", "axis", "reduction"):
        return frozenset(a for a in apis if (_api_rules("api", a, facet, value) is None))
    if facet in ("weights", "mask", "from_logits", "shape", "size", "regime"):
        found = frozenset(a for a in apis if _api_rules("api", a, facet, value) is None)
        return None if found == apis else found
    return None


def _implied_rules(fa: str, va: Any, fb: str, vb: Any) -> str | None:
    """Two values each of which only some entry points allow, and no entry point allows both."""
    if "api" in (fa, fb):
        return None
    a, b = _entry_points(fa, va), _entry_points(fb, vb)
    if a is not None and b is not None and not a & b:
        return f"no entry point allows both {fa}={va} and {fb}={vb}"
    return None


RULES: tuple[Rule, ...] = (_api_rules, _shape_rules, _dtype_rules, _value_rules, _implied_rules)
_ORDER = {name: i for i, name in enumerate(FACETS)}


@functools.cache
def infeasible(fa: str, va: Any, fb: str, vb: Any) -> str | None:
    """Why values ``va`` of facet ``fa`` and ``vb`` of ``fb`` cannot meet in one case, or None."""
    if _ORDER[fa] > _ORDER[fb]:
        fa, va, fb, vb = fb, vb, fa, va
    for rule in RULES:
        why = rule(fa, va, fb, vb) or rule(fb, vb, fa, va)
        if why:
            return why
    return None


def feasible(row: Mapping[str, Any]) -> bool:
    names = [n for n in FACETS if n in row]
    return all(infeasible(a, row[a], b, row[b]) is None for a, b in itertools.combinations(names, 2))


def _pairs(space: Mapping[str, Sequence[Any]]) -> Iterable[tuple[str, Any, str, Any]]:
    for a, b in itertools.combinations(space, 2):
        for va, vb in itertools.product(space[a], space[b]):
            yield a, va, b, vb


# -- measuring ------------------------------------------------------------------------------------------


def facets_of(case: Case) -> dict[str, Any]:
    """The facet values of ``case``, read off its content."""
    api, o = case.api, case.options
    takes_reduction = api == API_LOSS_CLASS
    takes_dtype = api in (API_LOSS_CLASS, METRIC)
    takes_smoothing = api in (API_LOSS_CLASS, METRIC, "binary_crossentropy")
    takes_axis = api in (API_LOSS_CLASS, "binary_crossentropy")
    return {
        "api": api,
        "mode": case.mode,
        "shape": _shape_kind(case),
        "size": size_bucket(int(case.y_pred.size)),
        "pred_dtype": case.pred_dtype,
        "loss_dtype": (o.dtype or "default") if takes_dtype else NA,
        "from_logits": True if api == "nn.sigmoid_cross_entropy_with_logits" else o.from_logits,
        "label_smoothing": _smoothing_class(o.label_smoothing) if takes_smoothing else NA,
        "axis": ("last" if o.axis in (-1, max(case.y_pred.ndim, case.y_true.ndim) - 1) else "other") if takes_axis else NA,
        "reduction": (str(o.reduction) if o.reduction in FACETS["reduction"] or o.reduction is None else "invalid")
        if takes_reduction
        else NA,
        "weights": _weight_form(case),
        "mask": "none" if case.mask is None else "mask",
        "labels": label_domain(case),
        "regime": _regime(case),
    }


def _shape_kind(case: Case) -> str:
    yt, yp = case.y_true.shape, case.y_pred.shape
    if len(yt) != len(yp):
        return "labels_B_preds_B1" if len(yp) > len(yt) else "labels_B1_preds_B"
    if len(yp) == 2:
        return "B1" if yp[1] == 1 else "BC"
    return {1: "rank1", 3: "BTC", 4: "BTHC"}.get(len(yp), f"rank{len(yp)}")


def _smoothing_class(ls: float) -> str:
    if ls == 0:
        return "zero"
    if ls == 1:
        return "one"
    if ls > 1:
        return "above_one"
    if ls < 0:
        return "negative"
    return "tiny" if ls < float(np.finfo(np.float32).tiny) * 2 else "typical"


def _weight_form(case: Case) -> str:
    w = case.sample_weight
    if w is None:
        return "none"
    if w.ndim == 0:
        return "scalar"
    if w.size and not np.any(w):
        return "zeros"
    form = case.tags.get("weights")
    if form is not None and form in FACETS["weights"]:
        return form
    return "column" if w.ndim == 2 and w.shape[-1] == 1 else "per_sample" if w.ndim == 1 else "per_element"


def label_domain(case: Case) -> str:
    """hard, soft, outside [0, 1], nan, infinite, integer (other than 0 and 1) or boolean."""
    y = np.asarray(case.y_true, dtype=np.float64)
    if case.true_dtype == "bool":
        return "boolean"
    if case.true_dtype.startswith("int"):
        return "integer" if np.any((y != 0) & (y != 1)) else "hard"
    if np.any(np.isnan(y)):
        return "nan"
    if np.any(np.isinf(y)):
        return "infinite"
    if np.any((y < 0) | (y > 1)):
        return "outside"
    return "hard" if np.all((y == 0) | (y == 1)) else "soft"


def _regime(case: Case) -> str:
    """nan > infinite > large (logits) or boundary (probabilities: exactly 0, 1 or a clip bound) > tiny
    (nonzero and below y_pred's smallest normal) > typical."""
    p = np.asarray(case.y_pred, dtype=np.float64)
    if np.any(np.isnan(p)):
        return "nan"
    small = float_format(case.pred_dtype if case.pred_dtype in FLOAT_DTYPES else "float32").smallest_normal
    tiny = bool(np.any((p != 0) & (np.abs(p) < small)))
    if case.options.from_logits or case.api == "nn.sigmoid_cross_entropy_with_logits" or case.producer:
        if np.any(np.isinf(p)):
            return "infinite"
        if np.any(np.abs(p) >= 50):
            return "large"
        return "tiny" if tiny else "typical"
    dtype = case.compute_dtype if case.compute_dtype in FLOAT_DTYPES else "float32"
    bounds = (0.0, 1.0, float(round_to(1e-7, dtype)), float(round_to(1 - 1e-7, dtype)))
    if np.any(np.isin(p, bounds)):
        return "boundary"
    return "tiny" if tiny else "typical"


@dataclass(frozen=True)
class Coverage:
    """Single values and pairs of facet values: exercised by the suite, out of the feasible ones."""

    singles: int
    singles_feasible: int
    pairs: int
    pairs_feasible: int
    missing_singles: tuple[tuple[str, Any], ...]
    missing_pairs: tuple[tuple[str, Any, str, Any], ...]
    infeasible: tuple[tuple[str, Any, str, Any, str], ...]

    @property
    def single_share(self) -> float:
        return self.singles / self.singles_feasible if self.singles_feasible else 1.0

    @property
    def pair_share(self) -> float:
        return self.pairs / self.pairs_feasible if self.pairs_feasible else 1.0

    def as_dict(self, *, listed: int = 50) -> dict[str, Any]:
        return {
            "single_values": {"covered": self.singles, "feasible": self.singles_feasible, "share": round(self.single_share, 4)},
            "pairs": {"covered": self.pairs, "feasible": self.pairs_feasible, "share": round(self.pair_share, 4)},
            "missing_singles": [f"{f}={v}" for f, v in self.missing_singles],
            "missing_pairs": [f"{a}={va} & {b}={vb}" for a, va, b, vb in self.missing_pairs[:listed]],
            "missing_pairs_count": len(self.missing_pairs),
            "infeasible_reasons": _reasons(self.infeasible),
        }


def _reasons(infeasible: Sequence[tuple[str, Any, str, Any, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for *_, why in infeasible:
        out[why] = out.get(why, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def space_for(suite: str = "default") -> dict[str, tuple[Any, ...]]:
    """The facet values a suite is measured against: the nightly suite adds the largest size bucket."""
    if suite in ("nightly", "exhaustive"):  # the exhaustive suite is the nightly's cases and the audit
        return dict(FACETS)
    return {k: tuple(v for v in vs if not (k == "size" and v in NIGHTLY_SIZES)) for k, vs in FACETS.items()}


def coverage(cases: Iterable[Case], space: Mapping[str, Sequence[Any]] | None = None) -> Coverage:
    """2-way coverage of ``cases`` over ``space`` (default: the default suite's facet values)."""
    space = space_for() if space is None else space
    seen_single: set[tuple[str, Any]] = set()
    seen_pair: set[tuple[str, Any, str, Any]] = set()
    names = list(space)
    for case in cases:
        f = facets_of(case)
        for n in names:
            seen_single.add((n, f[n]))
        for a, b in itertools.combinations(names, 2):
            seen_pair.add((a, f[a], b, f[b]))
    feasible_singles = [(n, v) for n in names for v in space[n] if any(
        infeasible(n, v, m, w) is None for m in names if m != n for w in space[m]
    )]  # fmt: skip
    infeasible_pairs, feasible_pairs = [], []
    for a, va, b, vb in _pairs(space):
        why = infeasible(a, va, b, vb)
        if why:
            infeasible_pairs.append((a, va, b, vb, why))
        else:
            feasible_pairs.append((a, va, b, vb))
    covered_pairs = [p for p in feasible_pairs if p in seen_pair]
    return Coverage(
        singles=sum(1 for s in feasible_singles if s in seen_single),
        singles_feasible=len(feasible_singles),
        pairs=len(covered_pairs),
        pairs_feasible=len(feasible_pairs),
        missing_singles=tuple(s for s in feasible_singles if s not in seen_single),
        missing_pairs=tuple(p for p in feasible_pairs if p not in seen_pair),
        infeasible=tuple(infeasible_pairs),
    )


# -- covering every feasible pair ---------------------------------------------------------------------


def covering_rows(space: Mapping[str, Sequence[Any]], *, seed: int = 0, candidates: int = 30) -> list[dict[str, Any]]:
    """Rows (one value per facet) that together hold every feasible pair of ``space``.

    Greedy, as AETG builds a covering array: each new row starts from an uncovered pair, then fills the
    other facets one at a time (in a seeded random order) with the value that covers most uncovered pairs
    while keeping the row feasible; of ``candidates`` such rows the best is kept.  Deterministic for a seed.
    """
    rng = np.random.default_rng([seed, zlib.crc32(b"covering")])
    names = list(space)
    uncovered = {(a, va, b, vb) for a, va, b, vb in _pairs(space) if infeasible(a, va, b, vb) is None}
    # the same facts by value, for set operations in _grow: what each value may not meet, and the values
    # it has an uncovered pair with
    bad = {(n, v): frozenset((m, w) for m in names if m != n for w in space[m] if infeasible(n, v, m, w))
           for n in names for v in space[n]}  # fmt: skip
    partners: dict[tuple[str, Any], set[tuple[str, Any]]] = {(n, v): set() for n in names for v in space[n]}
    for a, va, b, vb in uncovered:
        partners[(a, va)].add((b, vb))
        partners[(b, vb)].add((a, va))
    rows: list[dict[str, Any]] = []
    order = sorted(uncovered, key=repr)
    while uncovered:
        best, best_gain = None, -1
        order = [p for p in order if p in uncovered]
        start = order[int(rng.integers(len(order)))]
        tries = 0
        while tries < candidates or (best is None and tries < 50 * candidates):
            tries += 1
            row = _grow(start, names, space, bad, partners, rng)
            if row is None:
                continue
            held = set(row.items())
            gain = sum(len(partners[item] & held) for item in held) // 2  # each uncovered pair counted twice
            if gain > best_gain:
                best, best_gain = row, gain
        done = [start] if best is None else [  # a pair no feasible row completes is not coverable
            (a, best[a], b, best[b]) for a, b in itertools.combinations(names, 2)]  # fmt: skip
        for a, va, b, vb in done:
            if (a, va, b, vb) in uncovered:
                uncovered.discard((a, va, b, vb))
                partners[(a, va)].discard((b, vb))
                partners[(b, vb)].discard((a, va))
        if best is not None:
            rows.append(best)
    return rows


def _grow(start, names, space, bad, partners, rng) -> dict[str, Any] | None:
    a, va, b, vb = start
    row: dict[str, Any] = {a: va, b: vb}
    held = {(a, va), (b, vb)}
    for n in [names[i] for i in rng.permutation(len(names))]:
        if n in row:
            continue
        options = [v for v in space[n] if bad[(n, v)].isdisjoint(held)]
        if not options:
            return None
        gains = [len(partners[(n, v)] & held) for v in options]
        top = max(gains)
        choices = [v for v, g in zip(options, gains, strict=True) if g == top]
        if n in _CHEAPEST_FIRST:  # a tie costs nothing in coverage: take the value that runs fastest
            row[n] = min(choices, key=space[n].index)
        else:
            row[n] = choices[int(rng.integers(len(choices)))]
        held.add((n, row[n]))
    return row


# Facets whose values are listed cheapest first (eager before a trace before an XLA compile; smaller sizes
# first): where values tie on the pairs they would cover, the row takes the cheapest, so the covering array
# pays for a trace or a large tensor only where a pair asks for it.
_CHEAPEST_FIRST = frozenset({"mode", "size"})


# -- a row as a case ------------------------------------------------------------------------------------

_DIMS = {  # odd and prime sizes; the batch of one is "1"
    "small": {1: (37,), 2: (13, 3), 3: (5, 3, 2), 4: (3, 2, 2, 3)},
    "medium": {1: (509,), 2: (101, 5), 3: (31, 5, 3), 4: (11, 7, 3, 2)},
    "large": {1: (4099,), 2: (1031, 5), 3: (257, 7, 3), 4: (67, 7, 3, 3)},
    "huge": {1: (65537,), 2: (16411, 5), 3: (4099, 7, 3), 4: (1031, 7, 3, 3)},
}


def _dims(shape: str, size: str, *, metric: bool = False) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(label shape, prediction shape) of a shape kind at a size bucket.  For the metric, whose leading axis
    counts update_state calls (each one a step of the traced function), the sizes run the other way round:
    a few calls on large slices."""
    rank = _RANK[shape]
    if size == "0":
        pred: tuple[int, ...] = (0, 3) if rank == 2 else (0, 2, 3)
    elif size == "1":
        pred = (1,) * rank
    else:
        pred = _DIMS[size][rank][::-1] if metric else _DIMS[size][rank]
    if shape == "B1":
        pred = (math.prod(pred), 1)
    if shape == "labels_B_preds_B1":
        return (math.prod(pred),), (math.prod(pred), 1)
    if shape == "labels_B1_preds_B":
        return (math.prod(pred), 1), (math.prod(pred),)
    return pred, pred


def realize(row: Mapping[str, Any], *, seed: int, index: int) -> Case:
    """The case a covering row stands for: shapes, dtypes, values and options as its facets say."""
    rid = "/".join(f"{k}={row[k]}" for k in ("api", "mode", "shape", "size"))
    cid = f"pairs/{index:03d}/{rid}"
    rng = np.random.default_rng([seed, zlib.crc32(cid.encode())])
    api, pdt = row["api"], row["pred_dtype"]
    from_logits = bool(row["from_logits"])
    yshape, pshape = _dims(row["shape"], row["size"], metric=api == METRIC)
    n_pred = math.prod(pshape)
    labels, true_dtype = _labels(row["labels"], pdt, rng, math.prod(yshape))
    preds = _values(row["regime"], from_logits, pdt, rng, n_pred)
    loss_dtype = None if row["loss_dtype"] in ("default", NA) else row["loss_dtype"]
    reduction = None if row["reduction"] in ("None", NA) else row["reduction"]
    rank = len(pshape)
    axis = -1 if row["axis"] in ("last", NA) else (0 if rank == 2 else 1)
    options = Options(
        from_logits=from_logits,
        label_smoothing=SMOOTHING.get(row["label_smoothing"], 0.0),
        axis=axis,
        reduction=reduction,
        dtype=loss_dtype,
    )
    lshape = loss_shape(yshape, pshape, axis)
    weights = weights_of(row["weights"], pshape[0] if pshape else 1, lshape, rng)
    mask = None
    if row["mask"] == "mask":
        mask = rng.integers(0, 2, lshape).astype(bool)
        mask.reshape(-1)[0] = True
    case = Case(
        id=cid,
        y_true=labels.reshape(yshape),
        y_pred=preds.reshape(pshape),
        true_dtype=true_dtype,
        pred_dtype=pdt,
        options=options,
        sample_weight=weights,
        weight_dtype="float32",
        api=api,
        mode=row["mode"],
        mask=mask,
        tags={"family": "pairs", "shape": row["shape"], "weights": row["weights"]},
    )  # fmt: skip
    # the value regime in the fuzz search's vocabulary (generate/regimes.py), which names the input classes of
    # registered divergences precisely; the coverage facet "regime" is read off the values (facets_of)
    return replace(case, tags={**case.tags, "regime": regime_of(case)})


def _labels(domain: str, pred_dtype: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
    if domain == "boolean":
        return rng.integers(0, 2, n).astype(bool), "bool"
    if domain == "integer":
        y = rng.integers(-1, 4, n).astype(np.float64)
        y[: min(n, 2)] = [2.0, -1.0][: min(n, 2)]
        return y, "int32"
    if domain == "hard":
        y = rng.integers(0, 2, n).astype(np.float64)
    elif domain == "soft":
        y = rng.uniform(0, 1, n)
        y[0:1] = 0.25
    elif domain == "outside":
        y = rng.choice(np.asarray([-2.0, -0.5, 1.5, 2.0, 3.0, 0.0, 1.0]), n)
        y[0:1] = 1.5
    elif domain == "nan":
        y = rng.uniform(0, 1, n)
        y[0:1] = math.nan
    elif domain == "infinite":
        y = rng.uniform(0, 1, n)
        y[-1:] = math.inf  # the last element: away from the values a regime places first (see _values)
    else:
        raise ValueError(domain)
    return np.asarray(round_to(y, pred_dtype), dtype=np.float64), pred_dtype


def _values(regime: str, from_logits: bool, dtype: str, rng: np.random.Generator, n: int) -> np.ndarray:
    fmt = float_format(dtype)
    if from_logits:
        x = rng.normal(0.0, 3.0, n)
        if regime == "large":
            x = np.where(rng.integers(0, 2, n) == 0, -1.0, 1.0) * rng.uniform(50.0, 150.0, n)
        elif regime == "infinite":
            x[: min(n, 2)] = [math.inf, -math.inf][: min(n, 2)]
        elif regime == "tiny":
            x[: min(n, 2)] = [fmt.smallest_subnormal, -fmt.smallest_normal][: min(n, 2)]
    else:
        x = rng.uniform(0.02, 0.98, n)
        if regime == "boundary":
            x[: min(n, 4)] = [0.0, 1.0, 1e-7, 1.0 - 1e-7][: min(n, 4)]
        elif regime == "tiny":
            x[: min(n, 2)] = [fmt.smallest_subnormal, fmt.smallest_normal][: min(n, 2)]
    if regime == "nan" and n:
        x[n // 2] = math.nan
    return np.asarray(round_to(x, dtype), dtype=np.float64)


def loss_shape(yshape: tuple[int, ...], pshape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """The unreduced per-sample loss shape: ranks reconciled as Keras does (``Keras3.reconcile_ranks``), then
    the mean drops ``axis``; ``()`` where there is no such axis."""
    _, p, _ = Keras3.reconcile_ranks(np.empty(yshape), np.empty(pshape))
    if p.ndim == 0 or not -p.ndim <= axis < p.ndim:
        return ()
    return tuple(s for i, s in enumerate(p.shape) if i != axis % p.ndim)


def weights_of(form: str, batch: int, loss_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | None:
    """A ``sample_weight`` of a weight form (``FACETS["weights"]``), float32 values; the grid's families and the
    covering array draw them alike."""
    if form == "none":
        return None
    if form == "scalar":
        return np.asarray(2.5)
    if form == "zeros":
        return np.zeros(batch)
    if form == "per_sample":
        return np.asarray(round_to(rng.uniform(0.5, 2.0, batch), "float32"), dtype=np.float64)
    if form == "column":
        return np.asarray(round_to(rng.uniform(0.5, 2.0, (batch, 1)), "float32"), dtype=np.float64)
    if form == "per_element":
        return np.asarray(round_to(rng.uniform(0.5, 2.0, loss_shape), "float32"), dtype=np.float64)
    raise UsageError(f"weights={form!r} is not one of {', '.join(FACETS['weights'])}")
