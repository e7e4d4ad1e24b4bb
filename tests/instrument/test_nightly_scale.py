"""The nightly at scale without TensorFlow: suites as streams, passing records as summaries, and compare
--exact on them (each with a planted change it must catch), the estimate, and one streamed run end to end.

The records are the reference's expectations with synthetic outcomes (an outcome equal to the expected
value, rounded to its dtype, passes); the end-to-end run (TensorFlow, in this process) is a few dozen cases.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json

import numpy as np
import pytest

from harness.case import Outcome
from harness.dtypes import round_to
from harness.errors import UsageError
from harness.generate.grid import NIGHTLY_SEEDS, Suite, parse_seeds, sweep_family
from harness.judge.compare import compare
from harness.judge.registry import load_registry
from harness.oracle import expected
from harness.report.bulk import Bulk
from harness.report.drift import compare_results, load_results
from harness.report.summary import FORMAT_VERSION, meta, write_reports
from harness.run.estimate import MAIN_COST, estimate, kind_of, kinds, render
from harness.run.runner import RunResult, judged
from harness.run.stream import ids_fingerprint, suite_fingerprint

REGISTRY = load_registry()


def test_a_suites_ids_are_its_cases_in_order_unique_and_stable() -> None:
    suite = Suite("default", seeds=(3, 4), special_cases=None)
    cases = list(suite)
    ids = list(suite.ids())
    assert ids == [c.id for c in cases] and len(set(ids)) == len(ids) == len(suite)
    assert len(suite) == len(suite.base) + 2 * suite.per_seed
    sweep = [c for c in cases if "/seed=" in c.id]
    assert {c.id.rsplit("=", 1)[1] for c in sweep} == {"3", "4"}
    again = {c.id: c for c in sweep_family(4)}
    for c in sweep[-5:]:  # the same id gives the same data, whatever else is generated
        assert np.array_equal(again[c.id].y_pred, c.y_pred, equal_nan=True)
    first = {c.id.rsplit("/", 1)[0]: c.y_pred for c in sweep if c.id.endswith("=3")}
    differ = [k for c in sweep if c.id.endswith("=4") for k in [c.id.rsplit("/", 1)[0]]
              if not np.array_equal(first[k], c.y_pred, equal_nan=True)]  # fmt: skip
    assert len(differ) > len(first) // 2, "another seed must draw other values"


def test_selection_and_shards_of_a_stream_are_selects() -> None:
    suite = Suite("default", seeds=(1, 3), special_cases=None)
    ids = list(suite.ids())
    view = suite.id_view()  # what a run holds instead of the list: each id made when read
    assert len(view) == len(ids) and [view[p] for p in range(len(ids))] == ids == list(view)
    assert view[-1] == ids[-1] and view[len(ids) - 3 :] == ids[-3:]
    with pytest.raises(IndexError):
        view[len(ids)]
    for kw in ({}, {"shard": (2, 3)}, {"max_cases": 100}, {"pattern": "values/logits/*"}, {"pattern": "values/*", "max_cases": 50, "shard": (2, 3)}):
        positions = suite.chosen(**kw)
        assert [c.id for c in suite.cases_at(positions)] == [ids[p] for p in positions] == list(view.take(positions))
        # the run's fingerprint of the ids, hashed many at a time, is the one hashed id by id
        by_one = hashlib.sha256(b"".join(ids[p].encode() + b"\0" for p in positions)).hexdigest()[:16]
        assert ids_fingerprint(view.take(positions)) == by_one == suite_fingerprint(suite.cases_at(positions))
    assert list(suite.chosen()) == list(range(len(ids)))
    whole = suite.chosen(max_cases=90)
    slices = [suite.chosen(max_cases=90, shard=(k, 3)) for k in (1, 2, 3)]
    joined = [p for part in slices for p in part]
    assert sorted(joined) == whole and len(set(joined)) == len(whole)


def test_the_nightly_is_about_a_million_records_and_every_sweep_case_stacks() -> None:
    per_seed = Suite("default", seeds=(0, 0), special_cases=None).per_seed
    n = (NIGHTLY_SEEDS[1] - NIGHTLY_SEEDS[0] + 1) * per_seed
    assert 950_000 <= n <= 1_050_000
    assert {kind_of(c) for c in sweep_family(7)} == {"stacked"}


@pytest.mark.parametrize("text", ["", "3..1", "-1..2", "a..b", "1..2..3"])
def test_bad_seed_ranges_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_seeds(text)
    assert parse_seeds("4") == (4, 4) and parse_seeds("1..1350") == (1, 1350)


def test_the_estimate_is_records_times_cost_by_kind() -> None:
    counts = {"stacked": 1000, "xla": 10}
    one, two, four_on_two = estimate(counts, 1, cores=4), estimate(counts, 2, cores=4), estimate(counts, 4, cores=2)
    assert one > two == four_on_two > 0 and "1,010 records" in render("nightly", counts, 2)
    assert estimate({"stacked": 10**6}, 64, cores=64) == pytest.approx(10**6 * MAIN_COST)  # the run's own share
    assert kinds(sweep_family(1))["stacked"] == Suite("default", special_cases=None).per_seed


def _records(cases, plant: dict | None = None):
    """Records of ``cases`` with outcomes equal to the reference's value (rounded to its dtype); ``plant``
    maps an id to a function changing that outcome's value."""
    out = []
    for c in cases:
        e = expected(c)
        value = round_to(np.asarray(e.value, dtype=np.float64), e.dtype)
        if plant and c.id in plant:
            value = plant[c.id](value)
        o = Outcome(value=value, dtype=e.dtype)
        out.append(judged(c, compare(c, e, o), e, o, REGISTRY, "keras3"))
    return out


def _typical(seeds=(1, 2)):
    return [c for s in range(seeds[0], seeds[1] + 1) for c in sweep_family(s) if "/typical/f32-f32/" in c.id]


def _write(tmp, name, records, *, bulk: bool = True):
    folder = tmp / name
    b = Bulk(folder, keep=lambda r: False) if bulk else None
    kept = []
    for r in records:
        if b is None:
            kept.append(r)
        else:
            b.add(r)
    result = RunResult(tuple(kept if b is None else b.kept))
    write_reports(result, meta(seed=1, profile="keras3", versions={}, env={}, extra={}), folder, b)
    assert b is None or not b.path.exists(), "the spill file is removed once results.json holds it"
    return folder


def _next_up(value: np.ndarray) -> np.ndarray:
    v = np.array(value, dtype=np.float64)
    v.flat[0] = np.nextafter(np.float32(v.flat[0]), np.float32(np.inf))
    return v


def test_passing_records_are_summaries_and_compare_exact_sees_a_planted_change(tmp_path) -> None:
    cases = _typical()
    base = _records(cases)
    assert {r.status for r in base} == {"pass"}
    a = _write(tmp_path, "a", base)
    data = json.loads((a / "results.json").read_text())
    assert data["meta"]["format_version"] == FORMAT_VERSION == 7 and data["meta"]["summarised"] == len(cases)
    assert data["totals"]["pass"] == data["totals"]["total"] == len(cases) == len(data["records"])
    assert all("digest" in r and "actual" not in r and "bound" not in r for r in data["records"])
    assert "records.jsonl" in (a / "report.md").read_text()

    victim = cases[3].id
    b = _write(tmp_path, "b", _records(cases, {victim: _next_up}))  # still within the bound: a pass
    same = _write(tmp_path, "same", _records(cases))
    old_a, new_b = load_results(a), load_results(b)
    assert [c.id for c in compare_results(old_a, new_b, exact=True).drift] == [victim]
    assert compare_results(old_a, new_b).drift == ()  # both within their bounds of one reference
    assert compare_results(old_a, load_results(same), exact=True).drift == ()

    shaped = _write(tmp_path, "shape", _records(cases, {victim: lambda v: v[:-1]}))
    found = compare_results(old_a, load_results(shaped))
    assert [(c.id, c.what) for c in found.drift] == [(victim, "shape")] or [c.id for c in found.new_divergences] == [victim]


def test_format_5_against_format_6(tmp_path) -> None:
    """A format-5 results.json (every record's actual and bound, no digest) against a format-6 one."""
    cases = _typical((5, 5))
    new = _write(tmp_path, "new", _records(cases))
    old = _write(tmp_path, "old", _records(cases, {cases[0].id: _next_up}), bulk=False)
    doc = json.loads((old / "results.json").read_text())
    doc["meta"]["format_version"] = 5
    from harness.jsonio import encode_array

    for r, rec in zip(doc["records"], _records(cases, {cases[0].id: _next_up}), strict=True):
        r.pop("digest")
        r.pop("actual_shape")
        r["actual"] = encode_array(rec.outcome.value)
        r["bound"] = encode_array(np.asarray(rec.expected.bound, dtype=np.float64))
    (old / "results.json").write_text(json.dumps(doc))
    found = compare_results(load_results(old), load_results(new), exact=True)
    assert [c.id for c in found.drift] == [cases[0].id]
    assert compare_results(load_results(old), load_results(new)).drift == ()


def test_bulk_keeps_only_what_did_not_pass(tmp_path) -> None:
    cases = _typical((1, 1))
    records = _records(cases, {cases[0].id: lambda v: v + 1.0})  # far beyond the bound: a fail
    b = Bulk(tmp_path, keep=lambda r: False)
    for r in records:
        b.add(r)
    assert [r.case.id for r in b.kept] == [cases[0].id] and b.kept[0].status == "fail"
    assert b.summarised == len(cases) - 1 == sum(1 for _ in b.lines())
    b.discard()


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow is not installed")
def test_a_streamed_run_shards_merges_resumes_and_compares(tmp_path, capsys) -> None:
    from harness.cli import main

    args = ["--seeds", "1..2", "--select", "values/probs/typical/f32-*", "--workers", "0", "--no-progress", "--quiet"]
    assert main(["run", *args, "--out", str(tmp_path / "whole")]) == 0
    printed = capsys.readouterr().out
    assert "suite default: 30 records (25 stacked, 5 eager); expected about" in printed
    for k in (1, 2):
        assert main(["run", *args, "--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}")]) == 0
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "merged"), "--quiet"]) == 0
    assert main(["compare", str(tmp_path / "whole"), str(tmp_path / "merged"), "--exact"]) == 0
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert whole["totals"]["total"] == 30 and whole["meta"]["seeds"] == [1, 2]
    assert main(["run", *args, "--out", str(tmp_path / "whole"), "--resume"]) == 0
    assert json.loads((tmp_path / "whole" / "results.json").read_text())["totals"] == whole["totals"]


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow is not installed")
@pytest.mark.parametrize("stop", ["interrupt-generating", "deadline-in-second-chunk"])
def test_a_streamed_run_stopped_after_its_first_chunk_reports_exactly_what_did_not_run(tmp_path, monkeypatch, stop) -> None:
    """A run of several chunks stopped in its second: Ctrl-C while the next chunk is generated (outside the
    pool, where an interrupt was once a traceback-free exit 2 with no report), or a deadline reached in the
    second chunk (whose list of what did not run once held the first chunk's cases too).  The report holds
    every record the stream holds, and ``not_run`` is exactly the rest."""
    from harness import cli, engine
    from harness.run import runner

    monkeypatch.setattr(engine, "CHUNK", 12)
    if stop == "interrupt-generating":
        real = Suite.cases_at

        def cases_at(self, positions):
            for n, case in enumerate(real(self, positions)):
                if n == 15 and isinstance(positions, list):  # the run's cases (not the estimate's), second chunk
                    raise KeyboardInterrupt
                yield case

        monkeypatch.setattr(Suite, "cases_at", cases_at)
    else:
        real_run = runner.run_cases
        calls = []

        def run_cases(cases, *a, **k):
            calls.append(len(cases))
            if len(calls) == 2:  # the second chunk: its first 5 records, then the deadline
                result = real_run(cases[:5], *a, **k)
                return RunResult(result.records, result.seconds, False, 1.0, tuple(c.id for c in cases[5:]))
            return real_run(cases, *a, **k)

        monkeypatch.setattr(runner, "run_cases", run_cases)
    out = tmp_path / "run"
    args = ["--seeds", "1..2", "--select", "values/probs/typical/f32-*", "--workers", "0", "--no-progress", "--quiet"]
    code = cli.main(["run", *args, "--out", str(out), "--deadline", "3600"])
    results = json.loads((out / "results.json").read_text())
    ran = results["totals"]["total"]
    streamed = [json.loads(line)["case"]["id"] for line in (out / "records.jsonl").read_text().splitlines()[1:]]
    assert ran == len(streamed) == (12 if stop == "interrupt-generating" else 17)
    whole = Suite("default", seeds=(1, 2)).chosen(pattern="values/probs/typical/f32-*")
    ids = list(Suite("default", seeds=(1, 2)).ids())
    assert sorted(results["meta"]["not_run"]) == sorted(set(ids[p] for p in whole) - set(streamed))
    assert len(results["meta"]["not_run"]) == 30 - ran
    assert code == (2 if stop == "interrupt-generating" else 1), code  # as pytest: interrupted 2; a deadline 1


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow is not installed")
def test_a_run_past_the_results_json_limit_writes_its_records_as_columns_only(tmp_path, monkeypatch) -> None:
    """Past bulk.RESULTS_JSON_MAX records (the whole nightly suite) a run writes no results.json and no passes'
    file: results.parquet holds every record, with the totals results.json would have held, and compare
    reads it.  The limit is lowered here so that a few seeds cross it."""
    from harness import cli
    from harness.report import bulk
    from harness.report.columns import COLUMNS_NAME, ColumnsFile, compare_columns

    args = ["--seeds", "1..2", "--select", "values/probs/typical/f32-*", "--workers", "0", "--no-progress", "--quiet"]
    small = tmp_path / "small"
    assert cli.main(["run", *args, "--out", str(small)]) in (0, 1)
    monkeypatch.setattr(bulk, "RESULTS_JSON_MAX", 10)
    big = tmp_path / "big"
    assert cli.main(["run", *args, "--out", str(big)]) in (0, 1)
    assert (small / "results.json").is_file() and not (big / "results.json").exists()
    assert not (big / bulk.PASSES_NAME).exists()
    columns = ColumnsFile(big / COLUMNS_NAME)
    assert columns.rows == 30 == columns.totals["total"] == json.loads((small / "results.json").read_text())["totals"]["total"]
    drift = compare_columns(ColumnsFile(small / COLUMNS_NAME), columns)
    assert drift.compared == 30 and not drift.regressed


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow is not installed")
def test_the_sweep_after_the_base_suite_runs_on_new_workers(tmp_path, monkeypatch) -> None:
    """The base suite's traced and compiled calls stay in its workers' memory; the chunks after it, the
    sweep's stacked calls only, start on new workers (once), and every record is there and the same."""
    from harness import engine
    from harness.engine import RunSpec
    from harness.run.workers import WorkerPool

    monkeypatch.setattr(engine, "CHUNK", 12)
    spec = RunSpec(seeds=(1, 2), select="values/probs/typical/f32-*", workers=1, force=True)
    with WorkerPool(1) as pool:
        pool.warm()
        before = {s.process.pid for s in pool._slots}
        out = engine.run(dataclasses.replace(spec, out=str(tmp_path / "a")), pool=pool)
        after = {s.process.pid for s in pool._slots}
        assert pool.renewals == 1 and before and after and not before & after
    whole = Suite("default", seeds=(1, 2)).chosen(pattern="values/probs/typical/f32-*")
    assert out.meta["suite_size"] == len(whole) > 12
    streamed = (tmp_path / "a" / "records.jsonl").read_text().splitlines()[1:]
    assert len(streamed) == len(whole)
    # the same run in this process (no workers to renew) files the same records with the same statuses
    again = engine.run(dataclasses.replace(spec, out=str(tmp_path / "b"), workers=0))
    assert out.result.totals() == again.result.totals()
    assert {json.loads(x)["case"]["id"]: json.loads(x)["status"] for x in streamed} == {
        json.loads(x)["case"]["id"]: json.loads(x)["status"] for x in (tmp_path / "b" / "records.jsonl").read_text().splitlines()[1:]
    }
