"""Strict reading of files from elsewhere, and files written as the user's (issue 13, point 5)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from harness.errors import InputError, UsageError
from harness.generate.grid import load_special_cases
from harness.generate.saved import load_case
from harness.jsonio import atomic_write_text, decode_array, decode_number, loads, read_toml
from harness.judge.registry import DEFAULT_REGISTRY, load_registry

CASE = {
    "id": "saved/x",
    "options": {"from_logits": False, "label_smoothing": 0.0, "axis": -1, "reduction": "none", "dtype": None},
    "true_dtype": "float32",
    "pred_dtype": "float32",
    "y_true": {"shape": [1, 2], "data": [0.0, 1.0]},
    "y_pred": {"shape": [1, 2], "data": [0.25, 0.5]},
}


def _write(tmp_path: Path, text: str, name: str = "case.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_case_file_loads(tmp_path: Path) -> None:
    assert load_case(_write(tmp_path, json.dumps(CASE))).id == "saved/x"


@pytest.mark.parametrize("text", ["1e400", "-1e999"])
def test_a_number_that_overflows_is_refused_not_read_as_infinity(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, json.dumps(CASE).replace("0.25", text))
    with pytest.raises(InputError, match=f'{text}.*"inf"'):
        load_case(path)


def test_the_documented_spellings_of_non_finite_numbers_are_read(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps(CASE).replace("0.25", '"inf"').replace("0.5", '"nan"'))
    assert np.isinf(load_case(path).y_pred[0, 0]) and np.isnan(load_case(path).y_pred[0, 1])


@pytest.mark.parametrize(
    "where, value",
    [("y_pred", {"shape": [1, 2], "data": [True, 0.5]}), ("y_pred", [[True, False]]), ("y_true", [[True, 1]]),
     ("sample_weight", True), ("y_true", {"shape": [2], "data": [0.0, False]})],
)  # fmt: skip
def test_a_boolean_where_the_schema_has_a_number_is_refused(tmp_path: Path, where: str, value) -> None:
    path = _write(tmp_path, json.dumps({**CASE, where: value}))
    with pytest.raises(InputError, match=f"{where}.*boolean"):
        load_case(path)


def test_booleans_are_labels_where_true_dtype_is_bool(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps({**CASE, "true_dtype": "bool", "y_true": [[False, True]]}))
    assert load_case(path).y_true.tolist() == [[0.0, 1.0]]


def test_decode_number_refuses_booleans() -> None:
    with pytest.raises(UsageError, match="boolean"):
        decode_number(True, "max_abs")
    with pytest.raises(UsageError):
        decode_array(False, "x")


def test_deep_nesting_is_a_value_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="nested"):
        loads("[" * 100_000)


def test_a_case_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps(CASE) + " " * 1000)
    with pytest.raises(InputError, match=r"over the limit of 100 \(raise it with --max-case-bytes\)"):
        load_case(path, max_bytes=100)
    assert load_case(path, max_bytes=10_000).id == "saved/x"


def test_a_registry_given_as_special_cases_is_refused_by_kind() -> None:
    with pytest.raises(InputError, match=r"is a registry.*not a special-case table"):
        load_special_cases(DEFAULT_REGISTRY)


def test_a_special_case_table_given_as_registry_is_refused_by_kind() -> None:
    from harness.generate.grid import DEFAULT_SPECIAL_CASES

    with pytest.raises(InputError, match=r"special-case table.*not a registry"):
        load_registry(DEFAULT_SPECIAL_CASES)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "no \\[\\[case\\]\\]"),
        ("[other]\nx = 1\n", "unknown top-level key 'other'"),
        ('[[case]]\nid = "a"\ny_true = [1.0]\ny_pred = [1e400]\n', "not a finite float64"),
        ('[[case]]\nid = "a"\ny_true = [1.0]\ny_pred = [nan]\n', "not a finite float64"),
        ('[[case]]\nid = "a"\ny_true = [1.0]\ny_pred = ["NaN"]\n', "'NaN' is not a number"),
        ('[[case]]\nid = "a"\ny_true = [true]\ny_pred = [0.5]\n', "True is not a number"),
        ('[[case]]\nid = "a"\ny_true = [1.0]\ny_pred = [0.5]\ndtype = "float8"\n', "true_dtype='float8'"),
        ('[[case]]\nid = 7\ny_true = [1.0]\ny_pred = [0.5]\n', "id=7"),
    ],
)
def test_special_case_tables_are_read_strictly(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        load_special_cases(_write(tmp_path, text, "special.toml"))


def test_read_toml_names_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        read_toml(tmp_path, "registry")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_reports_are_written_with_the_users_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "report.md", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_junit_stays_xml_whatever_a_record_holds(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from artifacts import record, results

    from harness.report.junit import render_junit

    data = results([record("special/\x00bell\x07", error="ValueError: \x1b[31m\ufffe")])
    root = ET.fromstring(render_junit(data))
    (case,) = root.iter("testcase")
    assert case.get("name") == "special/\\x00bell\\x07"
