"""The one door through which a value reaches generated code: Python literals and Markdown code blocks.

Reproduction scripts (repro.py), regression bodies (issue.py), fuzz's scripts and report.md are built from
records that may come from elsewhere: a shard's ``records.jsonl``, a ``results.json`` handed between jobs, a
saved case file.  Their text (a case id, an exception message, an expected error, a factory name) is data.
``py`` turns any such value into the source of a Python literal that evaluates to it -- ``repr`` of a str
never holds a line break, so no newline, quote, backslash, carriage return or Unicode line separator can
end the literal and start a statement -- and generated scripts put text only there, never in a comment.
``fence`` and ``code_span`` do the same for Markdown: the fence is longer than any run of backticks in the
text, so the text cannot close its block and open another (a ``python`` one, say).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

__all__ = ["code_span", "fence", "one_line", "py"]


def py(value: Any) -> str:
    """The source of a Python literal equal to ``value``: None, bool, int, float (NaN and infinities as
    ``float("nan")`` and ``float("inf")``), str, and lists or tuples of these (NumPy scalars and arrays
    become the Python ones).  Anything else is a bug of the caller: TypeError."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return repr(None if value is None else bool(value))
    if isinstance(value, (int, np.integer)):
        return repr(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f):
            return 'float("nan")'
        if math.isinf(f):
            return 'float("inf")' if f > 0 else '-float("inf")'
        return repr(f)
    if isinstance(value, str):
        text = repr(value)
        # repr escapes every character that is not printable, and str.isprintable() is False for each line
        # break Python or an editor knows (\n, \r, \x0b, \x0c, \x1c-\x1e, \x85, \u2028, \u2029)
        assert "\n" not in text and "\r" not in text, text
        return text
    if isinstance(value, np.ndarray):
        return py(value.tolist())
    if isinstance(value, tuple):
        inner = ", ".join(py(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(py(v) for v in value) + "]"
    raise TypeError(f"py: no literal for a {type(value).__name__}")


def one_line(text: str) -> str:
    """``text`` on one line: every character that is not printable written as its escape."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def fence(text: str, info: str = "") -> list[str]:
    """The lines of a fenced Markdown code block holding ``text`` exactly (CommonMark: a block ends only at
    a fence of at least its own length, so the fence is longer than the longest run of backticks)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    marker = "`" * max(3, longest + 1)
    return [marker + one_line(info).replace("`", ""), text, marker]


def code_span(text: str) -> str:
    """``text`` as inline Markdown code on one line (line breaks escaped, delimiters longer than any
    backtick run inside)."""
    text = one_line(text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"
