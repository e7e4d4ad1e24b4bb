"""compare classifies every change: regression, fix (with the registry edit it calls for), behaviour change
(no verdict: outside the documented domain, not expressible, or only the exception moved) and drift; only
regressions become bodies, one per cause, and make ``compare`` exit 1."""

from __future__ import annotations

import json
from typing import Any

from harness.cli import main
from harness.report.drift import compare_results, registry_edit, render_text
from harness.report.issue import clusters, render_issue, render_summary
from tests.instrument.test_drift import ARR, diverged, record, results

INPUTS = {"y_true": {"shape": [2, 1], "data": [1.0, 0.0]}, "y_pred": {"shape": [2, 1], "data": [1.0, 0.5]},
          "sample_weight": None, "weight_dtype": "float32", "message": "planted"}
LS = {"from_logits": False, "label_smoothing": 1.5, "axis": -1, "reduction": "none", "dtype": None}


def _nightly_like() -> tuple[dict[str, Any], dict[str, Any]]:
    """BASE on one Keras, NEW on the next: a label_smoothing outside [0, 1] that starts raising, an integer
    prediction that a registered divergence explained and now agrees, a message that moved on a documented
    error, and a record that held and still does."""
    base = results([
        record("pairs/ls", "outside", actual=0.7, options=LS, digest="a" * 32, actual_shape=[]),
        record("paths/int", "xfail", error="TypeError: Cannot convert 0.9999999 to EagerTensor of dtype int32",
               kind="exception", divergence="int-predictions-raise-before-keras-3-16"),
        record("errors/avg", "pass", error="ValueError: Invalid value for argument `reduction`. Expected one of {'sum'}"),
        record("values/ok", actual=0.5),
    ], keras="3.15.1", tensorflow="2.21.0")
    new = results([
        record("pairs/ls", "outside", options=LS, error="ValueError: `label_smoothing` must be in the range [0, 1]."),
        record("paths/int", "pass", actual=0.5),
        record("errors/avg", "pass", error="ValueError: Invalid value for argument `reduction`. Expected one of {'mean'}"),
        record("values/ok", actual=0.5),
    ], keras="3.16.0.dev2026102704", tensorflow="2.21.0")
    return base, new


def test_a_keras_that_validates_and_fixes_is_no_regression():
    base, new = _nightly_like()
    d = compare_results(base, new)
    assert not d.regressed and not clusters(d)
    assert [c.id for c in d.fixed] == ["paths/int"]
    assert {c.id: c.what for c in d.behaviour} == {"pairs/ls": "now raises", "errors/avg": "message"}
    assert not d.drift
    text = render_text(d)
    assert "changed: Keras 3.15.1 -> 3.16.0.dev2026102704" in text and "no regression" in text
    summary = render_summary(d, clusters(d))
    assert "### Fixes" in summary and "### Behaviour changes" in summary and "No regression." in summary


def test_a_fix_names_the_registry_edit():
    base, new = _nightly_like()
    d = compare_results(base, new)
    # the shipped entry is bounded below Keras 3.16 already: nothing to edit
    assert registry_edit(d.fixed[0], d).startswith("none: entry 'int-predictions-raise-before-keras-3-16' is already bounded")
    unbounded = compare_results(
        results([record("v/x", "xfail", actual=0.1, kind="tolerance", divergence="not-a-shipped-entry")], keras="3.15.1"),
        results([record("v/x", "pass", actual=0.5)], keras="3.16.0"),
    )
    assert registry_edit(unbounded.fixed[0], unbounded) == (
        "bound entry 'not-a-shipped-entry' with its fixed-in version: keras = \"<3.16.0\" (keep any lower bound it has)"
    )


def test_only_regressions_become_bodies_one_per_cause():
    """Planted regressions inside the documented domain beside the nightly's changes: a wrong value in three
    families and two dtypes (one cause) and a new raise in two families (another): two bodies, exit 1."""
    base, new = _nightly_like()
    for i, (family, dtype) in enumerate([("values", "float32"), ("options", "float32"), ("pairs", "float16")]):
        cid = f"{family}/planted{i}"
        base["records"].append(record(cid, actual=None, family=family, dtype=dtype, digest="b" * 32, preview=[0.25, 0.75], actual_shape=[2]))
        moved = diverged(cid, {"shape": [2], "data": [0.5, 0.75]})
        moved.update(kind="tolerance" if i else "nan_inf", compute_dtype=dtype, tags={"family": family, "regime": "typical", "shape": "B1"})
        new["records"].append(moved)
    for i, family in enumerate(["values", "options"]):
        cid = f"{family}/raise{i}"
        base["records"].append(record(cid, actual=0.5, family=family))
        new["records"].append(record(cid, "fail", family=family, kind="exception", expected=ARR, expected_error=None,
                                     error=f"InvalidArgumentError: cannot compute Mul as input #{i} was expected", **INPUTS))
    d = compare_results(base, new)
    assert d.regressed
    found = clusters(d)
    assert sorted((c.key[0], len(c.changes)) for c in found) == [("exception", 2), ("value", 3)]
    body = render_issue(next(c for c in found if c.key[0] == "value"), d)
    assert "agreed with the documented value" in body and "Keras `3.16.0.dev2026102704`" in body
    assert "[0.25, 0.75] shape [2]" in body  # BASE's summarised outcome, shown
    assert "(no outcome)" not in body


def test_a_documented_raise_is_never_called_an_agreement():
    base = results([record("errors/x", "pass", error="ValueError: bad reduction")])
    new = results([record("errors/x", "fail", actual=0.5, kind="exception", expected=None,
                          expected_error="reduction='avg' is not a supported reduction", **INPUTS)], tensorflow="2.21.0")
    d = compare_results(base, new)
    (cluster,) = clusters(d)
    body = render_issue(cluster, d)
    assert "raised the documented error" in body and "agreed with the documented value" not in body


def test_cli_exit_code_says_nothing_regressed(tmp_path, capsys):
    base, new = _nightly_like()
    (tmp_path / "base").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "base" / "results.json").write_text(json.dumps(base))
    (tmp_path / "new" / "results.json").write_text(json.dumps(new))
    out = tmp_path / "out"
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "new"), "--out", str(out)]) == 0
    assert "no regression" in capsys.readouterr().out
    assert not list((out / "regressions").glob("*.md"))
    drift = json.loads((out / "drift.json").read_text())
    assert [c["id"] for c in drift["behaviour"]] == ["pairs/ls", "errors/avg"] and drift["fixed"][0]["registry_edit"]
