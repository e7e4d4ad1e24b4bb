"""Job-level findings kept beside the record stream, so that ``--resume`` keeps them.

What no single record says (a stacked call that crashed while its cases pass alone, a failure that did not
come again: ``workers.WorkerPool.findings``) is appended to ``DIR/findings.jsonl`` the moment the pool finds
it, one flushed JSON line each.  A run killed at any point leaves whole lines (a torn last line is ignored);
``--resume`` reads them back and appends; a new run in the folder starts the file again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Self

from harness.errors import InputError

__all__ = ["FINDINGS_NAME", "FindingsLog", "load_findings"]

FINDINGS_NAME = "findings.jsonl"


class FindingsLog:
    """Appends findings to ``DIR/findings.jsonl``; ``append=False`` starts it empty."""

    def __init__(self, out_dir: str | Path, *, append: bool = False) -> None:
        self.path = Path(out_dir) / FINDINGS_NAME
        self._file: IO[str] = self.path.open("a" if append else "w", encoding="utf-8")

    def __call__(self, finding: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(dict(finding), allow_nan=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_findings(out_dir: str | Path) -> list[dict[str, Any]]:
    """The findings an earlier run in ``out_dir`` wrote (none without the file); a torn last line is dropped."""
    path = Path(out_dir) / FINDINGS_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the findings ({exc})") from None
    lines = text.split("\n")
    complete = lines[:-1] if lines[-1] else lines
    out = []
    for n, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            finding = json.loads(line)
        except ValueError:
            raise InputError(f"{path}: line {n} is not JSON") from None
        if not isinstance(finding, dict) or not isinstance(finding.get("message"), str):
            raise InputError(f"{path}: line {n} is not a finding")
        out.append(finding)
    return out
