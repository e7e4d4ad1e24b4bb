"""The two sink rules besides generated code (literal.py): Markdown, and terminal or CI log lines.

A value that came from a record or a file -- a version string of another machine's results.json, an exception
message, a case id, a group name -- is data wherever it lands.  In Markdown (issue bodies, summary.md,
report.md) ``md_code`` puts it in a code span it cannot close, so no link, image, mention, issue reference,
HTML tag or comment in it renders (GitHub autolinks mentions and references in text, never in code); where a
code span would read badly, ``md_text`` escapes every character Markdown or GitHub acts on.  On a terminal or
in a CI log ``term`` shows control characters, line breaks and bidirectional overrides as their escapes, so a
value can neither move the cursor, reorder what is shown, nor start a line of its own -- and none of its lines
starts with ``::``, which GitHub Actions reads as a workflow command.  All three cut long values with a marker
that says how much was left out.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MD_CAP", "TERM_CAP", "cut", "md_code", "md_text", "term", "term_lines"]

MD_CAP = 300  # characters of a value in Markdown
TERM_CAP = 300  # characters of a value on a terminal line

# GitHub Actions reads a line as a workflow command when it starts with '::' (leading blanks allowed)
_COMMAND = re.compile(r"^(\s*):")


def _cut(text: str, cap: int) -> tuple[str, str]:
    """``text`` cut to ``cap`` characters, and the marker to show after it ('' when nothing was cut)."""
    if len(text) <= cap:
        return text, ""
    return text[:cap], f" [... {len(text) - cap} more characters]"


def cut(value: Any, cap: int) -> str:
    """``value`` as text of at most ``cap`` characters and a marker saying how many were left out: for a
    value that goes whole into a literal or a fence (which hold it safely) but not at any length."""
    text, marker = _cut(str(value), cap)
    return text + marker


def _escaped(text: str) -> str:
    """Every character that is not printable as its escape: C0 and C1 controls, DEL, line and paragraph
    separators, bidirectional overrides, embeddings, isolates and marks, zero-width characters (all of
    Unicode's Cc, Cf, Zl, Zp, Cs, Co and Cn categories, and every space but ' ')."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def term(value: Any, cap: int = TERM_CAP) -> str:
    """``value`` as text for one terminal or CI log line: escaped, at most ``cap`` characters with a marker,
    and never starting with ``::``."""
    text, marker = _cut(str(value), cap)
    return _no_command(_escaped(text) + marker)


def _no_command(line: str) -> str:
    return _COMMAND.sub(lambda m: m.group(1) + "\\x3a", line) if line.lstrip().startswith("::") else line


def term_lines(text: str) -> str:
    """Text the harness composed (its values already passed through ``term``), made safe line by line: no
    line starts with ``::`` and any control character left is escaped."""
    return "\n".join(_no_command(_escaped(line)) for line in str(text).split("\n"))


def md_code(value: Any, cap: int = MD_CAP, *, cell: bool = False) -> str:
    """``value`` as an inline Markdown code span that it cannot close: on one line (line breaks escaped),
    between backtick runs longer than any run inside it, padded with a space where it starts or ends with a
    backtick, at most ``cap`` characters, the marker after the span.  ``cell``: the span sits in a table
    cell, where GitHub splits on ``|`` even inside code, so each ``|`` is escaped as the table rule asks.
    At the start of a line a run of three backticks does not open a fence: the closing run follows on the
    same line, and a backtick fence's info string holds no backtick (CommonMark 4.5)."""
    text, marker = _cut(str(value), cap)
    text = _escaped(text)
    if cell:
        text = text.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if not text or text.startswith("`") or text.endswith("`") or text.startswith(" ") and text.endswith(" ") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}{marker}"


# every ASCII punctuation character may be backslash-escaped (CommonMark 2.4): none then starts markup
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")


def md_text(value: Any, cap: int = MD_CAP) -> str:
    """``value`` as Markdown text that renders as itself: on one line, every ASCII punctuation character
    backslash-escaped (no emphasis, link, image, HTML, comment, table cell or heading), and a word joiner
    after each ``@`` and ``#``, which GitHub would otherwise link as a mention or an issue reference."""
    text, marker = _cut(str(value), cap)
    text = _PUNCT.sub(r"\\\1", _escaped(text))
    return text.replace("@", "@\u2060").replace("#", "#\u2060") + marker
