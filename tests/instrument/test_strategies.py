"""The Hypothesis strategies: options checked at the door, draws that are valid, and every boundary reachable.

No TensorFlow here: these tests check the instrument's own search space.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harness.case import Case, Options
from harness.dtypes import FLOAT_DTYPES, float_format, round_to
from harness.errors import EXIT_USAGE, UsageError
from harness.generate.grid import WEIGHT_FORMS
from harness.generate.strategies import (
    REGIMES,
    SHAPE_KINDS,
    ShapePair,
    cases,
    dtypes,
    labels,
    logits,
    loss_shape,
    option_kwargs,
    options,
    probabilities,
    regime_of,
    sample_weights,
    shape_kind,
    shapes,
)
from harness.oracle.keras3 import EPSILON

NAMESPACE: dict[str, Any] = {
    "ShapePair": ShapePair,
    "cases": cases,
    "dtypes": dtypes,
    "labels": labels,
    "logits": logits,
    "loss_shape": loss_shape,
    "option_kwargs": option_kwargs,
    "options": options,
    "probabilities": probabilities,
    "sample_weights": sample_weights,
    "shapes": shapes,
}


def bad(call: str, name: str, value: str) -> Any:
    """A row: the bad call (its own test id), then what the message must name: the argument and the value."""
    return pytest.param(call, name, value, id=call)


ROWS = [
    bad("shapes(max_side=1)", "max_side", "1"),
    bad("shapes(max_size=0)", "max_size", "0"),
    bad("shapes(max_size=2.5)", "max_size", "2.5"),
    bad("shapes(kinds=('rank4',))", "kinds", "'rank4'"),
    bad("shapes(kinds='BC')", "kinds", "'BC'"),
    bad("shapes(kinds=())", "kinds", "()"),
    bad("dtypes(allowed=('float8',))", "allowed", "'float8'"),
    bad("labels((2,), dtype='uint8')", "dtype", "'uint8'"),
    bad("labels((2,), dtype='int32', kind='soft')", "kind", "'soft'"),
    bad("labels((2,), dtype='bool', allow_nan=True)", "allow_nan", "True"),
    bad("labels([2], dtype='float32')", "shape", "[2]"),
    bad("labels((-1,), dtype='float32')", "shape", "(-1,)"),
    bad("probabilities((2,), dtype='int32')", "dtype", "'int32'"),
    bad("probabilities((2,), allow_nan=1)", "allow_nan", "1"),
    bad("logits((2,), max_magnitude=0.5)", "max_magnitude", "0.5"),
    bad("logits((2,), dtype='float16', max_magnitude=1e5)", "max_magnitude", "100000.0"),
    bad("logits((2,), max_magnitude=float('nan'))", "max_magnitude", "nan"),
    bad("logits((2,), allow_infinity='yes')", "allow_infinity", "'yes'"),
    bad("sample_weights((3,), forms=('diagonal',))", "forms", "'diagonal'"),
    bad("sample_weights((), forms=('per_sample',))", "forms", "('per_sample',)"),
    bad("sample_weights((3,), dtype='int32')", "dtype", "'int32'"),
    bad("loss_shape(ShapePair('BC', (2, 3), (2, 3)), 2)", "axis", "2"),
    bad("loss_shape(ShapePair('BC', (2, 3), (2, 3)), True)", "axis", "True"),
    bad("option_kwargs(axes=())", "axes", "()"),
    bad("option_kwargs(axes=(1.5,))", "axes", "(1.5,)"),
    bad("option_kwargs(from_logits=(1,))", "from_logits", "(1,)"),
    bad("option_kwargs(max_label_smoothing=1.5)", "max_label_smoothing", "1.5"),
    bad("option_kwargs(reductions=('avg',))", "reductions", "'avg'"),
    bad("option_kwargs(dtypes=('int32',))", "dtypes", "'int32'"),
    bad("options(reductions=('SUM',))", "reductions", "'SUM'"),
    bad("cases(shape_kinds=())", "shape_kinds", "()"),
    bad("cases(pred_dtypes=('int32',))", "pred_dtypes", "'int32'"),
    bad("cases(weight_forms=('x',))", "weight_forms", "'x'"),
    bad("cases(id_prefix='')", "id_prefix", "''"),
    bad("cases(max_size=1)", "max_size", "1"),
    bad("cases(allow_nan='no')", "allow_nan", "'no'"),
    bad("cases(max_label_smoothing=-0.1)", "max_label_smoothing", "-0.1"),
]


@pytest.mark.parametrize("call, name, value", ROWS)
def test_bad_option_raises_usage_error_when_the_strategy_is_built(call: str, name: str, value: str) -> None:
    with pytest.raises(UsageError) as info:
        eval(call, dict(NAMESPACE))  # the call is a literal of the table above
    message = str(info.value)
    assert info.value.exit_code == EXIT_USAGE and "\n" not in message
    assert name in message and value in message, message


# -- what the draws are --------------------------------------------------------------------------------

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _loss_rank(case: Case) -> int:
    return max(case.y_true.ndim, case.y_pred.ndim) - 1


@FUZZ
@given(data=st.data())
def test_cases_are_valid_and_tagged_as_they_are(data: st.DataObject) -> None:
    case = data.draw(cases(), label="case")
    kind, form = case.tags["shape"], case.tags["weights"]
    assert case.tags["family"] == "fuzz" and kind in SHAPE_KINDS and form in WEIGHT_FORMS
    assert case.tags["regime"] == regime_of(case) and case.id.startswith(f"fuzz/{kind}/")
    assert shape_kind(case.y_true.shape, case.y_pred.shape) == kind
    assert case.y_pred.size <= 24
    if kind in ("empty", "empty_BTC"):
        assert case.y_pred.shape[0] == 0 and case.options.axis == -1
    if kind == "BC":
        assert case.y_pred.ndim == 2 and case.y_pred.shape[1] >= 2
    if kind == "B1":
        assert case.y_pred.shape[1:] == (1,)
    w = case.sample_weight
    assert (w is None) == (form == "none")
    if form == "scalar":
        assert w is not None and w.ndim == 0
    if form in ("per_sample", "zeros"):
        assert w is not None and w.ndim == 1
    if form == "zeros":
        assert not np.any(w)
    if form == "column":
        assert w is not None and w.shape[1:] == (1,)
    if form == "per_element":
        assert w is not None and w.ndim == _loss_rank(case) >= 2
    if w is not None:
        assert np.all((w >= 0) & (w <= 4))
    with np.errstate(invalid="ignore"):
        if not case.options.from_logits:
            assert np.all(np.isnan(case.y_pred) | ((case.y_pred >= 0) & (case.y_pred <= 1)))
    assert np.all(np.isnan(case.y_true) | ((case.y_true >= 0) & (case.y_true <= 1)))


@FUZZ
@given(data=st.data())
def test_values_are_representable_and_in_range(data: st.DataObject) -> None:
    dtype = data.draw(dtypes(), label="dtype")
    shape = data.draw(st.sampled_from([(3,), (2, 2), (1, 2, 3)]), label="shape")
    p = data.draw(probabilities(shape, dtype=dtype), label="probabilities")
    x = data.draw(logits(shape, dtype=dtype, max_magnitude=1e3), label="logits")
    y = data.draw(labels(shape, dtype=dtype), label="labels")
    for a in (p, x, y):
        assert a.shape == shape and np.array_equal(round_to(a, dtype), a)
    assert np.all((p >= 0) & (p <= 1)) and np.all((y >= 0) & (y <= 1))
    assert np.all(np.isinf(x) | (np.abs(x) <= 512))  # 1e3 rounds down to a power of two


@FUZZ
@given(data=st.data())
def test_options_left_out_are_absent_from_the_keywords(data: st.DataObject) -> None:
    kwargs = data.draw(option_kwargs(axes=(-1, 0), from_logits=(True,)), label="kwargs")
    assert kwargs["from_logits"] is True  # the default False is not allowed, so it is never left out
    assert set(kwargs) <= {"from_logits", "label_smoothing", "axis", "reduction", "dtype"}
    assert 0.0 <= kwargs.get("label_smoothing", 0.0) <= 1.0


# -- every boundary is reachable -------------------------------------------------------------------------


class _Reached(Exception):
    """Raised by the search below with the first draw that meets the condition."""


def _finds(strategy: st.SearchStrategy[Any], condition: Any) -> Any:
    """The first draw of ``strategy`` meeting ``condition`` within 3000 draws (generation only, no shrinking:
    the point is that it is reachable, not what its simplest form is)."""

    @settings(
        max_examples=3000,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def search(value: Any) -> None:
        if condition(value):
            raise _Reached(value)

    with pytest.raises(_Reached) as hit:
        search()
    return hit.value.args[0]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_probabilities_reach_the_boundaries(dtype: str) -> None:
    fmt = float_format(dtype)
    below_one = 1.0 - 2.0 ** -(fmt.mant_bits + 1)
    eps = float(round_to(EPSILON, dtype))
    strategy = probabilities((4,), dtype=dtype)
    for name, hit in {
        "exactly 0": lambda p: np.any(p == 0),
        "exactly 1": lambda p: np.any(p == 1),
        "one ULP below 1": lambda p: np.any(p == below_one),
        "subnormal": lambda p: np.any((p > 0) & (p < fmt.smallest_normal)),
        "the clip bound eps": lambda p: np.any(p == eps),
    }.items():
        assert hit(_finds(strategy, hit)), name


def test_logits_reach_large_magnitudes_infinities_and_nan_when_asked() -> None:
    strategy = logits((3,), dtype="float32", allow_nan=True)
    assert np.any(_finds(strategy, lambda x: np.any(x == math.inf)) == math.inf)
    assert np.any(_finds(strategy, lambda x: np.any(x == -math.inf)) == -math.inf)
    large = _finds(strategy, lambda x: np.any(np.abs(x[np.isfinite(x)]) >= 1e30))
    assert np.any(np.abs(large[np.isfinite(large)]) >= 1e30)
    assert np.any(np.isnan(_finds(strategy, lambda x: np.any(np.isnan(x)))))
    assert not np.any(np.isnan(_finds(logits((3,), dtype="float32"), lambda x: x.size == 3)))


# Each regime within the part of the space it belongs to (the search is shorter there, and these options
# are among the ones cases() draws by default).
REGIME_SPACE: dict[str, dict[str, Any]] = {
    "unclipped_one": {"from_logits": (False,), "loss_dtypes": ("float16", "bfloat16")},
    "infinite_indeterminate": {"from_logits": (True,)},
    "nan": {},
    "infinite_determinate": {"from_logits": (True,)},
    "clipped": {"from_logits": (False,)},
    "large": {"from_logits": (True,)},
    "typical": {},
}


@pytest.mark.parametrize("regime", REGIMES)
def test_every_regime_is_reachable(regime: str) -> None:
    strategy = cases(**REGIME_SPACE[regime])
    assert _finds(strategy, lambda c: c.tags["regime"] == regime).tags["regime"] == regime


@pytest.mark.parametrize("form", WEIGHT_FORMS)
def test_every_weight_form_is_reachable(form: str) -> None:
    assert _finds(cases(), lambda c: c.tags["weights"] == form).tags["weights"] == form


def test_every_shape_kind_and_label_kind_is_reachable() -> None:
    for kind in SHAPE_KINDS:
        assert _finds(shapes(), lambda s, kind=kind: s.kind == kind).kind == kind
    soft = _finds(labels((6,), dtype="float32", kind="soft"), lambda y: np.any((y > 0) & (y < 1)))
    assert np.any((soft > 0) & (soft < 1))
    for dtype in ("int32", "int64", "bool"):
        assert set(np.unique(_finds(labels((4,), dtype=dtype), lambda y: y.size == 4))) <= {0.0, 1.0}


def test_options_are_sometimes_left_out_and_sometimes_given() -> None:
    assert _finds(option_kwargs(), lambda kw: kw == {}) == {}
    every = _finds(option_kwargs(), lambda kw: len(kw) == 5)
    assert set(every) == {"from_logits", "label_smoothing", "axis", "reduction", "dtype"}


# -- the regime of a case ------------------------------------------------------------------------------


def _case(y: list[float], p: list[float], **option_values: Any) -> Case:
    return Case(
        id="t",
        y_true=np.array(y),
        y_pred=np.array(p),
        true_dtype="float32",
        pred_dtype="float32",
        options=Options(**option_values),
    )


@pytest.mark.parametrize(
    "y, p, kind",
    [
        ((3,), (3,), "rank1"),
        ((0,), (0,), None),
        ((2, 1), (2, 1), "B1"),
        ((2, 3), (2, 3), "BC"),
        ((0, 3), (0, 3), "empty"),
        ((2, 0), (2, 0), None),
        ((2, 3, 4), (2, 3, 4), "BTC"),
        ((0, 3, 4), (0, 3, 4), "empty_BTC"),
        ((2,), (2, 1), "labels_B_preds_B1"),
        ((2, 1), (2,), "labels_B1_preds_B"),
        ((2, 3), (2, 2), None),
        ((2,), (2, 3), None),
    ],
    ids=str,
)
def test_shape_kind_names_the_pair(y: tuple[int, ...], p: tuple[int, ...], kind: str | None) -> None:
    assert shape_kind(y, p) == kind


@pytest.mark.parametrize(
    "case, regime",
    [
        pytest.param(_case([1.0], [1.0], dtype="float16"), "unclipped_one", id="y=1, p=1, float16 loss"),
        pytest.param(_case([1.0], [1.0], dtype="bfloat16"), "unclipped_one", id="y=1, p=1, bfloat16 loss"),
        pytest.param(_case([1.0], [1.0]), "clipped", id="y=1, p=1, float32 loss: the clip works"),
        pytest.param(
            _case([1.0], [0.9999999403953552], dtype="float16"), "unclipped_one", id="p rounds to 1 in float16"
        ),
        pytest.param(_case([1.0], [1.0], dtype="float16", label_smoothing=0.1), "clipped", id="smoothed label 0.95"),
        pytest.param(
            _case([1.0], [1.0], dtype="float16", label_smoothing=1e-5), "unclipped_one", id="smoothing rounds away"
        ),
        pytest.param(
            _case([1.0, 0.0], [1.0, math.nan], dtype="float16"), "unclipped_one", id="unclipped one before nan"
        ),
        pytest.param(_case([0.0], [math.nan]), "nan", id="nan prediction"),
        pytest.param(_case([0.5], [0.5]), "typical", id="typical"),
        pytest.param(_case([0.0], [math.inf], from_logits=True), "infinite_indeterminate", id="x=+inf"),
        pytest.param(_case([0.0], [-math.inf], from_logits=True), "infinite_indeterminate", id="x=-inf, y=0"),
        pytest.param(_case([1.0], [-math.inf], from_logits=True), "infinite_determinate", id="x=-inf, y=1"),
        pytest.param(
            _case([0.0], [-math.inf], from_logits=True, label_smoothing=2.0**-1030, dtype="float64"),
            "infinite_indeterminate",
            id="x=-inf, smoothed label subnormal: flushed to 0",
        ),
        pytest.param(_case([1.0], [1e3], from_logits=True), "large", id="x=1e3"),
        pytest.param(_case([1.0], [3.0], from_logits=True), "typical", id="x=3"),
    ],
)
def test_regime_of(case: Case, regime: str) -> None:
    assert regime_of(case) == regime
