"""The record stream without TensorFlow: what a record's line carries, and the versions it reads back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.case import Case, Expected, Options, Outcome
from harness.errors import InputError
from harness.jsonio import encode_array
from harness.judge.compare import compare
from harness.judge.registry import Registry
from harness.run.runner import judged
from harness.run.stream import RecordStream, load_stream, record_to_json


def _record(**case: object):
    c = Case(
        id="stream/one",
        y_true=np.array([[1.0], [0.0], [1.0]]),
        y_pred=np.array([[0.5], [-0.0], [math.inf]]),
        true_dtype="float32",
        pred_dtype="float64",
        options=Options(reduction=None, dtype="float64"),
        sample_weight=np.array([0.25, 1.0, 2.0]),
        weight_dtype="float64",
        tags={"family": "special"},
        **case,
    )
    exp = Expected(value=np.array([0.69, 0.0, math.nan], dtype=np.longdouble), bound=np.full(3, 1e-3), dtype="float64")
    out = Outcome(value=np.array([0.6905, -0.0, math.nan]), dtype="float64", seconds=0.5)
    return judged(c, compare(c, exp, out), exp, out, Registry(), "keras3")


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))


def _assert_same_record(got, want) -> None:
    assert got.case.as_dict() == want.case.as_dict()
    assert (got.status, got.note, got.comparison) == (want.status, want.note, want.comparison)
    for name in ("value", "bound"):
        assert _same(getattr(got.expected, name), getattr(want.expected, name)), name
    assert _same(got.outcome.value, want.outcome.value)
    assert (got.outcome.dtype, got.outcome.error, got.outcome.seconds) == (want.outcome.dtype, None, 0.5)


@pytest.mark.parametrize("mask", [None, np.array([True, False, True])], ids=["no mask", "mask"])
def test_a_record_comes_back_from_its_stream_exactly(tmp_path: Path, mask: np.ndarray | None) -> None:
    record = _record(mask=mask)
    with RecordStream(tmp_path, {"seed": 1}) as stream:
        stream.append(record)
    head = json.loads((tmp_path / "records.jsonl").read_text().splitlines()[0])
    assert head == {"stream": 2, "meta": {"seed": 1}}
    meta, records = load_stream(tmp_path, Registry())
    assert meta == {"seed": 1} and len(records) == 1
    _assert_same_record(records[0], record)


def test_stream_lines_pack_their_arrays() -> None:
    line = record_to_json(_record())
    assert set(line["case"]["y_pred"]) == {"dtype", "shape", "b64"}
    assert set(line["expected"]["bound"]) == {"dtype", "shape", "b64"}
    assert set(line["outcome"]["value"]) == {"dtype", "shape", "b64"}


def test_a_version_1_stream_is_still_read(tmp_path: Path) -> None:
    """Version 1 wrote arrays as lists of numbers; a run of that version can still be resumed or merged."""
    record = _record()
    line = record_to_json(record)
    line["case"] = record.case.as_dict()
    for side, names in (("expected", ("value", "bound")), ("outcome", ("value",))):
        for name in names:
            line[side][name] = encode_array(np.asarray(getattr(getattr(record, side), name), dtype=np.float64))
    text = json.dumps({"stream": 1, "meta": {}}) + "\n" + json.dumps(line, allow_nan=False) + "\n"
    (tmp_path / "records.jsonl").write_text(text)
    _, records = load_stream(tmp_path, Registry())
    _assert_same_record(records[0], record)


def test_a_stream_of_another_version_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text(json.dumps({"stream": 3, "meta": {}}) + "\n")
    with pytest.raises(InputError, match="stream version 3 is not one this bce-harness reads"):
        load_stream(tmp_path, Registry())
