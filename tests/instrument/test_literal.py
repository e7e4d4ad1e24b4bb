"""Files from elsewhere are data, never code: every value reaching a generated script or Markdown code block
goes through ``harness.report.literal`` (issue 13, point 1).

The property: for any text put where a record's text goes (a case id, an exception message, an expected
error, a harness note, a factory name), the generated script parses to the same statements as with a plain
placeholder there, and the text comes back, equal, as one string constant.  A Markdown report has the same
code blocks either way.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.case import Case, Expected, Options, Outcome
from harness.judge.compare import Comparison, compare
from harness.oracle import expected
from harness.report import literal, repro
from harness.report.drift import compare_results
from harness.report.issue import clusters, render_issue
from harness.report.literal import code_span, fence, py
from harness.report.repro import snippet
from harness.report.summary import build_results, render_markdown
from harness.run.runner import Record, RunResult

MARK = "bce-literal-test:"  # no constant of a script holds this, so the text is found by it alone
PLACEHOLDER = MARK + "placeholder"

_NASTY = [
    "\n", "\r", "\r\n", "'", '"', "\\", '"""', "'''", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x00", "#",
    "`", "```", "~~~", "\\n", "\\'", "{", "}", "%s", "\t", "import os; os.system('touch PWNED')",
]  # fmt: skip
texts = st.lists(st.sampled_from(_NASTY) | st.text(max_size=8), max_size=12).map(lambda parts: MARK + "".join(parts))

INJECTION = MARK + "x'\"\"\"\nimport pathlib; pathlib.Path('PWNED').touch()\n# ```\n```python\nraise SystemExit\n"


def _case(case_id: str = "special/literal", **kw) -> Case:
    base = dict(
        id=case_id,
        y_true=np.array([[0.0, 1.0], [1.0, 0.0]]),
        y_pred=np.array([[0.25, 0.5], [1.0, 0.0]]),
        true_dtype="float32",
        pred_dtype="float32",
        options=Options(reduction="none"),
        tags={"family": "special", "regime": "special", "shape": "BC"},
    )
    base.update(kw)
    return Case(**base)


def _normalised(tree: ast.AST, text: str) -> tuple[str, list[str]]:
    """``ast.dump`` of ``tree`` with ``text`` replaced by one token in every string constant, and the
    constants that held it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and text in node.value:
            found.append(node.value)
            node.value = node.value.replace(text, "<TEXT>")
    return ast.dump(tree), found


def assert_data_only(render: Callable[[str], str], text: str) -> None:
    """The script ``render(text)`` is ``render(PLACEHOLDER)`` with the text in string constants."""
    with_text, plain = render(text), render(PLACEHOLDER)
    tree_text, found = _normalised(ast.parse(with_text), text)
    tree_plain, placed = _normalised(ast.parse(plain), PLACEHOLDER)
    assert tree_text == tree_plain, "the text changed the script's statements"
    assert placed, "the placeholder reached no string constant: nothing was checked"
    assert any(text in value for value in found), "the text did not come back whole"


def _python_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a Markdown text, read as CommonMark reads fences."""
    blocks, lines, i = [], markdown.split("\n"), 0
    while i < len(lines):
        m = re.match(r"^(`{3,}|~{3,})(.*)$", lines[i])
        if not m:
            i += 1
            continue
        marker, info = m.group(1), m.group(2).strip()
        j = i + 1
        while j < len(lines) and not re.match(rf"^{re.escape(marker[0])}{{{len(marker)},}}\s*$", lines[j]):
            j += 1
        if info == "python":
            blocks.append("\n".join(lines[i + 1 : j]))
        i = j + 1
    return blocks


def assert_markdown_data_only(render: Callable[[str], str], text: str) -> None:
    with_text, plain = _python_blocks(render(text)), _python_blocks(render(PLACEHOLDER))
    assert len(with_text) == len(plain) > 0, "the text changed the Markdown's python blocks"
    for a, b in zip(with_text, plain, strict=True):
        assert_data_only(lambda t, a=a, b=b: a if t == text else b, text)


# --- the function itself -----------------------------------------------------------------------------


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | texts, lambda xs: st.lists(xs, max_size=4)))
def test_py_is_a_literal_equal_to_the_value(value) -> None:
    source = py(value)
    assert "\n" not in source and "\r" not in source
    if isinstance(value, float) and np.isnan(value):
        assert np.isnan(eval(source))  # noqa: S307 - float("nan") is not a literal_eval literal
        return
    back = eval(source, {"__builtins__": {"float": float}})  # noqa: S307 - a literal, or float("inf")
    assert back == value or repr(back) == repr(value)


def test_py_refuses_what_it_cannot_write() -> None:
    with pytest.raises(TypeError):
        py(object())


@given(texts)
def test_a_fence_holds_any_text(text: str) -> None:
    lines = ["before", *fence(text, "python"), "after"]
    blocks = _python_blocks("\n".join(lines))
    assert blocks == [text]
    assert code_span(text).count("\n") == 0


# --- the generators ------------------------------------------------------------------------------------


def _expected(case: Case) -> Expected:
    return expected(case)


@settings(max_examples=25)
@given(texts)
def test_repro_scripts_hold_any_text_as_data(text: str) -> None:
    case = _case()
    exp = _expected(case)
    assert_data_only(lambda t: snippet(case, exp, actual=t), text)
    assert_data_only(lambda t: snippet(_case(t), exp, actual="x"), text)
    assert_data_only(lambda t: snippet(case, exp, loss_factory=t), text)
    raising = Expected(raises="must raise")
    assert_data_only(lambda t: snippet(case, Expected(raises=t)), text)
    assert_data_only(lambda t: snippet(case, raising, actual=t, loss_factory="m:f"), text)


def _record(case_id: str, error: str, note: str = "", status: str = "fail") -> Record:
    case = _case(case_id)
    exp = _expected(case)
    out = Outcome(error=error)
    comparison = compare(case, exp, out)
    if status == "error":
        return Record(case, "error", Comparison("error", error), None, None, note=note)
    return Record(case, status, comparison, exp, out)


@settings(max_examples=15)
@given(texts)
def test_report_md_holds_any_text_as_data(text: str) -> None:
    def render(t: str) -> str:
        records = (_record(t, f"ValueError: {t}"), _record("special/two", "E", note=t, status="error"))
        return render_markdown(RunResult(records), {"profile": "keras3", "loss_factory": t})

    assert_markdown_data_only(render, text)


def _results(actual_error: str | None, case_id: str) -> tuple[dict, dict]:
    case = _case(case_id)
    exp = _expected(case)
    good = Record(case, "pass", Comparison(None, "agrees", 0, 2), exp, Outcome(value=np.asarray(exp.value), dtype="float32"))
    out = Outcome(error=actual_error) if actual_error is not None else Outcome(value=np.zeros(2), dtype="float32")
    bad = Record(case, "fail", compare(case, exp, out), exp, out)
    meta = {"format_version": 2, "seed": 1, "profile": "keras3", "tensorflow": "2.x"}
    return build_results(RunResult((good,)), meta), build_results(RunResult((bad,)), meta)


@settings(max_examples=15)
@given(texts)
def test_regression_bodies_hold_any_text_as_data(text: str) -> None:
    def render(t: str) -> str:
        base, new = _results(f"InvalidArgumentError: {t}", t)
        base["meta"]["loss_factory"] = new["meta"]["loss_factory"] = t
        drift = compare_results(base, new)
        (cluster,) = clusters(drift)
        return render_issue(cluster, drift)

    assert_markdown_data_only(render, text)


def test_the_property_fails_when_the_function_is_bypassed(monkeypatch) -> None:
    """A check that cannot fail is a defect: paste the text instead of writing a literal, and it fails."""
    case = _case()
    exp = _expected(case)
    assert_data_only(lambda t: snippet(case, exp, actual=t), INJECTION)
    monkeypatch.setattr(repro, "py", lambda v: f"'{v}'" if isinstance(v, str) else literal.py(v))
    with pytest.raises((AssertionError, SyntaxError)):
        assert_data_only(lambda t: snippet(case, exp, actual=t), INJECTION)
