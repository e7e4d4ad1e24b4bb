"""One writer, one reader, one version per file the harness writes: what the writer writes, the reader gives back,
and a file of a newer version than this bce-harness knows is refused in one line naming the file.

The files, their version constants and their pairs (the round trips drawn with Hypothesis are here unless named):

  records.jsonl          stream.STREAM_VERSION        RecordStream / load_stream (a line: record_to_json /
                                                      record_from_json, test_records.py)
  findings.jsonl         findings.FINDINGS_VERSION    FindingsLog / load_findings
  passes.partial.jsonl   bulk.PASSES_VERSION          Bulk.add / Bulk.lines (it lives only while a run reports)
  results.json           summary.FORMAT_VERSION       summary.write_reports (build_results) / drift.load_results
  results.parquet        columns.VERSION              ColumnWriter / ColumnsFile (test_records.py; a newer or torn
                                                      file: test_columns.py)
  drift.json             drift.DRIFT_VERSION          drift.write_drift / drift.read_drift
  audit.json             audit.AUDIT_VERSION          audit.write_audit / audit.read_audit
  case files, and fuzz's saved.CASE_VERSION           saved.save_case (fuzz.save_finding) / saved.read_saved
  regressions/<fp>.json                               (load_case: the case alone)

No TensorFlow: the records, changes and rows are drawn, not run.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.audit import AUDIT_VERSION, read_audit, write_audit
from harness.case import Case
from harness.errors import InputError
from harness.fuzz import Finding, save_finding
from harness.generate import strategies
from harness.generate.saved import CASE_VERSION, DEFAULT_REGRESSIONS, case_files, load_case, read_saved, save_case
from harness.jsonio import encode_array, encode_number
from harness.oracle import expected
from harness.report import summary
from harness.report.bulk import Bulk
from harness.report.drift import DRIFT_VERSION, Change, Drift, compare_results, load_results, read_drift, write_drift
from harness.run.findings import FINDINGS_NAME, FINDINGS_VERSION, FindingsLog, load_findings
from harness.run.runner import STATUSES, Record, RunResult, judged
from harness.run.stream import STREAM_NAME, STREAM_VERSION, RecordStream, load_stream
from tests.instrument.test_drift import BASE, NEW
from tests.instrument.test_records import (
    EMPTY,
    TEXT,
    assert_same_case,
    assert_same_record,
    comparisons,
    expectations,
    outcomes,
)
from tests.instrument.test_records import cases as any_cases

ROOT = Path(__file__).resolve().parents[2]
FINITE = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | FINITE | TEXT


def _json(value: Any) -> Any:
    """``value`` as JSON gives it back: what a reader can return at best."""
    return json.loads(json.dumps(value, allow_nan=False))


# A training case of rank-0 inputs is not one a suite makes (judged's facets index its batch): not drawn here.
RUN_CASES = any_cases().filter(lambda c: c.training is None or c.y_pred.ndim > 0)


def _records(draw: st.DrawFn, *, ids: list[str] | None = None) -> Record:
    case, exp, out, comparison = draw(RUN_CASES), draw(st.none() | expectations()), draw(st.none() | outcomes()), draw(comparisons())
    if ids is not None:
        case = replace(case, id=f"{len(ids)}/{case.id}")
        ids.append(case.id)
    if draw(st.booleans()):
        return Record(case, "error", comparison, exp, out, note="internal error in the comparator")
    return judged(case, comparison, exp, out, EMPTY, "keras3")


@st.composite
def records(draw: st.DrawFn) -> Record:
    return _records(draw)


@st.composite
def runs(draw: st.DrawFn) -> tuple[Record, ...]:
    """Records of one run: ids unique, as a run's are."""
    ids: list[str] = []
    return tuple(_records(draw, ids=ids) for _ in range(draw(st.integers(0, 4))))


# -- case files (generate/saved.py) and fuzz's findings (fuzz.save_finding) --------------------------------------


def findings_about() -> st.SearchStrategy[dict[str, Any]]:
    """A case file's ``finding``: fuzz's fields and provenance, and any field a later writer may add."""
    known = st.fixed_dictionaries(
        {"fingerprint": TEXT},
        optional={"kind": st.none() | TEXT, "message": st.none() | TEXT, "actual": st.none() | TEXT, "found_utc": st.none() | TEXT,
                  "seed": st.none() | st.integers(0, 2**64), "shard": st.none() | st.tuples(st.integers(1, 9), st.integers(1, 9)).map(list),
                  "examples": st.none() | st.integers(0, 10**6), "tensorflow": st.none() | TEXT, "loss_factory": st.none() | TEXT},
    )  # fmt: skip
    return st.tuples(known, st.dictionaries(TEXT.map(lambda k: f"later {k}"), SCALARS, max_size=2)).map(lambda kv: {**kv[0], **kv[1]})


@given(any_cases() | strategies.cases(), st.none() | findings_about())
def test_a_case_file_reads_back_as_saved(case: Case, finding: dict[str, Any] | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_case(Path(tmp) / "case.json", case, finding=finding)
        assert next(iter(json.loads(path.read_text(encoding="utf-8")))) == "format_version"
        saved = read_saved(path)
        again = load_case(path)
    assert saved.version == CASE_VERSION and saved.finding == (None if finding is None else _json(finding))
    for back in (saved.case, again):
        assert_same_case(case, back)
        assert back.as_dict() == _json(case.as_dict())


@given(strategies.cases(), comparisons().filter(lambda c: c.kind is not None), outcomes(), findings_about())
def test_a_fuzz_finding_reads_back_as_save_finding_wrote_it(case: Case, comparison, out, provenance: dict[str, Any]) -> None:
    provenance = {k: v for k, v in provenance.items() if k not in ("fingerprint", "kind", "message", "actual")}
    finding = Finding("0123456789ab", replace(case, id="fuzz/0123456789ab"), expected(case), out, comparison)
    with tempfile.TemporaryDirectory() as tmp:
        saved = save_finding(finding, out=Path(tmp) / "out", regressions=Path(tmp) / "regressions", provenance=provenance)
        assert saved.new and saved.repro.exists()
        back = read_saved(saved.regression)
    assert back.version == CASE_VERSION
    assert_same_case(finding.case, back.case)
    want = {"fingerprint": "0123456789ab", "kind": comparison.kind, "message": comparison.message, "actual": finding.actual, **provenance}
    assert back.finding == _json(want)


def test_a_case_file_without_a_version_is_version_0(tmp_path: Path) -> None:
    """A case file written before case files had a version (cases/regressions holds some) is read, as 0."""
    path = save_case(tmp_path / "old.json", _a_case(), finding={"fingerprint": "x"})
    old = {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if k != "format_version"}
    path.write_text(json.dumps(old), encoding="utf-8")
    saved = read_saved(path)
    assert (saved.version, saved.finding, saved.case.as_dict()) == (0, {"fingerprint": "x"}, _a_case().as_dict())
    for shipped in case_files([ROOT / DEFAULT_REGRESSIONS]):
        saved = read_saved(shipped)
        assert saved.version == json.loads(shipped.read_text(encoding="utf-8")).get("format_version", 0)
        assert saved.finding is not None and saved.case.id == f"fuzz/{saved.finding['fingerprint']}"


# -- audit.json (audit.py) -------------------------------------------------------------------------------------------

COUNT = st.integers(0, 2**40)
ROWS = st.fixed_dictionaries(
    {"group": TEXT, "n": COUNT, "ulp_0": COUNT, "ulp_1": COUNT, "ulp_2": COUNT, "ulp_3_plus": COUNT, "max_ulp": COUNT,
     "mean_ulp": st.floats(0, 1e6), "worst_input": TEXT, "zeros_where_normal": COUNT, "nan_either_side": COUNT, "nan_mismatch": COUNT},
) | st.fixed_dictionaries({"group": TEXT, "error": TEXT})  # fmt: skip


@given(
    st.lists(ROWS, max_size=5),
    st.dictionaries(TEXT, SCALARS, max_size=5),
    TEXT,
    st.dictionaries(st.sampled_from(["target", "reference", "total"]), st.floats(0, 1e6)),
)
def test_an_audit_reads_back_as_written(rows: list[dict[str, Any]], versions: dict[str, Any], profile: str, seconds: dict[str, float]) -> None:
    found = {"rows": rows, "seconds": seconds}
    with tempfile.TemporaryDirectory() as tmp:
        back = read_audit(write_audit(Path(tmp) / "audit.json", found, versions=versions, profile=profile))
    assert back == _json({"format_version": AUDIT_VERSION, "versions": versions, "profile": profile, **found})


def test_an_audit_without_a_version_is_version_0(tmp_path: Path) -> None:
    """An audit.json of an earlier bce-harness ({"versions", "profile", "rows", "seconds"}) is read as it is."""
    old = {"versions": {"tensorflow": "2.20.0"}, "profile": "keras3", "rows": [{"group": "g", "n": 1, "max_ulp": 0}], "seconds": {"total": 1.0}}
    (tmp_path / "audit.json").write_text(json.dumps(old), encoding="utf-8")
    assert read_audit(tmp_path / "audit.json") == old


# -- drift.json (report/drift.py) ------------------------------------------------------------------------------------


def _array() -> st.SearchStrategy[Any]:
    shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)
    return hnp.arrays(np.float64, shapes, elements=st.floats(width=64)).map(encode_array)


SIDES = st.fixed_dictionaries(
    {"status": st.sampled_from(STATUSES), "kind": st.none() | TEXT, "divergence": st.none() | TEXT, "actual": st.none() | _array(),
     "actual_dtype": st.none() | TEXT, "actual_error": st.none() | TEXT, "bound": st.none() | _array(), "digest": st.none() | TEXT,
     "preview": st.none() | st.lists(st.floats().map(encode_number), max_size=4)},
)  # fmt: skip
CHANGES = st.builds(
    Change,
    id=TEXT, group=TEXT, what=TEXT, before=SIDES, after=SIDES, moved=st.integers(0, 10**6), total=st.integers(0, 10**6),
    max_abs=st.none() | st.floats(), max_ulp=st.none() | st.integers(0, 2**63),
    rows=st.lists(st.tuples(TEXT, st.floats(), st.floats(), st.floats(0)), max_size=3).map(tuple),
)  # fmt: skip
METAS = st.fixed_dictionaries(
    {"tensorflow": st.none() | TEXT, "keras": st.none() | TEXT, "profile": st.none() | TEXT},
    optional={"backend": st.fixed_dictionaries({"name": st.sampled_from(["tensorflow", "jax", "torch"]), "version": TEXT})},
)
CHANGE_LISTS = st.lists(CHANGES, max_size=3).map(tuple)
DRIFTS = st.builds(
    Drift,
    base=METAS, new=METAS, exact=st.booleans(), new_divergences=CHANGE_LISTS, unexplained=CHANGE_LISTS, fixed=CHANGE_LISTS,
    drift=CHANGE_LISTS, behaviour=CHANGE_LISTS, only_base=st.lists(TEXT, max_size=3).map(tuple),
    only_new=st.lists(TEXT, max_size=3).map(tuple), compared=st.integers(0, 10**6),
)  # fmt: skip


@given(DRIFTS)
def test_a_drift_reads_back_as_written(drift: Drift) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        back = read_drift(write_drift(drift, Path(tmp) / "drift.json"))
    assert back == _json({"format_version": DRIFT_VERSION, **drift.as_dict()})
    assert back["regressed"] is drift.regressed and [c["id"] for c in back["drift"]] == [c.id for c in drift.drift]


def test_the_drift_json_compare_out_writes_reads_back(tmp_path: Path) -> None:
    from harness.cli import main

    for side, data in (("base", BASE), ("new", NEW)):
        (tmp_path / side).mkdir()
        (tmp_path / side / "results.json").write_text(json.dumps(data), encoding="utf-8")
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "new"), "--out", str(tmp_path / "out")]) == 1
    back = read_drift(tmp_path / "out")
    d = compare_results(load_results(tmp_path / "base"), load_results(tmp_path / "new"))
    assert back == _json({"format_version": DRIFT_VERSION, **d.as_dict()})


def test_a_drift_without_a_version_is_version_0(tmp_path: Path) -> None:
    old = json.loads(json.dumps(compare_results(BASE, NEW).as_dict()))  # as compare --out wrote it before
    (tmp_path / "drift.json").write_text(json.dumps(old), encoding="utf-8")
    assert read_drift(tmp_path / "drift.json") == old


# -- the run's files: records.jsonl, findings.jsonl, passes.partial.jsonl, results.json -----------------------------


@given(st.lists(records(), max_size=4), st.dictionaries(TEXT, SCALARS, max_size=3))
def test_records_read_back_from_their_stream_as_appended(written: list[Record], extra: dict[str, Any]) -> None:
    meta = {**extra, "seed": 1, "profile": "keras3"}
    with tempfile.TemporaryDirectory() as tmp:
        with RecordStream(tmp, meta) as stream:
            for r in written:
                stream.append(r)
        head = json.loads((Path(tmp) / STREAM_NAME).read_text(encoding="utf-8").splitlines()[0])
        back_meta, back = load_stream(tmp, EMPTY)
    assert head["stream"] == STREAM_VERSION and back_meta == _json(meta) and len(back) == len(written)
    for a, b in zip(written, back, strict=True):
        assert_same_record(a, b)


FINDINGS = st.tuples(TEXT, st.dictionaries(TEXT, SCALARS, max_size=3)).map(lambda m: {**m[1], "message": m[0]})


@given(st.lists(FINDINGS, max_size=4), st.integers(0, 4))
def test_findings_read_back_as_logged_across_a_resume(written: list[dict[str, Any]], split: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with FindingsLog(tmp) as log:
            for f in written[:split]:
                log(f)
        with FindingsLog(tmp, append=True) as log:  # --resume appends
            for f in written[split:]:
                log(f)
        assert json.loads((Path(tmp) / FINDINGS_NAME).read_text(encoding="utf-8").splitlines()[0]) == {"findings": FINDINGS_VERSION}
        assert load_findings(tmp) == _json(written)


@given(st.lists(st.tuples(RUN_CASES, comparisons().map(lambda c: replace(c, kind=None, also=())), st.none() | expectations(), st.none() | outcomes()), max_size=4))
def test_summarised_passes_read_back_as_added(drawn) -> None:
    passes = [judged(case, comparison, exp, out, EMPTY, "keras3") for case, comparison, exp, out in drawn]
    with tempfile.TemporaryDirectory() as tmp:
        bulk = Bulk(tmp)
        for r in passes:
            bulk.add(r)
        try:
            back = [json.loads(line) for line in bulk.lines()]
        finally:
            bulk.discard()
    assert back == _json([summary.record_dict(r) for r in passes])


@given(runs())
def test_results_json_reads_back_as_written(run: tuple[Record, ...]) -> None:
    result = RunResult(records=run, seconds={"total": 1.5})
    run_meta = summary.meta(seed=1, profile="keras3", versions={"tensorflow": "2.20.0", "keras": "3.14.0"}, env={}, extra={})
    with tempfile.TemporaryDirectory() as tmp:
        path = summary._write_results(Path(tmp) / "results.json", summary.build_results(result, run_meta), None)  # write_reports' writer
        back = load_results(path)
    want = _json(summary.build_results(result, run_meta))
    want["meta"]["source"] = str(path)
    assert back["meta"]["format_version"] == summary.FORMAT_VERSION and back == want


# -- a newer version than this bce-harness reads: one line, naming the file -----------------------------------------


def _newer_case(tmp: Path) -> tuple[Path, Callable[[Path], object]]:
    path = save_case(tmp / "case.json", _a_case())
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, "format_version": CASE_VERSION + 1, "a_later_field": 1}), encoding="utf-8")
    return path, read_saved


def _a_case() -> Case:
    return Case(id="formats/x", y_true=np.array([1.0, 0.0]), y_pred=np.array([0.75, 0.25]), true_dtype="float32", pred_dtype="float32")


def _newer_audit(tmp: Path) -> tuple[Path, Callable[[Path], object]]:
    path = write_audit(tmp / "audit.json", {"rows": [], "seconds": {}}, versions={}, profile="keras3")
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, "format_version": AUDIT_VERSION + 1, "rows": "a later layout"}), encoding="utf-8")
    return path, read_audit


def _newer_drift(tmp: Path) -> tuple[Path, Callable[[Path], object]]:
    path = write_drift(compare_results(BASE, NEW), tmp / "drift.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, "format_version": DRIFT_VERSION + 1, "drift": {"a later": "layout"}}), encoding="utf-8")
    return path, read_drift


def _newer_results(tmp: Path) -> tuple[Path, Callable[[Path], object]]:
    path = tmp / "results.json"
    path.write_text(json.dumps({**NEW, "meta": {**NEW["meta"], "format_version": summary.FORMAT_VERSION + 1}}), encoding="utf-8")
    return path, load_results


def _newer_stream(tmp: Path) -> tuple[Path, Callable[[Path], object]]:
    path = tmp / STREAM_NAME
    path.write_text(json.dumps({"stream": STREAM_VERSION + 1, "meta": {}}) + "\n", encoding="utf-8")
    return path, lambda p: load_stream(p, EMPTY)


def _newer_findings(tmp: Path) -> tuple[Path, Callable[[Path], object]]:
    path = tmp / FINDINGS_NAME
    path.write_text(json.dumps({"findings": FINDINGS_VERSION + 1}) + "\n" + json.dumps({"message": "m"}) + "\n", encoding="utf-8")
    return path, lambda p: load_findings(p.parent)


@pytest.mark.parametrize(
    ("newer", "version"),
    [(_newer_case, CASE_VERSION + 1), (_newer_audit, AUDIT_VERSION + 1), (_newer_drift, DRIFT_VERSION + 1),
     (_newer_results, summary.FORMAT_VERSION + 1), (_newer_stream, STREAM_VERSION + 1), (_newer_findings, FINDINGS_VERSION + 1)],
    ids=["case file", "audit.json", "drift.json", "results.json", "records.jsonl", "findings.jsonl"],
)  # fmt: skip
def test_a_newer_version_is_refused_in_one_line_naming_the_file(tmp_path: Path, newer, version: int) -> None:
    path, read = newer(tmp_path)
    with pytest.raises(InputError) as info:
        read(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)) and str(version) in message, message
    assert "newer" in message or "not one this bce-harness reads" in message, message


@pytest.mark.parametrize(
    ("write", "read", "what"),
    [(lambda p: save_case(p, _a_case()), read_saved, "case file"),
     (lambda p: write_audit(p, {"rows": []}, versions={}, profile="keras3"), read_audit, "audit.json"),
     (lambda p: write_drift(compare_results(BASE, BASE), p), read_drift, "drift.json")],
    ids=["case file", "audit.json", "drift.json"],
)  # fmt: skip
@pytest.mark.parametrize("bad", [-1, "1", 1.0, None, True])
def test_a_version_that_is_not_one_is_named(tmp_path: Path, write, read, what: str, bad: Any) -> None:
    path = write(tmp_path / "file.json")
    path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), "format_version": bad}), encoding="utf-8")
    with pytest.raises(InputError, match=r"format_version=.* is not an integer in \[0, 1\]") as info:
        read(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
