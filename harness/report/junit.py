"""JUnit XML of a run, for CI dashboards: one test case per record, from a results.json's contents.

Statuses map as pytest's junit output maps them: ``fail`` is a failure, ``error`` an error, ``xfail`` (a
registered known divergence) is skipped with the entry's id as the message, and ``xpass`` (a registered
divergence that no longer reproduces) is a failure, because the registry must be updated.  The class name is
the record's option family, so dashboards group the cases as the run summary does.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.families import group_of
from harness.jsonio import atomic_write_text
from harness.run.runner import NO_VERDICT

__all__ = ["render_junit", "write_junit"]


# XML 1.0 has no way to write these characters, even escaped; a record's text (a case id, an exception
# message from a file of another job) may hold them, so they are written as their Python escapes
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def render_junit(results: Mapping[str, Any]) -> str:
    """The XML text for the records of ``results`` (the dict written as results.json)."""
    records = results["records"]
    counts = {s: sum(r["status"] == s for r in records) for s in ("fail", "xpass", "error", "xfail")}
    meta = results["meta"]
    suite = ET.Element(
        "testsuite",
        name="bce-harness",
        tests=str(len(records)),
        failures=str(counts["fail"] + counts["xpass"]),
        errors=str(counts["error"]),
        skipped=str(counts["xfail"] + sum(r["status"] in NO_VERDICT for r in records)),
        time=str(meta.get("wall_seconds", 0)),
        timestamp=str(meta.get("created_utc", "")),
    )
    props = ET.SubElement(suite, "properties")
    # the versions and the seed, so a dashboard can say what ran: every run's meta has them (summary.meta)
    for key in ("tensorflow", "keras", "profile", "seed", "harness_version", "python", "numpy", "platform"):
        ET.SubElement(props, "property", name=key, value=str(meta.get(key)))
    for r in records:
        case = ET.SubElement(suite, "testcase", classname=f"bce-harness.{group_of(r)}", name=r["id"], time="0")
        status = r["status"]
        message = r.get("message") or r.get("note") or ""
        if status == "fail":
            ET.SubElement(case, "failure", type=str(r.get("kind")), message=f"{r.get('kind')}: {r.get('note') or r['id']}").text = message
        elif status == "xpass":
            ET.SubElement(case, "failure", type="xpass", message=r.get("note", "registered divergence no longer reproduces"))
        elif status == "error":
            ET.SubElement(case, "error", type="harness", message=r.get("note", "")).text = message
        elif status == "xfail":
            ET.SubElement(case, "skipped", type="xfail", message=f"known divergence {r.get('divergence')}")
        elif status in NO_VERDICT:  # no verdict
            ET.SubElement(case, "skipped", type=status, message=r.get("note", ""))
    for element in suite.iter():
        element.attrib.update({k: _xml_safe(v) for k, v in element.attrib.items()})
        if element.text:
            element.text = _xml_safe(element.text)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_junit(results: Mapping[str, Any], path: str | Path) -> Path:
    return atomic_write_text(path, render_junit(results))
