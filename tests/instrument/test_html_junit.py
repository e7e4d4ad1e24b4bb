"""report.html is self-contained and shows what it promises; junit.xml maps the statuses as pytest does."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from test_drift import BASE, NEW, record, results

from harness.report.drift import compare_results
from harness.report.html import render_html
from harness.report.junit import render_junit

RUN = results([
    record("values/p", actual=0.5, max_ulp=3, tags={"family": "values", "regime": "near_bounds", "shape": "B1"}),
    record("values/q", actual=0.5, dtype="float16", max_ulp=0),
    record("values/r", "fail", kind="tolerance", message="Not equal to tolerance <b>", note=""),
    record("values/s", "xfail", kind="nan_inf", divergence="known-one", message="NaN/inf location mismatch"),
    record("values/t", "xpass", note="registered divergence 'x' no longer reproduces"),
    record("values/u", "error", note="KeyError: boom", message="internal error"),
])


def test_html_is_self_contained_with_plots_and_divergences():
    page = render_html(RUN)
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    for fragment in ("worst ULP by dtype and regime", "ULP distribution float32", "ULP distribution float16", "near_bounds"):
        assert fragment in page, fragment
    assert "Not equal to tolerance &lt;b&gt;" in page  # escaped
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "Drift between" not in page


def test_html_with_a_drift_has_the_drift_section():
    page = render_html(NEW, drift=compare_results(BASE, NEW))
    assert "Drift between the two versions" in page and "changes per option family" in page
    assert "values/d" in page and "New divergences (passed in BASE) (1)" in page


def test_junit_maps_statuses():
    root = ET.fromstring(render_junit(RUN))
    assert root.tag == "testsuite" and root.get("tests") == "6"
    assert (root.get("failures"), root.get("errors"), root.get("skipped")) == ("2", "1", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["values/r"].find("failure") is not None
    assert cases["values/t"].find("failure").get("type") == "xpass"
    assert cases["values/u"].find("error") is not None
    assert "known-one" in cases["values/s"].find("skipped").get("message")
    assert not list(cases["values/p"]) and cases["values/p"].get("classname") == "bce-harness.values/probs"


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.text(), st.sampled_from(["values", "config", "paths", "?"]))
def test_a_passing_test_case_is_written_as_elementtree_writes_it(cid: str, family: str) -> None:
    """junit.xml writes a pass (most of a million records) without ElementTree; the line must be the one
    ElementTree would write for it, escapes and unwritable characters included."""
    import xml.etree.ElementTree as ET

    from harness.report.junit import _case, _safe, render_junit

    r = {"id": cid, "status": "pass", "tags": {"family": family}, "options": {"from_logits": True}}
    line = render_junit({"meta": {}, "records": [r]}).split("\n")[-3]  # (not splitlines: it splits at U+0085 too)
    case = _case(r)
    _safe(case)
    ET.indent(case, level=1)
    assert line == "  " + ET.tostring(case, encoding="unicode")


@given(
    st.text(),
    st.sampled_from(["fail", "xpass", "error", "xfail", "outside", "unsupported", "other"]),
    st.fixed_dictionaries({}, optional={"message": st.text(), "note": st.text(), "kind": st.text(), "divergence": st.text()}),
)
def test_every_other_test_case_is_written_as_elementtree_writes_it(cid: str, status: str, texts: dict) -> None:
    """junit.xml writes the test case of a record that did not pass (a night's hundred thousand known
    divergences) without ElementTree too; it must be what ElementTree writes of ``_case``, indented, for each
    status, with any message, note, kind and divergence."""
    import xml.etree.ElementTree as ET

    from harness.report.junit import _case, _safe, junit_case

    r = {"id": cid, "status": status, "tags": {"family": "values"}, "options": {}, **texts}
    case = _case(r)
    _safe(case)
    ET.indent(case, level=1)
    assert junit_case(r) == "  " + ET.tostring(case, encoding="unicode") + "\n"
