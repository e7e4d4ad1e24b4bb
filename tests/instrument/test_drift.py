"""compare: new divergences, fixes and value drift between two synthetic results files; the CLI's exit codes."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.errors import InputError, UsageError
from harness.report.drift import compare_results, load_results, render_text
from harness.report.issue import clusters, render_issue, write_compare_reports


def record(cid: str, status: str = "pass", *, actual: Any = 0.5, dtype: str = "float32", bound: Any = 1e-7,
           error: str | None = None, kind: str | None = None, family: str = "values", **extra: Any) -> dict[str, Any]:
    r = {
        "id": cid,
        "api": "BinaryCrossentropy",
        "options": {"from_logits": False, "label_smoothing": 0.0, "axis": -1, "reduction": "none", "dtype": None},
        "input_dtype": "float32",
        "true_dtype": "float32",
        "compute_dtype": dtype,
        "shape": [2, 1],
        "true_shape": [2, 1],
        "tags": {"family": family, "regime": "typical", "shape": "B1"},
        "status": status,
        "kind": kind,
        "max_abs": 0.0,
        "max_rel": 0.0,
        "max_ulp": 0,
        "actual": None if error else actual,
        "actual_dtype": None if error else dtype,
        "actual_error": error,
        "expected_dtype": dtype,
        "bound": bound,
    }
    r.update(extra)
    return r


def results(records: list[dict[str, Any]], *, tensorflow: str = "2.20.0", keras: str = "3.14.0", seed: int = 1) -> dict[str, Any]:
    totals = {s: sum(r["status"] == s for r in records) for s in ("pass", "fail", "xfail", "xpass", "error")}
    return {
        "meta": {"format_version": 2, "seed": seed, "tensorflow": tensorflow, "keras": keras, "profile": "keras3",
                 "numpy": "2.0", "python": "3.11", "platform": "linux", "cpu_flags": ["avx2"], "environment": {}},
        "records": records,
        "totals": {**totals, "total": len(records)},
    }


ARR = {"shape": [2], "data": [0.25, 0.75]}


def diverged(cid: str, actual: Any) -> dict[str, Any]:
    """A NEW record that fails with its inputs, as a non-passing record is written."""
    return record(
        cid, "fail", actual=actual, kind="nan_inf", message="NaN/inf location mismatch",
        y_true={"shape": [2, 1], "data": [1.0, 0.0]}, y_pred={"shape": [2, 1], "data": [1.0, 0.5]},
        sample_weight=None, weight_dtype="float32", expected=ARR, expected_error=None,
        bound={"shape": [2], "data": [1e-7, 1e-7]},
    )


BASE = results([
    record("values/a", actual=ARR, bound={"shape": [2], "data": [1e-7, 1e-7]}),
    record("values/b", actual=0.5),
    record("values/c", "xfail", actual="nan", kind="nan_inf", divergence="old"),
    record("values/d", actual=0.5),
    record("values/e", actual=0.5, family="options"),
    record("values/f", error="ValueError: bad reduction"),
    record("values/g", actual=0.5, dtype="float16", bound=1e-3),
])
NEW = results([
    diverged("values/a", {"shape": [2], "data": [0.25, "nan"]}),  # passed, now fails: a regression
    record("values/b", actual=0.5 + 1e-9),  # moved, within the bound: no drift
    record("values/c", actual=0.0),  # was a known divergence, now passes: fixed
    record("values/d", actual=0.5 + 1e-3),  # moved beyond the bound: value drift
    record("values/e", actual=0.5 + 1e-9, family="options"),  # only --exact sees it
    record("values/f", actual=0.1),  # raised before, returns now
    record("values/g", actual=0.5, dtype="float32"),  # computes in another dtype
], tensorflow="2.21.0", keras="3.15.1")


def test_new_divergences_fixed_and_drift():
    d = compare_results(BASE, NEW)
    assert [c.id for c in d.new_divergences] == ["values/a"] and d.regressed
    assert [c.id for c in d.fixed] == ["values/c"]
    # drift is an output that moved with no status change: values/a (a regression) and values/c (a fix) are
    # classified by their status
    assert {c.id: c.what for c in d.drift} == {"values/d": "value", "values/f": "raised", "values/g": "dtype"}
    moved = next(c for c in d.drift if c.id == "values/d")
    assert moved.rows == (("()", 0.5, 0.5 + 1e-3, 1e-7),) and moved.max_abs == pytest.approx(1e-3)


def test_exact_counts_any_move_and_groups_by_option_family():
    d = compare_results(BASE, NEW, exact=True)
    assert {c.id for c in d.drift} >= {"values/b", "values/e"}
    assert next(c for c in d.drift if c.id == "values/e").group == "options/probs"


def test_nothing_changed_is_no_regression():
    d = compare_results(BASE, copy.deepcopy(BASE))
    assert not d.regressed and not d.drift and not d.fixed and d.compared == len(BASE["records"])
    assert "no regression" in render_text(d)


def test_the_text_report_shows_before_and_after():
    text = render_text(compare_results(BASE, NEW))
    assert "TensorFlow 2.20.0" in text and "TensorFlow 2.21.0" in text
    assert "values/d: value" in text and "0.5 -> 0.501" in text
    assert "before: ValueError: bad reduction" in text and "NEW regressed" in text


def test_different_seeds_are_refused():
    with pytest.raises(InputError, match="different seeds"):
        compare_results(BASE, results([], seed=2))


@pytest.mark.parametrize("bad", [{"exact": 1}, {"exact": "yes"}], ids=["exact=1", "exact='yes'"])
def test_options_are_validated(bad):
    with pytest.raises(UsageError, match="exact="):
        compare_results(BASE, NEW, **bad)


def test_max_rows_is_validated():
    with pytest.raises(UsageError, match="max_rows=0"):
        render_text(compare_results(BASE, NEW), max_rows=0)


def test_a_format_1_file_is_refused(tmp_path: Path):
    old = tmp_path / "results.json"
    old.write_text(json.dumps({"meta": {"format_version": 1}, "records": []}))
    with pytest.raises(InputError, match="format_version=1"):
        load_results(tmp_path)


def test_regression_clusters_and_their_issue_text():
    d = compare_results(BASE, NEW)
    (cluster,) = clusters(d)
    assert cluster.fingerprint == clusters(compare_results(BASE, NEW))[0].fingerprint  # stable
    text = render_issue(cluster, d)
    title = text.splitlines()[0]
    assert title.startswith("# BinaryCrossentropy regression: `value` in `values/probs`") and f"[bce-{cluster.fingerprint}]" in title
    for fragment in ("Last version where it held:** TensorFlow `2.20.0`", "First version where it broke:** TensorFlow `2.21.0`",
                     "| CPU flags | `avx2` | `avx2` |", "```python", "tf.keras.losses.BinaryCrossentropy(", "| (1,) | 0.75 | nan |"):
        assert fragment in text, fragment
    # shrunk to the diverging row: a one-row reproduction
    assert "(row 1)" in text and "np.array([0.0]).reshape((1, 1))" in text


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.json").write_text(json.dumps(data))
    return path


def test_cli_compare_exit_codes_and_files(tmp_path: Path, capsys):
    base, new = _write(tmp_path / "base", BASE), _write(tmp_path / "new", NEW)
    assert main(["compare", str(base), str(base)]) == 0
    out = tmp_path / "out"
    assert main(["compare", str(base), str(new), "--out", str(out)]) == 1
    assert "regressions: new divergences (held in BASE, not in NEW): 1" in capsys.readouterr().out
    (md,) = (out / "regressions").glob("bce-*.md")
    assert md.read_text().startswith("# BinaryCrossentropy regression")
    for name in ("report.html", "junit.xml", "drift.json"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "drift.json").read_text())["regressed"] is True
    # a later comparison without the regression removes its stale report
    write_compare_reports(compare_results(BASE, BASE), BASE, out)
    assert not list((out / "regressions").glob("*.md"))


def test_cli_compare_bad_input_is_one_line_exit_2(tmp_path: Path, capsys):
    assert main(["compare", str(tmp_path / "nope"), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "results file not found" in err


def test_a_known_divergence_that_fails_unexpectedly_is_not_listed_as_passed_before(tmp_path):
    """xfail -> fail is a regression, but those cases never agreed with the documentation: their own list, and
    an issue body that says what BASE said of them."""

    base = results([record("values/k", "xfail", actual={"shape": [2], "data": ["nan", 0.5]}, kind="nan_inf", divergence="known-k")])
    new = results([diverged("values/k", {"shape": [2], "data": [0.25, 0.5]})], tensorflow="2.21.0")
    d = compare_results(base, new)
    assert not d.new_divergences and [c.id for c in d.unexplained] == ["values/k"] and d.regressed
    text = render_text(d)
    assert "regressions: new divergences (held in BASE, not in NEW): 0" in text and "unexplained (a known divergence in BASE" in text
    (cluster,) = clusters(d)
    body = render_issue(cluster, d)
    assert "agreed with the documented semantics" not in body and "were the known divergence `known-k`" in body


def test_the_drift_chart_counts_each_case_once_and_status_changes_have_their_ulps():
    from harness.report.html import render_html

    d = compare_results(BASE, NEW)
    page = render_html(NEW, drift=d)
    # values/a is a new divergence whose NaN also moved, values/c fixed and moved: one bar each, not two
    total = len({c.id for c in (*d.new_divergences, *d.unexplained, *d.fixed, *d.drift)})
    assert f"{d.compared} cases compared" in page
    counts = [int(n) for n in re.findall(r'<text x="[\d.]+" y="\d+">(\d+)</text>', page.split("changes per option family")[1].split("</svg>")[0])]
    assert sum(counts) == total
    assert all(c.max_ulp is not None for c in d.fixed if c.after.get("actual_error") is None)


def test_a_regression_file_has_the_bug_template_fields_and_both_results(tmp_path):

    nightly = results(NEW["records"], tensorflow="2.22.0.dev20261201", keras="3.16.0.dev2026120103")
    d = compare_results(BASE, nightly)
    paths = write_compare_reports(d, nightly, tmp_path)
    (body,) = [p.read_text() for p in paths["regressions"]]
    for field in ("**Issue type:** Bug", "**Have you reproduced the bug with TensorFlow Nightly?** Yes", "**Source:** binary",
                  "**TensorFlow version:** `2.22.0.dev20261201`", "**Custom code:**", "**OS platform and distribution:**",
                  "**Python version:**", "**Keras version**", "### Current behavior?", "### Standalone code to reproduce the issue",
                  "### Relevant log output", "Result on the latest release (BASE, TensorFlow `2.20.0`)",
                  "Result on TensorFlow `2.22.0.dev20261201` (NEW, tf-nightly)", "```python"):  # fmt: skip
        assert field in body, field
    summary = paths["summary"].read_text()
    assert "1 new divergences" in summary and "**Regressed.**" in summary and "[bce-" in summary


def test_junit_carries_the_versions_and_the_seed():
    import xml.etree.ElementTree as ET

    from harness.report.junit import render_junit

    meta = {**NEW["meta"], "harness_version": "0.1.0"}
    root = ET.fromstring(render_junit({**NEW, "meta": meta}))
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["tensorflow"] == "2.21.0" and props["keras"] == "3.15.1" and props["seed"] == "1"
    assert props["harness_version"] == "0.1.0" and props["python"] == "3.11" and props["numpy"] == "2.0"
