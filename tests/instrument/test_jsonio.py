"""Lossless JSON for arrays and cases, the errors of malformed input, and atomic file writes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import jsonio
from harness.case import Case, Options
from harness.errors import UsageError
from harness.jsonio import atomic_write_text, decode_array, encode_array, pack_array

F64 = np.finfo(np.float64)


def through_json(x: Any) -> Any:
    """What a reader of the written file gets back; refuses bare NaN, which JSON does not have."""
    return json.loads(json.dumps(x, allow_nan=False))


def assert_identical(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype, shape and values, NaN where NaN is, and the sign of every zero kept."""
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f")
    if want.dtype.kind == "f":
        assert np.array_equal(np.signbit(got), np.signbit(want))


# -- arrays --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        pytest.param(np.array([math.nan, math.inf, -math.inf]), id="nan, +inf, -inf"),
        pytest.param(np.array([-0.0, 0.0, -0.0]), id="signed zeros"),
        pytest.param(np.array([5e-324, -5e-324, 2.0**-1023, 2.0**-149, 2.0**-24, 2.0**-133]), id="subnormals"),
        pytest.param(np.array([F64.max, -F64.max, F64.tiny, F64.eps, 1 - F64.epsneg, 0.1]), id="float64 extremes"),
        pytest.param(np.array([[1 / 3, 2 / 3], [float(np.float32(0.1)), 1e300]]), id="non-terminating binaries 2x2"),
        pytest.param(np.asarray(0.5), id="0-d"),
        pytest.param(np.asarray(-0.0), id="0-d -0.0"),
        pytest.param(np.asarray(math.nan), id="0-d nan"),
        pytest.param(np.asarray(-math.inf), id="0-d -inf"),
        pytest.param(np.zeros((0, 3)), id="empty (0, 3)"),
        pytest.param(np.zeros((2, 0, 3)), id="empty (2, 0, 3)"),
        pytest.param(np.array([[True, False], [False, True]]), id="bool 2x2"),
        pytest.param(np.array([[0, 1, -7], [2**40, 3, 0]], dtype=np.int64), id="int64 2x3"),
        pytest.param(np.zeros((0, 3), dtype=bool), id="empty bool (0, 3)"),
        pytest.param(np.zeros((0,), dtype=np.int64), id="empty int64 (0,)"),
        pytest.param(np.asarray(True), id="0-d bool"),
    ],
)
@pytest.mark.parametrize("encode", [encode_array, pack_array], ids=["lists", "packed"])
def test_array_round_trip_is_exact(array: np.ndarray, encode: Any) -> None:
    assert_identical(decode_array(through_json(encode(array))), array)


def test_packed_arrays_are_little_endian_base64() -> None:
    assert pack_array(np.array([1.0, -0.0])) == {"dtype": "float64", "shape": [2], "b64": "AAAAAAAA8D8AAAAAAAAAgA=="}
    assert pack_array(np.array([1.0], dtype=">f8")) == pack_array(np.array([1.0]))


@pytest.mark.parametrize(
    "packed, fragment",
    [
        pytest.param({"dtype": "float64", "shape": [2], "b64": "AAAAAAAA8D8="}, "holds 8 bytes, not the 16", id="short"),
        pytest.param({"dtype": "float64", "shape": [1], "b64": "not base64!"}, "y.b64 is not base64", id="not base64"),
        pytest.param({"dtype": "float32", "shape": [1], "b64": "AAAAAA=="}, "y.dtype='float32'", id="unknown dtype"),
        pytest.param({"dtype": "float64", "shape": [-1], "b64": ""}, "y.shape=[-1]", id="negative size"),
        pytest.param({"dtype": "float64", "b64": ""}, "keys 'dtype', 'shape' and 'b64'", id="no shape"),
        pytest.param({"dtype": "float64", "shape": [], "b64": "", "data": []}, "keys 'dtype'", id="extra key"),
    ],
)
def test_malformed_packed_array_names_the_field(packed: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        decode_array(packed, "y")
    assert fragment in str(info.value)


def test_float32_arrays_come_back_as_float64_with_the_same_values() -> None:
    a = np.array([0.1, 1e-45, 3.4e38], dtype=np.float32)
    got = decode_array(through_json(encode_array(a)))
    assert got.dtype == np.float64 and np.array_equal(got, a.astype(np.float64))


def test_non_finite_numbers_are_written_as_strings() -> None:
    assert encode_array(np.array([math.nan, math.inf, -math.inf, 1.0])) == {
        "shape": [4],
        "data": ["nan", "inf", "-inf", 1.0],
    }
    assert encode_array(np.asarray(math.nan)) == "nan"


def test_encode_none_is_none() -> None:
    assert encode_array(None) is None


# -- cases ---------------------------------------------------------------------------------------------


def logits_case() -> Case:
    return Case(
        id="jsonio/logits (with) odd/chars é",
        y_true=np.array([[1.0, 0.0], [0.25, 1.0]]),
        y_pred=np.array([[math.inf, -math.inf], [-0.0, math.nan]]),
        true_dtype="float32",
        pred_dtype="float32",
        options=Options(from_logits=True, label_smoothing=0.1, axis=0, reduction=None, dtype="float64"),
        sample_weight=np.array([0.5, 2.0]),
        weight_dtype="float16",
        tags={"family": "special", "regime": "infinite", "shape": "BC"},
    )


def scalar_weight_case() -> Case:
    return Case(
        id="jsonio/scalar weight",
        y_true=np.array([True, False, True]),
        y_pred=np.array([2.0**-24, 1 - 2.0**-11, 0.5]),
        true_dtype="bool",
        pred_dtype="float16",
        options=Options(reduction="mean_with_sample_weight"),
        sample_weight=np.asarray(2.5),
    )


def plain_case() -> Case:
    return Case(
        id="jsonio/plain", y_true=np.zeros((0, 3)), y_pred=np.zeros((0, 3)), true_dtype="int32", pred_dtype="bfloat16"
    )


@pytest.mark.parametrize("make", [logits_case, scalar_weight_case, plain_case], ids=lambda f: f.__name__)
def test_case_round_trip(make: Any) -> None:
    case = make()
    back = Case.from_dict(through_json(case.as_dict()))
    assert back.id == case.id and back.api == case.api
    assert back.options == case.options
    assert (back.true_dtype, back.pred_dtype, back.weight_dtype) == (
        case.true_dtype,
        case.pred_dtype,
        case.weight_dtype,
    )
    assert back.tags == case.tags and back.facets == case.facets
    assert_identical(back.y_true, case.y_true)
    assert_identical(back.y_pred, case.y_pred)
    if case.sample_weight is None:
        assert back.sample_weight is None
    else:
        assert_identical(back.sample_weight, case.sample_weight)


def broken(**changes: Any) -> dict[str, Any]:
    """The JSON form of a valid case with some fields replaced (a value of ``...`` deletes the field)."""
    d = through_json(logits_case().as_dict())
    for key, value in changes.items():
        if value is ...:
            del d[key]
        else:
            d[key] = value
    return d


@pytest.mark.parametrize(
    "data, fragments",
    [
        pytest.param(broken(id=...), ("'id'", "missing"), id="missing 'id'"),
        pytest.param(broken(y_pred=...), ("'y_pred'", "missing"), id="missing 'y_pred'"),
        pytest.param(
            broken(y_true={"shape": [2, -2], "data": [1.0] * 4}), ("y_true.shape", "-2"), id="negative size in shape"
        ),
        pytest.param(
            broken(y_true={"shape": "2x2", "data": [1.0] * 4}), ("y_true.shape", "2x2"), id="shape is a string"
        ),
        pytest.param(
            broken(y_true={"shape": [2, 2], "data": [1.0] * 3}), ("y_true.data", "4"), id="3 numbers for shape (2, 2)"
        ),
        pytest.param(
            broken(y_pred={"shape": [2], "data": [0.5, "abc"]}),
            ("y_pred.data[1]", "'abc'"),
            id="a number given as 'abc'",
        ),
        pytest.param(
            broken(y_pred={"shape": [1], "data": ["NaN"]}),
            ("y_pred.data[0]", "'NaN'"),
            id="'NaN' is not the spelling 'nan'",
        ),
        pytest.param(broken(y_pred={"shape": [1], "data": [None]}), ("y_pred.data[0]", "None"), id="null as a number"),
        pytest.param(broken(y_true={"shape": [1]}), ("y_true", "'shape' and 'data'"), id="array without 'data'"),
        pytest.param(broken(y_true=[[0.5, 1.5]]), ("y_true", "floats are stored"), id="floats as a bare list"),
        pytest.param(broken(y_true=[[1], [1, 0]]), ("y_true", "ragged"), id="ragged list"),
        pytest.param(
            broken(sample_weight={"shape": [2], "data": [1.0, "x"]}),
            ("sample_weight.data[1]", "'x'"),
            id="bad sample_weight number",
        ),
        pytest.param(broken(options={"colour": "red"}), ("options", "colour"), id="unknown option"),
        pytest.param(broken(options={"axis": "0"}), ("axis", "'0'"), id="axis given as a string"),
        pytest.param(broken(pred_dtype="float8"), ("'float8'",), id="unknown pred_dtype"),
    ],
)
def test_malformed_case_raises_usage_error_naming_the_field(data: dict[str, Any], fragments: tuple[str, ...]) -> None:
    with pytest.raises(UsageError) as info:
        Case.from_dict(data)
    for fragment in fragments:
        assert fragment in str(info.value)


# -- report text ---------------------------------------------------------------------------------------


def test_dumps_round_trips_and_puts_each_record_on_its_own_line() -> None:
    report = {
        "meta": {"seed": 1, "environment": {"A": None}},
        "records": [{"id": "a", "actual": encode_array(np.array([0.5, math.inf]))}, {"id": "b", "actual": 0.25}],
        "totals": {"pass": 2},
        "cross_mode": [],
    }
    text = jsonio.dumps(report)
    assert json.loads(text) == report and text.endswith("}\n")
    lines = text.splitlines()
    assert '  {"id": "a", "actual": {"shape": [2], "data": [0.5, "inf"]}},' in lines
    assert '  {"id": "b", "actual": 0.25}' in lines
    assert jsonio.dumps([1, "x"]) == '[1, "x"]\n'


@pytest.mark.parametrize("obj", [{"records": [{"x": math.nan}]}, {"meta": {"x": math.inf}}, [math.nan]])
def test_dumps_refuses_a_bare_nan(obj: Any) -> None:
    with pytest.raises(ValueError):
        jsonio.dumps(obj)


# -- atomic writes -------------------------------------------------------------------------------------


def test_atomic_write_creates_the_file_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "folder" / "report.json"
    assert atomic_write_text(target, "é {}\n") == target
    assert target.read_text(encoding="utf-8") == "é {}\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_atomic_write_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old, and longer than the new content\n")
    atomic_write_text(str(target), "new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def _fail(exc: type[BaseException]) -> Any:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise exc("simulated failure")

    return boom


@pytest.mark.parametrize(
    "step, exc",
    [
        pytest.param("replace", OSError, id="os.replace fails"),
        pytest.param("fsync", OSError, id="os.fsync fails after the write"),
        pytest.param("fsync", KeyboardInterrupt, id="interrupted after the write"),
    ],
)
@pytest.mark.parametrize("existed", [True, False], ids=["over an old file", "no old file"])
def test_failed_atomic_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, exc: type[BaseException], existed: bool
) -> None:
    target = tmp_path / "report.json"
    if existed:
        target.write_text("old content\n")
    monkeypatch.setattr(jsonio.os, step, _fail(exc))
    with pytest.raises(exc, match="simulated failure"):
        atomic_write_text(target, "new content that must never be seen half-written\n" * 1000)
    monkeypatch.undo()
    if existed:
        assert target.read_text() == "old content\n"
        assert os.listdir(tmp_path) == ["report.json"]
    else:
        assert os.listdir(tmp_path) == []
