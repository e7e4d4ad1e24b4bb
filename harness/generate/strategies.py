"""Hypothesis strategies over the case space of BinaryCrossentropy: shapes, dtypes, values, weights, options.

Built on ``hypothesis.extra.numpy``.  The value strategies put their weight where a loss breaks: probabilities
exactly 0 and 1, a few ULP from them, at and beside the clip bounds ``eps`` and ``1 - eps``, subnormal;
logits of large magnitude and infinite; NaN only where asked.  ``cases()`` assembles whole ``Case`` objects
with the constructor options, some of them left out so that Keras's defaults are exercised, and the tags the
registry matches on: family ``fuzz``, the shape kind and weight form (the generator's vocabulary,
``generator.SHAPES`` and ``generator.WEIGHT_FORMS``) and a value regime (``regime_of``).

Every strategy shrinks toward the simplest case: the first shape kind, small sizes, options left out, no
weights, values 0; so a shrunk failure keeps only what it needs.  Options are keyword-only and checked when
the strategy is built: a bad one raises UsageError naming the argument and the value.

Hypothesis is an extra (``pip install 'bce-harness[fuzz]'``): this module imports it, fuzz.py imports it when
a search runs, and the rest of the package never does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.case import API_LOSS_CLASS, REDUCTIONS, Case, Options, compute_dtype_of
from harness.dtypes import FLOAT_DTYPES, INPUT_DTYPES, float_format, round_to
from harness.errors import UsageError
from harness.generate.grid import SHAPES, SHORT, WEIGHT_FORMS
from harness.generate.regimes import REGIMES, regime_of, shape_kind
from harness.oracle import EPSILON
from harness.oracle.keras3 import Keras3

__all__ = [
    "LABEL_KINDS",
    "LOSS_DTYPES",
    "MAX_WEIGHT",
    "REGIMES",
    "SHAPE_KINDS",
    "ShapePair",
    "cases",
    "dtypes",
    "labels",
    "logits",
    "loss_shape",
    "option_kwargs",
    "options",
    "probabilities",
    "regime_of",
    "sample_weights",
    "shape_kind",
    "shapes",
]

SHAPE_KINDS: tuple[str, ...] = tuple(SHAPES)
LABEL_KINDS = ("hard", "soft", "integer", "boolean")
LOSS_DTYPES: tuple[str | None, ...] = (None, *FLOAT_DTYPES)
MAX_WEIGHT = 4.0  # sample weights are drawn from [0, MAX_WEIGHT]
_EMPTY_KINDS = ("empty", "empty_BTC")


class ShapePair(NamedTuple):
    """Label and prediction shapes of one call, and their kind (a key of ``generator.SHAPES``)."""

    kind: str
    y_true: tuple[int, ...]
    y_pred: tuple[int, ...]


# -- checks at the door --------------------------------------------------------------------------------


def _int_at_least(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"{name}={value!r} is not an integer >= {low}")
    return value


def _subset(name: str, value: Any, allowed: Sequence[Any]) -> tuple[Any, ...]:
    """A non-empty sequence of items of ``allowed``, kept in the caller's order (shrinking goes to the first)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise UsageError(f"{name}={value!r} is not a sequence of {', '.join(map(repr, allowed))}")
    items = tuple(value)
    bad = [v for v in items if not any(v is a or (type(v) is type(a) and v == a) for a in allowed)]
    if not items or bad:
        raise UsageError(f"{name}={value!r} must be a non-empty sequence of {', '.join(map(repr, allowed))}")
    return items


def _dtype(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise UsageError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _shape(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value
    ):
        raise UsageError(f"{name}={value!r} is not a tuple of sizes")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name}={value!r} is not a bool")
    return value


# -- shapes and dtypes ---------------------------------------------------------------------------------


def shapes(
    *, kinds: Sequence[str] = SHAPE_KINDS, max_side: int = 4, max_size: int = 24
) -> st.SearchStrategy[ShapePair]:
    """Label and prediction shapes of every kind in ``kinds``, at most ``max_side`` per axis and ``max_size``
    elements in all.  ``BC`` has at least two columns (one is ``B1``); the empty kinds have batch size 0."""
    kinds = _subset("kinds", kinds, SHAPE_KINDS)
    _int_at_least("max_side", max_side, 2)
    _int_at_least("max_size", max_size, 2)
    return _shapes(kinds, max_side, max_size)


@functools.cache
def _shapes(kinds: tuple[str, ...], max_side: int, max_size: int) -> st.SearchStrategy[ShapePair]:
    return st.one_of([_shape_of(kind, max_side, max_size) for kind in kinds])


def _shape_of(kind: str, max_side: int, max_size: int) -> st.SearchStrategy[ShapePair]:
    def side(low: int, budget: int) -> st.SearchStrategy[int]:
        return st.integers(low, max(low, min(max_side, budget)))

    @st.composite
    def build(draw: st.DrawFn) -> ShapePair:
        if kind in _EMPTY_KINDS:
            t = draw(side(1, max_size)) if kind == "empty_BTC" else 1
            c = draw(side(1, max_size // t))
            shape = (0, t, c) if kind == "empty_BTC" else (0, c)
            return ShapePair(kind, shape, shape)
        if kind == "BC":
            b = draw(side(1, max_size // 2))
            shape = (b, draw(side(2, max_size // b)))
            return ShapePair(kind, shape, shape)
        b = draw(side(1, max_size))
        if kind == "BTC":
            t = draw(side(1, max_size // b))
            shape = (b, t, draw(side(1, max_size // (b * t))))
            return ShapePair(kind, shape, shape)
        pairs = {
            "rank1": ((b,), (b,)),
            "B1": ((b, 1), (b, 1)),
            "labels_B_preds_B1": ((b,), (b, 1)),
            "labels_B1_preds_B": ((b, 1), (b,)),
        }
        return ShapePair(kind, *pairs[kind])

    return build()


def dtypes(*, allowed: Sequence[str | None] = FLOAT_DTYPES) -> st.SearchStrategy[str | None]:
    """Dtype names from ``allowed``: input dtypes (``dtypes.INPUT_DTYPES``) or, with None, loss dtypes."""
    return st.sampled_from(_subset("allowed", allowed, (None, *INPUT_DTYPES)))


# -- values ----------------------------------------------------------------------------------------------


# Strategies are built once per distinct argument tuple (functools.cache): building one costs Hypothesis far
# more than drawing from it, and cases() asks for the same few shapes and dtypes over and over.


def _round_value(value: float, dtype: str) -> float:
    return float(round_to(value, dtype))


def _rounded(elements: st.SearchStrategy[float], dtype: str) -> st.SearchStrategy[float]:
    """Draws of ``elements`` rounded to ``dtype`` (kept as float64, as a Case stores them)."""
    return elements.map(functools.partial(_round_value, dtype=dtype))


@functools.cache
def _array(shape: tuple[int, ...], elements: st.SearchStrategy[float]) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=elements)


def _negate_if(pair: tuple[bool, float]) -> float:
    return -pair[1] if pair[0] else pair[1]


def _signed(magnitudes: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    return st.tuples(st.booleans(), magnitudes).map(_negate_if)


def labels(
    shape: tuple[int, ...], *, dtype: str = "float32", kind: str | None = None, allow_nan: bool = False
) -> st.SearchStrategy[np.ndarray]:
    """Labels of ``shape`` as ``dtype`` holds them: integer (int32, int64) and boolean labels are 0 or 1; float
    labels are hard (0 or 1) or soft (anywhere in [0, 1], with weight on 0, 1/2 and 1).  ``kind`` picks one
    of LABEL_KINDS the dtype allows (None: any); ``allow_nan`` (float labels only) mixes NaN in."""
    shape = _shape("shape", shape)
    dtype = _dtype("dtype", dtype, INPUT_DTYPES)
    allowed = {"bool": ("boolean",), "int32": ("integer",), "int64": ("integer",)}.get(dtype, ("hard", "soft"))
    if kind is not None and kind not in allowed:
        raise UsageError(f"kind={kind!r} is not one of {', '.join(allowed)} for dtype={dtype!r}")
    if _flag("allow_nan", allow_nan) and dtype not in FLOAT_DTYPES:
        raise UsageError(f"allow_nan=True needs float labels, not dtype={dtype!r}")
    return st.one_of([_array(shape, _label_elements(k, dtype, allow_nan)) for k in ((kind,) if kind else allowed)])


@functools.cache
def _label_elements(kind: str, dtype: str, allow_nan: bool) -> st.SearchStrategy[float]:
    if kind == "soft":
        elements = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0))
    else:
        elements = st.sampled_from([0.0, 1.0])
    return _rounded(elements | st.just(math.nan) if allow_nan else elements, dtype)


def _ulp(x: float, dtype: str) -> float:
    """The spacing of ``dtype`` at ``x`` > 0 (above x for a power of two)."""
    fmt = float_format(dtype)
    return max(2.0 ** (math.floor(math.log2(x)) - fmt.mant_bits), fmt.smallest_subnormal)


def _probability_specials(dtype: str) -> list[float]:
    """The boundary probabilities of ``dtype``: 0 and 1, a few ULP from each (subnormals near 0), the clip
    bounds eps and 1 - eps as the dtype rounds them with a neighbour on each side, the smallest normal."""
    fmt = float_format(dtype)
    below_one = 2.0 ** -(fmt.mant_bits + 1)
    values = {0.0, 0.5, 1.0}
    values |= {1.0 - k * below_one for k in range(1, 5)}
    values |= {k * fmt.smallest_subnormal for k in range(1, 5)}
    for x in (float(round_to(EPSILON, dtype)), float(round_to(1.0 - EPSILON, dtype)), fmt.smallest_normal):
        u = _ulp(x, dtype)
        values |= {x - u, x, x + u}
    return sorted({float(round_to(v, dtype)) for v in values if 0.0 <= v <= 1.0})


def probabilities(
    shape: tuple[int, ...], *, dtype: str = "float32", allow_nan: bool = False
) -> st.SearchStrategy[np.ndarray]:
    """Probabilities of ``shape`` in [0, 1] as ``dtype`` holds them; half the draws are boundary values
    (exactly 0 and 1, within a few ULP of them, subnormal, at and beside the clip bounds)."""
    shape = _shape("shape", shape)
    dtype = _dtype("dtype", dtype, FLOAT_DTYPES)
    return _array(shape, _probability_elements(dtype, _flag("allow_nan", allow_nan)))


@functools.cache
def _probability_elements(dtype: str, allow_nan: bool) -> st.SearchStrategy[float]:
    elements = st.one_of(st.floats(0.0, 1.0), st.sampled_from(_probability_specials(dtype)))
    return _rounded(elements | st.just(math.nan) if allow_nan else elements, dtype)


def logits(
    shape: tuple[int, ...],
    *,
    dtype: str = "float32",
    allow_nan: bool = False,
    allow_infinity: bool = True,
    max_magnitude: float | None = None,
) -> st.SearchStrategy[np.ndarray]:
    """Logits of ``shape`` as ``dtype`` holds them: typical values in [-16, 16], large magnitudes from 1e2 up
    to ``max_magnitude``, zero, subnormals and the smallest normal, and +-inf unless ``allow_infinity`` is
    False.  ``max_magnitude`` is rounded down to a power of two; by default it is the format's largest value
    / 1024, so that a sum of a few hundred weighted losses cannot overflow (overflow is outside the error
    model of tolerance.py, and the reference does not round to the format's range)."""
    shape = _shape("shape", shape)
    dtype = _dtype("dtype", dtype, FLOAT_DTYPES)
    _flag("allow_nan", allow_nan)
    _flag("allow_infinity", allow_infinity)
    fmt = float_format(dtype)
    if max_magnitude is None:
        max_magnitude = fmt.max / 1024
    if (
        isinstance(max_magnitude, bool)
        or not isinstance(max_magnitude, (int, float))
        or not 1.0 <= max_magnitude <= fmt.max
    ):
        raise UsageError(f"max_magnitude={max_magnitude!r} is not a number in [1, {fmt.max:g}] (the {dtype} range)")
    cap = 2.0 ** math.floor(math.log2(max_magnitude))
    return _array(shape, _logit_elements(dtype, allow_nan, allow_infinity, cap))


@functools.cache
def _logit_elements(dtype: str, allow_nan: bool, allow_infinity: bool, cap: float) -> st.SearchStrategy[float]:
    fmt = float_format(dtype)
    typical = min(16.0, cap)
    branches = [st.floats(-typical, typical)]
    if cap > 1e2:
        branches.append(_signed(st.floats(1e2, cap)))
    specials = [0.0, fmt.smallest_subnormal, 2 * fmt.smallest_subnormal, fmt.smallest_normal, 1e2, 1e4, cap]
    branches.append(_signed(st.sampled_from(sorted(v for v in specials if v <= cap))))
    if allow_infinity:
        branches.append(st.sampled_from([math.inf, -math.inf]))
    if allow_nan:
        branches.append(st.just(math.nan))
    return _rounded(st.one_of(branches), dtype)


# -- sample weights ------------------------------------------------------------------------------------


def _applies(form: str, loss_shape: tuple[int, ...]) -> bool:
    """Whether a weight form means something for a loss of ``loss_shape`` (the generator's rules: a scalar
    loss has no sample to weight; per-element weights on a rank-1 loss are per-sample weights)."""
    rank = len(loss_shape)
    return form in ("none", "scalar") or (rank >= 1 and (form != "per_element" or rank >= 2))


@functools.cache
def _weight_elements(dtype: str) -> st.SearchStrategy[float]:
    return _rounded(st.one_of(st.sampled_from([0.0, 1.0, 0.5, 2.0]), st.floats(0.0, MAX_WEIGHT)), dtype)


@functools.cache
def _weights_of(form: str, loss_shape: tuple[int, ...], dtype: str) -> st.SearchStrategy[np.ndarray | None]:
    values = _weight_elements(dtype)
    shapes_of = {
        "per_sample": loss_shape[:1],
        "column": loss_shape[:1] + (1,),
        "per_element": loss_shape,
    }
    if form == "none":
        return st.none()
    if form == "scalar":
        return values.map(np.asarray)
    if form == "zeros":
        return st.just(np.zeros(loss_shape[:1]))
    return _array(shapes_of[form], values)


def sample_weights(
    loss_shape: tuple[int, ...], *, forms: Sequence[str] = WEIGHT_FORMS, dtype: str = "float32"
) -> st.SearchStrategy[tuple[str, np.ndarray | None]]:
    """(form, weights) for a per-sample loss of ``loss_shape``: every accepted form of ``sample_weight``
    (``generator.WEIGHT_FORMS``: none, a scalar, one per sample ``(B,)``, a column ``(B, 1)``, one per loss
    element, all zeros) among ``forms`` that applies to the shape; values in [0, MAX_WEIGHT] as ``dtype``
    holds them."""
    loss_shape = _shape("loss_shape", loss_shape)
    forms = _subset("forms", forms, WEIGHT_FORMS)
    dtype = _dtype("dtype", dtype, FLOAT_DTYPES)
    usable = [f for f in forms if _applies(f, loss_shape)]
    if not usable:
        raise UsageError(f"forms={forms!r} has no form that applies to loss_shape={loss_shape!r}")
    return st.one_of([st.tuples(st.just(f), _weights_of(f, loss_shape, dtype)) for f in usable])


def loss_shape(pair: ShapePair, axis: int) -> tuple[int, ...]:
    """The shape of the per-sample loss of ``pair`` reduced over ``axis`` (ranks reconciled as Keras does)."""
    _, p, mismatch = Keras3.reconcile_ranks(np.empty(pair.y_true), np.empty(pair.y_pred))
    if mismatch:
        raise UsageError(f"pair={pair!r}: {mismatch}")
    if isinstance(axis, bool) or not isinstance(axis, int) or not -p.ndim <= axis < p.ndim:
        raise UsageError(f"axis={axis!r} is out of range for rank {p.ndim}")
    return tuple(s for i, s in enumerate(p.shape) if i != axis % p.ndim)


# -- options -------------------------------------------------------------------------------------------


def option_kwargs(
    *,
    axes: Sequence[int] = (-1,),
    from_logits: Sequence[bool] = (False, True),
    max_label_smoothing: float = 1.0,
    reductions: Sequence[str | None] = REDUCTIONS,
    dtypes: Sequence[str | None] = LOSS_DTYPES,
) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments of the BinaryCrossentropy constructor.  Each option is sometimes left out (so the
    call uses Keras's default, which ``Options`` mirrors) when its default is among the allowed values."""
    if isinstance(axes, (str, bytes)) or not isinstance(axes, Iterable):
        raise UsageError(f"axes={axes!r} is not a sequence of ints")
    axes = tuple(axes)
    if not axes or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise UsageError(f"axes={axes!r} must be a non-empty sequence of ints")
    from_logits = _subset("from_logits", from_logits, (False, True))
    ls = max_label_smoothing
    if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not 0.0 <= ls <= 1.0:
        raise UsageError(f"max_label_smoothing={ls!r} is not a number in [0, 1]")
    reductions = _subset("reductions", reductions, REDUCTIONS)
    dtypes = _subset("dtypes", dtypes, LOSS_DTYPES)
    smoothing = st.one_of(st.sampled_from([v for v in (0.0, 0.1, 0.5, 1.0) if v <= ls]), st.floats(0.0, float(ls)))
    default = Options()
    choices: list[tuple[str, st.SearchStrategy[Any], bool]] = [
        ("from_logits", st.sampled_from(from_logits), default.from_logits in from_logits),
        ("label_smoothing", smoothing, True),
        ("axis", st.sampled_from(axes), default.axis in axes),
        ("reduction", st.sampled_from(reductions), default.reduction in reductions),
        ("dtype", st.sampled_from(dtypes), default.dtype in dtypes),
    ]
    return _kwargs([c for c in choices if c[0] != "label_smoothing" or ls > 0])


@st.composite
def _kwargs(draw: st.DrawFn, choices: list[tuple[str, st.SearchStrategy[Any], bool]]) -> dict[str, Any]:
    kwargs = {}
    for name, values, may_leave_out in choices:
        if not may_leave_out or draw(st.booleans()):
            kwargs[name] = draw(values)
    return kwargs


def options(**kwargs: Any) -> st.SearchStrategy[Options]:
    """``Options`` built from ``option_kwargs(**kwargs)``: the options left out take Keras's defaults."""
    return option_kwargs(**kwargs).map(_options_of)


def _options_of(kwargs: dict[str, Any]) -> Options:
    return Options(**kwargs)


# -- whole cases ---------------------------------------------------------------------------------------


def _overflow_free(dtypes: Iterable[str], terms: int) -> float:
    """A logit magnitude whose weighted losses, ``terms`` of them, sum without overflow in every dtype."""
    largest = min(float_format(d).max for d in dtypes)
    return 2.0 ** math.floor(math.log2(largest / (2 * terms * MAX_WEIGHT)))


# Float dtypes in the order a shrunk case should prefer: the default compute dtype first.
_PREFERRED = ("float32", "float64", "float16", "bfloat16")


def cases(
    *,
    shape_kinds: Sequence[str] = SHAPE_KINDS,
    label_dtypes: Sequence[str] = (*_PREFERRED, "int32", "int64", "bool"),
    pred_dtypes: Sequence[str] = _PREFERRED,
    loss_dtypes: Sequence[str | None] = (None, *_PREFERRED),
    weight_dtypes: Sequence[str] = _PREFERRED,
    from_logits: Sequence[bool] = (False, True),
    reductions: Sequence[str | None] = REDUCTIONS,
    weight_forms: Sequence[str] = WEIGHT_FORMS,
    max_label_smoothing: float = 1.0,
    allow_nan: bool = True,
    max_side: int = 4,
    max_size: int = 24,
    id_prefix: str = "fuzz",
) -> st.SearchStrategy[Case]:
    """Whole cases: shapes, input dtypes, values, constructor options and sample weights, drawn together.

    A quarter of the draws (when ``allow_nan``) may hold NaN in the predictions or float labels.  Logits are
    capped so that no reduction overflows the narrowest dtype involved (see ``logits``).  The case id is
    ``<id_prefix>/<shape>/<probs|logits>/<regime>/<label>-<pred dtype>/dtype=<loss dtype>/<reduction>/w=<form>``
    and the tags are family ``fuzz``, ``regime`` (``regime_of``), ``shape`` and ``weights``.
    """
    shape_kinds = _subset("shape_kinds", shape_kinds, SHAPE_KINDS)
    label_dtypes = _subset("label_dtypes", label_dtypes, INPUT_DTYPES)
    pred_dtypes = _subset("pred_dtypes", pred_dtypes, FLOAT_DTYPES)
    weight_dtypes = _subset("weight_dtypes", weight_dtypes, FLOAT_DTYPES)
    weight_forms = _subset("weight_forms", weight_forms, WEIGHT_FORMS)
    _flag("allow_nan", allow_nan)
    if not isinstance(id_prefix, str) or not id_prefix:
        raise UsageError(f"id_prefix={id_prefix!r} is not a non-empty string")
    shape_strategy = shapes(kinds=shape_kinds, max_side=max_side, max_size=max_size)
    option_strategies = {
        axes: option_kwargs(
            axes=axes,
            from_logits=from_logits,
            max_label_smoothing=max_label_smoothing,
            reductions=reductions,
            dtypes=loss_dtypes,
        )
        for axes in _AXES.values()
    }

    @st.composite
    def build(draw: st.DrawFn) -> Case:
        pair = draw(shape_strategy)
        opts = Options(**draw(option_strategies[_axes_for(pair)]))
        tdt = draw(st.sampled_from(label_dtypes))
        pdt = draw(st.sampled_from(pred_dtypes))
        with_nan = allow_nan and draw(st.integers(0, 3)) == 3
        y = draw(labels(pair.y_true, dtype=tdt, allow_nan=with_nan and tdt in FLOAT_DTYPES))
        if opts.from_logits:
            cap = _overflow_free((pdt, compute_dtype_of(API_LOSS_CLASS, pdt, opts.dtype)), max_size)
            p = draw(logits(pair.y_pred, dtype=pdt, allow_nan=with_nan, max_magnitude=cap))
        else:
            p = draw(probabilities(pair.y_pred, dtype=pdt, allow_nan=with_nan))
        shape = loss_shape(pair, opts.axis)
        usable = [f for f in weight_forms if _applies(f, shape)]
        assume(bool(usable))
        form = draw(st.sampled_from(usable))
        wdt = draw(st.sampled_from(weight_dtypes)) if form != "none" else weight_dtypes[0]
        w = draw(_weights_of(form, shape, wdt))
        tags = {"family": "fuzz", "shape": pair.kind, "weights": form}
        case = Case(
            id=id_prefix,
            y_true=y,
            y_pred=p,
            true_dtype=tdt,
            pred_dtype=pdt,
            options=opts,
            sample_weight=w,
            weight_dtype=wdt,
            tags=tags,
        )
        return _named(case, id_prefix)

    return build()


# The axes a drawn case may reduce over, by the rank of its longer input (the grid's choice).
_AXES = {1: (-1,), 2: (-1, -2, 0, 1), 3: (-1, -2, -3, 0, 1, 2)}


def _axes_for(pair: ShapePair) -> tuple[int, ...]:
    if pair.kind in _EMPTY_KINDS:
        return (-1,)  # the generator's rule: an empty batch is reduced along the features only
    return _AXES.get(max(len(pair.y_true), len(pair.y_pred)), _AXES[3])


def _named(case: Case, id_prefix: str) -> Case:
    """The drawn case with its id and its regime tag, both read off the case as drawn."""
    regime = regime_of(case)
    o, t = case.options, case.tags
    kind = "logits" if o.from_logits else "probs"
    cid = (
        f"{id_prefix}/{t['shape']}/{kind}/{regime}/{SHORT.get(case.true_dtype, case.true_dtype)}-"
        f"{SHORT.get(case.pred_dtype, case.pred_dtype)}/dtype={SHORT[o.dtype]}/{o.reduction or 'None'}/w={t['weights']}"
    )
    return replace(case, id=cid, tags={**t, "regime": regime})
