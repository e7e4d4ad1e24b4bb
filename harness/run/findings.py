"""Job-level findings kept beside the record stream, so that ``--resume`` keeps them.

What no single record says (a stacked call that crashed while its cases pass alone, a failure that did not
come again: ``workers.WorkerPool.findings``) is appended to ``DIR/findings.jsonl`` the moment the pool finds
it, one flushed JSON line each, after a header line with the file's version (harness/jsonl.py).  A run
killed at any point leaves whole lines (a torn last line is ignored); ``--resume`` reads them back and
appends; a new run in the folder starts the file again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.jsonl import JsonlAppender, read_jsonl

__all__ = ["FINDINGS_NAME", "FindingsLog", "load_findings"]

FINDINGS_NAME = "findings.jsonl"


# FINDINGS_VERSION history: 0 - no header line (read still); 1 - the header {"findings": 1}.
FINDINGS_VERSION = 1


class FindingsLog(JsonlAppender):
    """Appends findings to ``DIR/findings.jsonl`` (harness/jsonl.py, the one appender); ``append=False``
    starts it empty."""

    def __init__(self, out_dir: str | Path, *, append: bool = False) -> None:
        super().__init__(Path(out_dir) / FINDINGS_NAME, {"findings": FINDINGS_VERSION}, append=append)

    def __call__(self, finding: Mapping[str, Any]) -> None:
        self.write(dict(finding))


def load_findings(out_dir: str | Path) -> list[dict[str, Any]]:
    """The findings an earlier run in ``out_dir`` wrote (none without the file); a torn last line is dropped."""
    path = Path(out_dir) / FINDINGS_NAME
    if not path.exists():
        return []
    if path.stat().st_size == 0:
        return []
    _, lines = read_jsonl(path, "findings", (0, FINDINGS_VERSION), "findings log", headerless=True)
    out = []
    for n, finding in lines:
        if not isinstance(finding, dict) or not isinstance(finding.get("message"), str):
            raise InputError(f"{path}: line {n} is not a finding")
        out.append(finding)
    return out
