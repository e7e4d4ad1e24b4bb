"""Saved cases: reading them back, safely, to re-run them through the pipeline.

A case file is one JSON object, ``Case.as_dict()`` (NaN and infinities as the strings "nan", "inf",
"-inf", see jsonio.py), optionally with a ``finding`` object saying how it was found (``fuzz`` writes one).
Loading parses JSON and nothing else: no code is evaluated, a bare ``NaN``/``Infinity`` constant is refused,
and a malformed file raises InputError in one line naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from json import JSONDecodeError
from pathlib import Path
from typing import Any

from harness.case import Case
from harness.errors import InputError, UsageError
from harness.jsonio import loads

__all__ = ["CASE_FIELDS", "DEFAULT_REGRESSIONS", "MAX_CASE_BYTES", "case_files", "load_case"]

# Where fuzz saves the cases it found and replay looks first: a folder of the project being tested, relative
# to where the command runs (like --out), never inside the installed package.
DEFAULT_REGRESSIONS = Path("cases") / "regressions"
# The top-level fields a case file may have: the Case's own (as ``Case.as_dict`` writes them) and ``finding``.
CASE_FIELDS = frozenset({f.name for f in fields(Case)} | {"finding"})
# The largest case file read: a saved case is a handful of elements (fuzz shrinks them), and reading JSON
# takes some fifty times the file's size in memory (a 40 MB file took 2 GB).  --max-case-bytes raises it.
MAX_CASE_BYTES = 4_000_000


def load_case(path: str | Path, *, max_bytes: int = MAX_CASE_BYTES) -> Case:
    """The case saved in ``path``; InputError names the file and the field that is wrong.  A file larger
    than ``max_bytes`` is refused before it is read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(
                f"{path}: case file of {size:,} bytes is over the limit of {max_bytes:,} (raise it with --max-case-bytes)"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: case file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the case file ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = loads(text)
    except JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    try:
        return _case(data)
    except UsageError as exc:
        raise InputError(f"{path}: {exc}") from None


def _case(data: Any) -> Case:
    if not isinstance(data, Mapping):
        raise UsageError(f"the file holds a JSON {type(data).__name__}, not an object")
    unknown = set(data) - CASE_FIELDS
    if unknown:
        raise UsageError(f"unknown field {min(unknown)!r}")
    if not isinstance(data.get("id"), str):
        raise UsageError(f"field 'id'={data.get('id')!r} is not a string")
    for key in ("tags", "finding"):
        if key in data and not isinstance(data[key], Mapping):
            raise UsageError(f"field {key!r} is not an object")
    tags = data.get("tags", {})
    bad = [k for k, v in tags.items() if not isinstance(v, str)]
    if bad:
        raise UsageError(f"field 'tags.{min(bad)}'={tags[min(bad)]!r} is not a string")
    for key in ("true_dtype", "pred_dtype", "weight_dtype", "api"):
        if key in data and not isinstance(data[key], str):
            raise UsageError(f"field {key!r}={data[key]!r} is not a string")
    try:
        return Case.from_dict({k: v for k, v in data.items() if k != "finding"})
    except (TypeError, ValueError) as exc:  # UsageError is a ValueError and already names the field
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"a field has the wrong type ({exc})") from None


def case_files(paths: Iterable[str | Path]) -> list[Path]:
    """The case files named: files as given, folders as the ``*.json`` files directly in them, sorted."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.glob("*.json")))
        elif p.exists():
            files.append(p)
        else:
            raise InputError(f"{p}: case file not found")
    return files
