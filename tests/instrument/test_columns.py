"""results.parquet (report/columns.py): every record of the default suite survives it as results.json has it,
the reader refuses another version or a torn file in one line, and compare of two results.parquet finds what
compare of the two results.json finds, a planted regression among it.

No TensorFlow: the default suite's records are judged against the reference with made-up outcomes (agreeing,
wrong, raising), so they are real records of every status the registry gives them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.case import Case, Outcome
from harness.cli import main
from harness.errors import InputError
from harness.judge.compare import compare
from harness.oracle import expected
from harness.report.bulk import Bulk
from harness.report.columns import COLUMNS_NAME, SCHEMA, VERSION_KEY, ColumnsFile, ColumnWriter, compare_columns
from harness.report.drift import Drift, compare_results, load_results
from harness.report.summary import meta, record_dict, write_reports
from harness.run.runner import Record, RunResult, judged

META = meta(seed=1, profile="keras3", versions={"tensorflow": "2.x", "keras": "3.x"}, env={}, extra={})


def _outcome(c: Case, how: str) -> Outcome:
    exp = expected(c)
    if how == "raises" or exp.value is None:
        return Outcome(error="ValueError: made up for the test")
    value = np.asarray(exp.value, dtype=np.float64)
    if how == "wrong":
        return Outcome(value=np.zeros_like(value) + 0.5, dtype=exp.dtype)
    if how == "nudged":  # one float32 ULP or so: within a pass's bound, but another digest
        return Outcome(value=value * (1 + 2**-22), dtype=exp.dtype)
    return Outcome(value=value, dtype=exp.dtype)


def _judge(c: Case, how: str, registry) -> Record:
    exp, out = expected(c), _outcome(c, how)
    return judged(c, compare(c, exp, out), exp, out, registry, "keras3")


@pytest.fixture(scope="module")
def suite_records(default_cases, registry) -> list[Record]:
    """The default suite, most cases agreeing, every 7th wrong and every 11th raising."""
    hows = ["raises" if i % 11 == 3 else "wrong" if i % 7 == 1 else "agrees" for i in range(len(default_cases))]
    return [_judge(c, how, registry) for c, how in zip(default_cases, hows, strict=True)]


def _write(records: list[Record], out: Path, **extra: Any) -> Path:
    write_reports(RunResult(tuple(records)), {**META, **extra}, out)
    return out


def _json(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, allow_nan=False))


def test_every_record_of_the_default_suite_survives_results_parquet(suite_records, tmp_path) -> None:
    statuses = Counter(r.status for r in suite_records)
    assert {"pass", "fail", "xfail", "outside"} <= set(statuses), statuses  # the check covers each kind of row
    out = _write(suite_records, tmp_path / "run")
    f = ColumnsFile(out / COLUMNS_NAME)
    back = {d["id"]: d for d in f.records()}
    assert len(back) == f.rows == len(suite_records)
    for r in suite_records:
        assert back[r.case.id] == _json(record_dict(r)), r.case.id
    # the same records results.json holds, and the run's meta and totals
    assert back == {d["id"]: d for d in load_results(out)["records"]}
    assert f.meta["seed"] == 1 and f.totals["total"] == len(suite_records)
    # a pass is its summary columns; everything else keeps its whole record in detail
    table = f.read(["status", "detail", "digest", "max_ulp"])
    passes = pc_equal(table.column("status"), "pass")
    assert table.column("detail").filter(passes).null_count == sum(passes)
    assert table.column("detail").filter(_not(passes)).null_count == 0
    assert pa.types.is_dictionary(f.file.schema_arrow.field("status").type)


def pc_equal(column: pa.ChunkedArray, value: str) -> list[bool]:
    return [v == value for v in column.to_pylist()]


def _not(mask: list[bool]) -> list[bool]:
    return [not m for m in mask]


def test_a_streamed_run_writes_results_parquet_through_its_bulk(suite_records, tmp_path) -> None:
    """The large run's path (report/bulk.py): summarised records go in as they arrive, the kept ones at the end."""
    bulk = Bulk(tmp_path, keep=lambda r: r.case.tags.get("family") == "special")
    for r in suite_records:
        bulk.add(r)
    assert bulk.summarised and bulk.kept
    assert not (tmp_path / COLUMNS_NAME).exists()  # only the .partial until the reports are written
    write_reports(RunResult(tuple(bulk.kept)), META, tmp_path, bulk)
    assert not (tmp_path / (COLUMNS_NAME + ".partial")).exists()
    f = ColumnsFile(tmp_path / COLUMNS_NAME)
    back = {d["id"]: d for d in f.records()}
    assert back == {r.case.id: _json(record_dict(r)) for r in suite_records}
    assert back == {d["id"]: d for d in load_results(tmp_path)["records"]}
    assert f.meta["summarised"] == bulk.summarised


def test_a_discarded_bulk_leaves_no_partial_file(suite_records, tmp_path) -> None:
    bulk = Bulk(tmp_path)
    passes = [r for r in suite_records if r.status == "pass"]
    for r in passes[:9]:
        bulk.add(r)
    bulk.columns.rows_per_group = 10  # the next pass summarised writes a row group: the .partial file exists
    bulk.add(passes[9])
    assert (tmp_path / (COLUMNS_NAME + ".partial")).exists()
    bulk.discard()
    assert not list(tmp_path.glob("results.parquet*"))


def test_row_groups_hold_at_most_rows_per_group(suite_records, tmp_path) -> None:
    w = ColumnWriter(tmp_path / COLUMNS_NAME, rows_per_group=100)
    for r in suite_records[:450]:
        w.add(r, record_dict(r))
    w.close(META)
    md = pq.ParquetFile(tmp_path / COLUMNS_NAME).metadata
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [100, 100, 100, 100, 50]


def _other_version(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({VERSION_KEY: b"9", b"bce_harness.meta": b"{}"}), path)


def _torn(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _not_parquet(path: Path) -> None:
    path.write_text('{"meta": {}}', encoding="utf-8")


def _no_version(path: Path) -> None:
    pq.write_table(pa.table({"id": ["a"]}), path)


@pytest.mark.parametrize(
    ("spoil", "said"),
    [(_other_version, "version '9'; this bce-harness reads versions 1, 2"), (_torn, "torn or not Parquet"),
     (_not_parquet, "torn or not Parquet"), (_no_version, "version none")],
    ids=["another-version", "torn", "not-parquet", "no-version"],
)  # fmt: skip
def test_the_reader_refuses_another_version_or_a_torn_file_in_one_line(suite_records, tmp_path, capsys, spoil, said) -> None:
    base = _write(suite_records[:40], tmp_path / "base")
    new = Path(shutil.copytree(base, tmp_path / "new"))
    spoil(new / COLUMNS_NAME)
    with pytest.raises(InputError, match=said) as info:
        ColumnsFile(new / COLUMNS_NAME)
    assert "\n" not in str(info.value)
    assert main(["compare", str(base), str(new)]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1


def test_the_schema_names_the_columns_a_user_queries() -> None:
    for name in ("id", "family", "api", "mode", "status", "kind", "max_abs", "max_rel", "max_ulp", "bound", "digest",
                 "divergence", "compute_dtype", "pred_dtype", "true_dtype", "from_logits", "label_smoothing", "axis",
                 "reduction", "option_dtype", "regime", "tags", "actual_error", "detail"):  # fmt: skip
        assert name in SCHEMA.names, name


def _planted(records: list[Record], registry) -> tuple[list[Record], dict[str, str]]:
    """NEW: BASE's records with a planted regression, a fix, an exact-only drift, a moved exception message and
    one case dropped; the ids of each."""
    by_status: dict[str, list[Record]] = {}
    for r in records:
        by_status.setdefault(r.status, []).append(r)
    passes = [r for r in by_status["pass"] if r.outcome is not None and r.outcome.value is not None and r.case.tags.get("family") == "values"]
    raised = [r for r in by_status["fail"] if r.outcome is not None and r.outcome.error is not None]
    fixable = [r for r in by_status["fail"] if r.outcome is not None and r.outcome.error is None and r.case.tags.get("family") == "values"]
    plants = {"regression": passes[0].case.id, "drift": passes[1].case.id, "fix": fixable[0].case.id,
              "message": raised[0].case.id, "dropped": passes[2].case.id}  # fmt: skip
    new = []
    for r in records:
        cid = r.case.id
        if cid == plants["dropped"]:
            continue
        if cid == plants["regression"]:
            r = _judge(r.case, "wrong", registry)
        elif cid == plants["drift"]:
            r = _judge(r.case, "nudged", registry)
        elif cid == plants["fix"]:
            r = _judge(r.case, "agrees", registry)
        elif cid == plants["message"]:
            out = Outcome(error="ValueError: made up for the test, moved")
            r = judged(r.case, compare(r.case, r.expected, out), r.expected, out, registry, "keras3")
        new.append(r)
    return new, plants


def _same(json_path: Drift, parquet_path: Drift) -> None:
    strip = {k: v for k, v in parquet_path.base.items() if k != "source"}
    assert {k: v for k, v in json_path.base.items() if k != "source"} == strip
    assert dataclasses.replace(json_path, base=parquet_path.base, new=parquet_path.new) == parquet_path


ENGINES = ["arrow", pytest.param("duckdb", marks=pytest.mark.skipif(importlib.util.find_spec("duckdb") is None, reason="duckdb is not installed"))]


@pytest.mark.parametrize("engine", ENGINES)
def test_compare_of_two_results_parquet_finds_what_compare_of_their_results_json_finds(suite_records, registry, tmp_path, engine) -> None:
    """Either join (DuckDB out of core, pyarrow in memory) gives compare_results' Drift, plants included."""
    base = _write(suite_records, tmp_path / "base")
    records, plants = _planted(suite_records, registry)
    new = _write(records, tmp_path / "new")
    for exact in (False, True):
        from_json = compare_results(load_results(base), load_results(new), exact=exact)
        from_columns = compare_columns(ColumnsFile(base / COLUMNS_NAME), ColumnsFile(new / COLUMNS_NAME), exact=exact, engine=engine)
        _same(from_json, from_columns)
        # and the comparison is not empty: each plant is where it belongs
        assert [c.id for c in from_columns.new_divergences] == [plants["regression"]] and from_columns.regressed
        assert plants["fix"] in [c.id for c in from_columns.fixed]
        assert plants["message"] in [c.id for c in from_columns.behaviour]
        assert (plants["drift"] in [c.id for c in from_columns.drift]) == exact
        assert from_columns.only_base == (plants["dropped"],) and from_columns.compared == len(records)
        assert sum(from_columns.groups.values()) == len(records)
    # a run against itself: nothing
    same = compare_columns(ColumnsFile(base / COLUMNS_NAME), ColumnsFile(base / COLUMNS_NAME), exact=True, engine=engine)
    assert not (same.new_divergences or same.unexplained or same.fixed or same.drift or same.behaviour)


def test_compare_reads_results_parquet_when_both_folders_have_one(suite_records, registry, tmp_path, capsys) -> None:
    base = _write(suite_records, tmp_path / "base")
    records, plants = _planted(suite_records, registry)
    new = _write(records, tmp_path / "new")
    for folder in (base, new):  # the parquet path alone: no results.json to fall back on
        (folder / "results.json").unlink()
    assert main(["compare", str(base), str(new), "--allow-subset"]) == 1
    out = capsys.readouterr().out
    assert plants["regression"] in out and "NEW regressed" in out
    assert main(["compare", str(base), str(new)]) == 2  # a dropped case is still refused without --allow-subset
    assert main(["compare", str(base), str(new), "--allow-subset", "--out", str(tmp_path / "drift")]) == 1
    drift = json.loads((tmp_path / "drift" / "drift.json").read_text(encoding="utf-8"))
    assert [c["id"] for c in drift["new_divergences"]] == [plants["regression"]]
    assert (tmp_path / "drift" / "junit.xml").read_text(encoding="utf-8").count("<testcase") == len(records)


def test_two_results_with_different_seeds_are_refused_on_the_parquet_path_too(suite_records, tmp_path) -> None:
    base = _write(suite_records[:30], tmp_path / "base")
    new = _write(suite_records[:30], tmp_path / "new", seed=2)
    with pytest.raises(InputError, match="different seeds"):
        compare_columns(ColumnsFile(base / COLUMNS_NAME), ColumnsFile(new / COLUMNS_NAME))


def test_compare_reports_from_results_parquet_are_those_from_results_json(suite_records, registry, tmp_path) -> None:
    """compare --out on the parquet path reads NEW's records a batch at a time as summaries (no arrays): its
    junit.xml and report.html are the ones the JSON path writes from the whole records."""
    base = _write(suite_records, tmp_path / "base")
    records, _ = _planted(suite_records, registry)
    new = _write(records, tmp_path / "new")
    args = ["--allow-subset", "--exact"]
    assert main(["compare", str(base / "results.json"), str(new / "results.json"), *args, "--out", str(tmp_path / "j")]) == 1
    assert main(["compare", str(base), str(new), *args, "--out", str(tmp_path / "p")]) == 1
    for name in ("junit.xml", "report.html", "summary.md"):
        j = (tmp_path / "j" / name).read_text(encoding="utf-8").replace(str(base / "results.json"), "B").replace(str(new / "results.json"), "N")
        p = (tmp_path / "p" / name).read_text(encoding="utf-8").replace(str(base / COLUMNS_NAME), "B").replace(str(new / COLUMNS_NAME), "N")
        assert j == p, name


def _pass(cid: str, dtype: str | None, ulp: int | None, diff: Any, tags: dict | None = None, logits: bool | None = None) -> dict[str, Any]:
    return {"id": cid, "status": "pass", "compute_dtype": dtype, "max_ulp": ulp, "max_abs": diff, "tags": tags,
            "options": {} if logits is None else {"from_logits": logits}}  # fmt: skip


def _other(cid: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "status": status, "compute_dtype": "float32", "tags": {"family": "values", "regime": "mid"}, "options": {}, **extra}


# Passes whose keys are odd (no dtype, an empty one, no tags, a config family, no ULP, no or a NaN difference, ids
# that need escapes) and heatmap cells whose largest ULP comes twice, across batches and within one, with
# another difference each time; every other status between them
_ODD = [
    _pass("a", "float32", 5, 0.25, {"family": "values", "regime": "mid"}),
    _other("b", "xfail", kind="nan_inf", divergence="known-one", message="NaN/inf <location>"),
    _pass("c", "float32", 5, 0.5, {"family": "values", "regime": "mid"}, logits=True),
    _pass("d", None, 2, None, {"family": "values", "regime": "mid"}),
    _pass("e", "", 2, "nan", {"family": "values"}),
    _other("f", "fail", kind="tolerance", message="Not equal\n& more", note="n\"q"),
    _pass("g & <h> \"i\"", "float16", 1024, 1e-30, None, logits=None),
    _pass("j\x01\tk", "float16", 1024, 2e-30, {"family": "config", "setting": "epsilon=0.1", "regime": "tiny"}),
    _pass("l", "float16", 70, 3.0, {"family": "config", "setting": "epsilon=0.1", "regime": "tiny"}, logits=True),
    _other("m", "xpass", note="registered divergence 'x' no longer reproduces"),
    _other("n", "error", note="KeyError: boom", message="internal error"),
    _pass("o", "bfloat16", None, 0.125, {"family": "values", "regime": "mid"}),
    _pass("p", "float32", 7, 0.75, {"family": "values", "regime": "mid"}),
    _pass("q", "float32", 7, 0.875, {"family": "values", "regime": "mid"}),
    _other("r", "outside", note="label smoothing 1.5"),
    _other("s", "unsupported", note=""),
    _pass("t", "float16", 1024, 4e-30, {"family": "config", "setting": "epsilon=0.1", "regime": "tiny"}),
]


@pytest.mark.parametrize("totals", [True, False])
def test_the_reports_from_columns_are_those_from_the_records_one_at_a_time(tmp_path, monkeypatch, totals) -> None:
    """compare --out writes a results.parquet's report.html and junit.xml from one pass over its columns
    (SummaryRows.write_reports: the passes counted by their keys, their test cases made many at once); the
    files are the ones report.html and junit.xml's writers make of the same rows one record at a time, for
    batches that split a heatmap cell's ties, and with or without the totals junit.xml's head can take."""
    from harness.report.columns import SummaryRows, row_of
    from harness.report.html import write_html
    from harness.report.junit import write_junit

    w = ColumnWriter(tmp_path / COLUMNS_NAME, rows_per_group=7)
    for d in _ODD:
        row = row_of({**d, "tags": d["tags"] or {}})
        w.add_row({**row, "tags": None} if d["tags"] is None else row)  # (a null tags column, as "{}" reads)
    counted = {**Counter(d["status"] for d in _ODD), "total": len(_ODD)}
    w.close(META, {**dict.fromkeys(("pass", "fail", "xfail", "xpass", "error", "outside", "unsupported"), 0), **counted} if totals else {})
    monkeypatch.setattr(SummaryRows, "BATCH", 3)
    results = ColumnsFile(tmp_path / COLUMNS_NAME).summaries()
    empty = {"meta": results["meta"], "records": []}  # a drift section on the page, whatever it holds
    drift = compare_results(empty, empty)
    write_html(results, tmp_path / "one.html", drift=drift)
    write_junit(results, tmp_path / "one.xml")
    results["records"].write_reports(results, tmp_path / "columns.html", tmp_path / "columns.xml", drift=drift)
    for one, columns in (("one.html", "columns.html"), ("one.xml", "columns.xml")):
        assert (tmp_path / one).read_text(encoding="utf-8") == (tmp_path / columns).read_text(encoding="utf-8"), one
    page = (tmp_path / "columns.html").read_text(encoding="utf-8")
    # each tied cell keeps its first record, within a batch and across two
    for cell in ("float32 / mid: worst 7 ULP, |diff| 0.75<", "float16 / tiny: worst 1024 ULP, |diff| 2e-30<", "? / ?: worst 2 ULP, |diff| nan<"):
        assert cell in page, cell
    assert (tmp_path / "columns.xml").read_text(encoding="utf-8").count("<testcase") == len(_ODD)


def test_a_version_1_file_is_read_with_its_old_column_name(suite_records, tmp_path) -> None:
    """Version 1 named y_pred's dtype input_dtype: read, it is pred_dtype, as results.json's formats before 7
    are (drift.load_results)."""
    base = _write(suite_records[:40], tmp_path / "base")
    path = base / COLUMNS_NAME
    table = pq.read_table(path)
    old = table.rename_columns(["input_dtype" if n == "pred_dtype" else n for n in table.column_names])
    kv = pq.ParquetFile(path).metadata.metadata  # the version, the meta and the totals
    pq.write_table(old.replace_schema_metadata({**kv, VERSION_KEY: b"1"}), path)
    f = ColumnsFile(path)
    records = list(f.records())
    assert len(records) == 40 and all("input_dtype" not in r and r["pred_dtype"] for r in records)
    assert f.read(["pred_dtype"]).column("pred_dtype").to_pylist() == table.column("pred_dtype").to_pylist()
    assert not compare_columns(f, ColumnsFile(path)).regressed
