"""JUnit XML of a run, for CI dashboards: one test case per record, from a results.json's contents.

Statuses map as pytest's junit output maps them: ``fail`` is a failure, ``error`` an error, ``xfail`` (a
registered known divergence) is skipped with the entry's id as the message, and ``xpass`` (a registered
divergence that no longer reproduces) is a failure, because the registry must be updated.  The class name is
the record's option family, so dashboards group the cases as the run summary does.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.families import group_of
from harness.run.runner import NO_VERDICT

__all__ = [
    "JUNIT_TAIL", "junit_case", "junit_chunks", "junit_head", "pass_cases", "render_junit", "suite_counts", "totals_suite", "write_junit",
    "write_junit_chunks",
]  # fmt: skip


# XML 1.0 has no way to write these characters, even escaped; a record's text (a case id, an exception
# message from a file of another job) may hold them, so they are written as their Python escapes
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#09;"})


# element text, as ElementTree escapes it
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _attr(text: str) -> str:
    """``text`` as a double-quoted XML attribute value, escaped as ElementTree escapes one."""
    return '"' + text.translate(_ATTR) + '"'


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


# a character an attribute value escapes (_ATTR) or cannot hold (_NOT_XML): every control character is one
# or the other; one class, not the two patterns, searches a batch's ids three times as fast
_ESCAPED = re.compile('[&<>"\x00-\x1f\ud800-\udfff\ufffe\uffff]')


def _value(text: str) -> str:
    """``_attr(_xml_safe(text))``: one search where no character needs either (almost every value), a
    fifth of the time of the two."""
    return '"' + text + '"' if _ESCAPED.search(text) is None else _attr(_xml_safe(text))


def junit_chunks(results: Mapping[str, Any]) -> Iterator[str]:
    """The XML text for the records of ``results`` (the dict written as results.json; its ``records`` may be
    any re-iterable, such as a results.parquet's rows read a batch at a time), a test case at a time: a
    million records are never one tree or one string in memory."""
    records = results["records"]
    suite = None if isinstance(records, list | tuple) else totals_suite(results.get("totals") or {})
    if suite is None:  # the suite's attributes come first: one pass to count
        suite = suite_counts(Counter(r["status"] for r in records))
    yield junit_head(results["meta"], *suite)
    for r in records:
        yield junit_case(r)
    yield JUNIT_TAIL


JUNIT_TAIL = "</testsuite>\n"


def suite_counts(statuses: Mapping[str, int]) -> tuple[int, dict[str, int]]:
    """The suite's test count and its counts by what the suite's attributes count, from the records' count
    by status."""
    counts = dict.fromkeys(("fail", "xpass", "error", "xfail", "no verdict"), 0)
    for status, n in statuses.items():
        if status in counts:
            counts[status] += n
        elif status in NO_VERDICT:
            counts["no verdict"] += n
    return sum(statuses.values()), counts


def totals_suite(t: Mapping[str, Any]) -> tuple[int, dict[str, int]] | None:
    """``suite_counts`` from a run's totals, or None where they do not count every status the suite needs.
    Records read from a file a batch at a time take these: a pass over them to count is saved."""
    if not all(isinstance(t.get(k), int) for k in ("total", "fail", "xpass", "error", "xfail")):
        return None
    counts = {k: t[k] for k in ("fail", "xpass", "error", "xfail")}
    counts["no verdict"] = sum(t.get(s, 0) for s in NO_VERDICT)
    return t["total"], counts


def junit_head(meta: Mapping[str, Any], total: int, counts: Mapping[str, int]) -> str:
    """The XML declaration, the suite's start tag and its properties: everything before the first test case."""
    suite = ET.Element(
        "testsuite",
        name="bce-harness",
        tests=str(total),
        failures=str(counts["fail"] + counts["xpass"]),
        errors=str(counts["error"]),
        skipped=str(counts["xfail"] + counts["no verdict"]),
        time=str(meta.get("wall_seconds", 0)),
        timestamp=str(meta.get("created_utc", "")),
    )
    props = ET.SubElement(suite, "properties")
    # the versions and the seed, so a dashboard can say what ran: every run's meta has them (summary.meta)
    for key in ("tensorflow", "keras", "profile", "seed", "harness_version", "python", "numpy", "platform"):
        ET.SubElement(props, "property", name=key, value=str(meta.get(key)))
    _safe(suite)
    ET.indent(suite)
    head = ET.tostring(suite, encoding="unicode")
    end = head.rindex("</testsuite>")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + head[:end]


def junit_case(r: Mapping[str, Any]) -> str:
    """The test case of record ``r``, a line or a few, as ElementTree writes ``_case(r)`` indented (written
    directly: ElementTree took most of junit.xml's time for a night's hundred thousand known divergences)."""
    if r["status"] == "pass":  # most records: one empty element
        return pass_cases([group_of(r)], [r["id"]])[0]
    classname, name = _value(f"bce-harness.{group_of(r)}"), _value(r["id"])
    child = _child(r)
    if child is None:
        return f'  <testcase classname={classname} name={name} time="0" />\n'
    tag, attrib, text = child
    attrs = "".join(f" {k}={_value(v)}" for k, v in attrib.items())
    inner = f">{_xml_safe(text).translate(_TEXT)}</{tag}>" if text else " />"
    return f'  <testcase classname={classname} name={name} time="0">\n    <{tag}{attrs}{inner}\n  </testcase>\n'


def pass_cases(groups: Sequence[str], ids: Sequence[str]) -> list[str]:
    """The test case lines of passing records, the record with id ``ids[i]`` in option family ``groups[i]``,
    as ElementTree writes each.  Many at once: where no id needs an escape (a night's ids never do; one
    search over them all says so), the ids go into their lines as they are, without an escape each."""
    classnames = {g: _value(f"bce-harness.{g}") for g in set(groups)}
    if _ESCAPED.search("".join(ids)) is None:
        return [f'  <testcase classname={classnames[g]} name="{cid}" time="0" />\n' for g, cid in zip(groups, ids, strict=True)]
    return [f'  <testcase classname={classnames[g]} name={_value(cid)} time="0" />\n' for g, cid in zip(groups, ids, strict=True)]


def _child(r: Mapping[str, Any]) -> tuple[str, dict[str, Any], Any] | None:
    """The element inside the test case of a record that did not pass (its tag, attributes and text), or None."""
    status = r["status"]
    message = r.get("message") or r.get("note") or ""
    if status == "fail":
        return "failure", {"type": str(r.get("kind")), "message": f"{r.get('kind')}: {r.get('note') or r['id']}"}, message
    if status == "xpass":
        return "failure", {"type": "xpass", "message": r.get("note", "registered divergence no longer reproduces")}, None
    if status == "error":
        return "error", {"type": "harness", "message": r.get("note", "")}, message
    if status == "xfail":
        return "skipped", {"type": "xfail", "message": f"known divergence {r.get('divergence')}"}, None
    if status in NO_VERDICT:  # no verdict
        return "skipped", {"type": status, "message": r.get("note", "")}, None
    return None


def _case(r: Mapping[str, Any]) -> ET.Element:
    """The test case as an ElementTree element: what ``junit_case`` writes (the tests hold the two the same)."""
    case = ET.Element("testcase", classname=f"bce-harness.{group_of(r)}", name=r["id"], time="0")
    child = _child(r)
    if child is not None:
        tag, attrib, text = child
        ET.SubElement(case, tag, attrib).text = text
    return case


def _safe(element: ET.Element) -> None:
    for e in element.iter():
        e.attrib.update({k: _xml_safe(v) for k, v in e.attrib.items()})
        if e.text:
            e.text = _xml_safe(e.text)


def render_junit(results: Mapping[str, Any]) -> str:
    """The XML text for the records of ``results``, whole (``junit_chunks`` joined)."""
    return "".join(junit_chunks(results))


def write_junit(results: Mapping[str, Any], path: str | Path) -> Path:
    """junit.xml written a test case at a time to a temporary file, then renamed into place (atomic, as
    jsonio.atomic_write_text, without the whole text in memory)."""
    return write_junit_chunks(junit_chunks(results), path)


def write_junit_chunks(chunks: Iterable[str], path: str | Path) -> Path:
    """``write_junit`` of the text ``chunks`` (``junit_chunks``' or any made as they are), written as they come."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
