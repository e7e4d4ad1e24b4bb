"""The records that pass between stages survive their round trips: every field of Case, Expected, Outcome
and Comparison through the record stream, a case through ``results.json`` into the regression report, and a
results.json entry through ``results.parquet``.

No TensorFlow: the records are drawn, not run.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.case import (
    ACTIVATIONS,
    APIS,
    FLOATX,
    GRADS,
    METRIC_ARGS,
    MODES,
    POLICIES,
    PRODUCERS,
    REPLICA_ROUTES,
    TRAINING_ROUTES,
    Case,
    Config,
    Expected,
    Options,
    Outcome,
    TrainingSpec,
)  # fmt: skip
from harness.dtypes import FLOAT_DTYPES, INPUT_DTYPES, round_to
from harness.judge.compare import KINDS, Comparison
from harness.judge.registry import Divergence, Registry
from harness.report import issue
from harness.report.columns import ColumnsFile, ColumnWriter
from harness.report.summary import record_dict
from harness.run.runner import STATUSES, Record, judged
from harness.run.stream import record_from_json, record_to_json

EMPTY = Registry(())
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


def _arrays(dtype: str, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    if dtype == "bool":
        return hnp.arrays(np.bool_, shape)
    if dtype.startswith("int"):
        return hnp.arrays(np.int64, shape, elements=st.integers(-(2**31), 2**31 - 1))
    return hnp.arrays(np.float64, shape, elements=FLOATS).map(lambda a: _rounded(a, dtype))


def _rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(over="ignore"):  # a float64 beyond the dtype's range rounds to infinity, as meant
        return np.asarray(round_to(a, dtype), dtype=np.float64)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    true_dtype, pred_dtype = draw(st.sampled_from(INPUT_DTYPES)), draw(st.sampled_from(FLOAT_DTYPES))
    weight_dtype = draw(st.sampled_from(FLOAT_DTYPES))
    options = Options(
        from_logits=draw(st.booleans()),
        label_smoothing=draw(st.floats(-2, 2)),
        axis=draw(st.integers(-3, 3)),
        reduction=draw(st.sampled_from(["sum", "sum_over_batch_size", "mean", "none", None, "bogus"])),
        dtype=draw(st.sampled_from([None, *FLOAT_DTYPES])),
    )
    mode = draw(st.sampled_from(MODES))
    grad = draw(st.sampled_from([None, *GRADS]))
    eager_only = ("model.predict(x)",) if mode == "eager" and grad is None else ()
    config = draw(
        st.none()
        | st.builds(
            Config,
            policy=st.sampled_from([None, *POLICIES]),
            loss_policy=st.sampled_from([None, *POLICIES]),
            epsilon=st.none() | st.floats(1e-12, 0.25),
            floatx=st.sampled_from([None, *FLOATX]),
            traced_before=st.booleans() if mode != "eager" else st.just(False),
        )
    )
    path = {
        "api": draw(st.sampled_from(APIS)),
        "mode": mode,
        "producer": draw(st.sampled_from([None, *(p for p in PRODUCERS if p != "model.predict(x)"), *eager_only])),
        "mask": draw(st.none() | hnp.arrays(np.bool_, shape)),
        "grad": grad,
        "config": config,
    }
    if draw(st.booleans()):  # a training-loop or replica case reaches the loss class through its route only
        path = {"api": "BinaryCrossentropy", "mode": "eager", "producer": None, "mask": None, "grad": None}
        path["training"] = draw(trainings(shape[0] if shape else 0))
    return Case(
        id=draw(TEXT.filter(bool)),
        y_true=draw(_arrays(true_dtype, shape)),
        y_pred=draw(_arrays(pred_dtype, shape)),
        true_dtype=true_dtype,
        pred_dtype=pred_dtype,
        options=options,
        sample_weight=draw(st.none() | _arrays(weight_dtype, draw(st.sampled_from([(), shape[:1]])))),
        weight_dtype=weight_dtype,
        tags=draw(st.dictionaries(TEXT, TEXT, max_size=3)),
        **path,
    )


@st.composite
def trainings(draw: st.DrawFn, batch: int) -> TrainingSpec:
    route = draw(st.sampled_from(TRAINING_ROUTES + REPLICA_ROUTES))
    strategy = "mirrored" if route in REPLICA_ROUTES else draw(st.sampled_from([None, "mirrored"]))
    first = draw(st.integers(0, batch))
    return TrainingSpec(
        route=route,
        batch_size=draw(st.none() | st.integers(1, 64)),
        activation=draw(st.sampled_from(ACTIVATIONS)),
        class_weight=draw(st.none() | st.lists(st.tuples(st.integers(0, 3), st.floats(0, 10)), max_size=3).map(tuple)),
        metric=draw(st.sampled_from([None, *METRIC_ARGS])),
        strategy=strategy,
        splits=draw(st.sampled_from([None, (first, batch - first)])),
    )


def _maybe_array(draw: st.DrawFn) -> np.ndarray | None:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
    return draw(st.none() | hnp.arrays(np.float64, shape, elements=FLOATS))


@st.composite
def expectations(draw: st.DrawFn) -> Expected:
    return Expected(
        value=_maybe_array(draw),
        bound=_maybe_array(draw),
        dtype=draw(st.sampled_from([None, *FLOAT_DTYPES])),
        raises=draw(st.none() | TEXT),
        rule=draw(TEXT),
    )


@st.composite
def outcomes(draw: st.DrawFn) -> Outcome:
    return Outcome(
        value=_maybe_array(draw),
        dtype=draw(st.sampled_from([None, *FLOAT_DTYPES])),
        error=draw(st.none() | TEXT),
        seconds=draw(st.floats(0, 1e3)),
    )


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    kind = draw(st.sampled_from([None, *KINDS]))
    return Comparison(
        kind,
        draw(TEXT),
        draw(st.integers(0, 10**6)),
        draw(st.integers(0, 10**6)),
        draw(st.none() | FLOATS),
        draw(st.none() | FLOATS),
        draw(st.none() | st.integers(0, 2**63)),
        () if kind is None else tuple(draw(st.lists(st.sampled_from(KINDS), max_size=3, unique=True))),
    )


def _same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape:
        return False
    nan = np.isnan(a) & np.isnan(b)  # a NaN's sign is not kept by results.json's "nan", and means nothing
    return bool(np.all((a == b) | nan)) and bool(np.all((np.signbit(a) == np.signbit(b)) | nan))


def _same_number(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and np.isnan(a) and np.isnan(b))


def assert_same_case(a: Case, b: Case) -> None:
    for name in ("id", "true_dtype", "pred_dtype", "options", "weight_dtype", "api", "tags", "mode", "producer", "grad", "training"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("y_true", "y_pred", "sample_weight", "mask"):
        assert _same_array(getattr(a, name), getattr(b, name)), name
        if getattr(a, name) is not None:
            assert getattr(a, name).dtype.kind == getattr(b, name).dtype.kind, name


def assert_same_record(a: Record, b: Record) -> None:
    assert_same_case(a.case, b.case)
    assert (a.status, a.note) == (b.status, b.note)
    ca, cb = a.comparison, b.comparison
    for name in ("kind", "message", "mismatched", "total", "max_ulp", "also"):
        assert getattr(ca, name) == getattr(cb, name), name
    assert _same_number(ca.max_abs, cb.max_abs) and _same_number(ca.max_rel, cb.max_rel)
    assert (a.expected is None) == (b.expected is None) and (a.outcome is None) == (b.outcome is None)
    if a.expected is not None:
        assert (a.expected.dtype, a.expected.raises, a.expected.rule) == (b.expected.dtype, b.expected.raises, b.expected.rule)
        assert _same_array(a.expected.value, b.expected.value) and _same_array(a.expected.bound, b.expected.bound)
    if a.outcome is not None:
        assert (a.outcome.dtype, a.outcome.error, a.outcome.seconds) == (b.outcome.dtype, b.outcome.error, b.outcome.seconds)
        assert _same_array(a.outcome.value, b.outcome.value)


def _through_stream(r: Record, registry: Registry = EMPTY) -> Record:
    line = json.dumps(record_to_json(r), allow_nan=False)
    return record_from_json(json.loads(line), registry)


@given(cases(), st.none() | expectations(), st.none() | outcomes(), comparisons(), st.booleans())
def test_every_field_of_a_record_survives_the_stream(case, exp, out, comparison, error) -> None:
    if error:
        record = Record(case, "error", comparison, exp, out, note="internal error in the comparator")
    else:
        record = judged(case, comparison, exp, out, EMPTY, "keras3")
    assert_same_record(record, _through_stream(record))


@given(cases(), comparisons().filter(lambda c: c.kind is not None), expectations(), outcomes())
def test_a_case_survives_results_json_into_the_regression_report(case, comparison, exp, out) -> None:
    record = judged(case, comparison, exp, out, EMPTY, "keras3")
    assert record.status == "fail"
    entry = json.loads(json.dumps(record_dict(record), allow_nan=False))
    assert_same_case(case, issue._case(entry))


@given(cases(), st.none() | expectations(), st.none() | outcomes(), comparisons(), st.sampled_from(STATUSES), TEXT)
def test_every_field_of_results_json_survives_results_parquet(case, exp, out, comparison, status, note) -> None:
    """A record's row of results.parquet (report/columns.py) reads back as its results.json entry: a pass from
    its summary columns, any other status from its detail."""
    record = Record(case, status, comparison, exp, out, note=note)
    entry = record_dict(record)
    with tempfile.TemporaryDirectory() as tmp:
        writer = ColumnWriter(Path(tmp) / "results.parquet")
        writer.add(record, entry)
        (back,) = ColumnsFile(writer.close({"seed": 1})).records()
    assert back == json.loads(json.dumps(entry, allow_nan=False))


def test_a_second_failure_kind_survives_the_stream_so_a_registry_entry_does_not_excuse_it() -> None:
    """Defect: the stream dropped Comparison.also, so a record that failed as nan_inf and tolerance came back
    as nan_inf only, and an entry explaining nan_inf turned a real tolerance failure into xfail on --resume."""
    case = Case(id="values/x", y_true=np.array([1.0, 0.0]), y_pred=np.array([0.5, 0.25]), true_dtype="float32", pred_dtype="float32")
    entry = Divergence("nan-only", "t", "r", ("e",), frozenset({"nan_inf"}), {"id": "values/*"})
    registry = Registry((entry,))
    comparison = Comparison("nan_inf", "both", 2, 2, 1.0, 1.0, 3, ("tolerance",))
    record = judged(case, comparison, Expected(np.zeros(2), np.zeros(2), "float32"), Outcome(np.ones(2), "float32"), registry, "keras3")
    assert record.status == "fail"
    again = _through_stream(record, registry)
    assert again.comparison.kinds == ("nan_inf", "tolerance")
    assert again.status == "fail"


def test_a_paths_record_rebuilds_as_the_path_that_broke() -> None:
    """Defect: results.json records carried no mode, producer, mask or grad, so the regression report rebuilt
    every paths/... case as a plain eager call and its reproduction did not exercise the path."""
    case = Case(
        id="paths/BinaryCrossentropy/xla/x",
        y_true=np.array([[1.0], [0.0]]),
        y_pred=np.array([[2.0], [-1.0]]),
        true_dtype="float32",
        pred_dtype="float32",
        options=Options(reduction="none"),
        mode="xla",
        producer="tf.sigmoid",
        mask=np.array([True, False]),
        grad="y_pred",
    )
    comparison = Comparison("tolerance", "off", 1, 2, 1.0, 1.0, 9)
    record = judged(case, comparison, Expected(np.zeros((2, 1)), np.zeros((2, 1)), "float32"), Outcome(np.ones((2, 1)), "float32"), EMPTY, "keras3")
    entry = json.loads(json.dumps(record_dict(record)))
    rebuilt = issue._case(entry)
    assert (rebuilt.mode, rebuilt.producer, rebuilt.grad, rebuilt.path) == ("xla", "tf.sigmoid", "y_pred", case.path)
    assert rebuilt.mask is not None and rebuilt.mask.tolist() == [True, False]
    script = issue.snippet(rebuilt, Expected(np.zeros((2, 1)), np.zeros((2, 1)), "float32"))
    assert "jit_compile=True" in script and "tf.sigmoid" in script
