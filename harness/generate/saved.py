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
from harness.jsonio import MAX_ELEMENTS, loads
from harness.schema import Int, Json, List, Map, Obj, Opt, Str

__all__ = ["CASE_FIELDS", "CASE_FILE", "DEFAULT_REGRESSIONS", "MAX_CASE_BYTES", "case_files", "load_case"]

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


_TEXT = Str()
# A case file: ``Case.as_dict()`` and fuzz's ``finding`` (fuzz.save_finding).  The arrays, options, training
# and config are read by the case's own decoders (Case.from_dict), which name the field; the rest here.
CASE_FILE = Obj(
    {
        "id": Str(nonempty=True),
        "api": _TEXT,
        "options": Map(Json(), 100),
        "true_dtype": _TEXT,
        "pred_dtype": _TEXT,
        "weight_dtype": _TEXT,
        "y_true": Json(),
        "y_pred": Json(),
        "sample_weight": Json(),
        "mask": Json(),
        "tags": Map(_TEXT),
        "mode": _TEXT,
        "producer": Opt(_TEXT),
        "grad": Opt(_TEXT),
        "training": Opt(Map(Json(), 100)),
        "config": Opt(Map(Json(), 100)),
        "row_lengths": Opt(List(Int(0, MAX_ELEMENTS), MAX_ELEMENTS)),
        "finding": Obj(
            {"fingerprint": _TEXT, "kind": Opt(_TEXT), "message": Opt(_TEXT), "actual": Opt(_TEXT), "found_utc": Opt(_TEXT),
             "seed": Opt(Int(0, 2**64)), "shard": Opt(List(Int(1, 2**31), 2)), "examples": Opt(Int(0)), "profile": Opt(_TEXT),
             "tensorflow": Opt(_TEXT), "keras": Opt(_TEXT), "backend": Opt(_TEXT), "backend_version": Opt(_TEXT),
             "loss_factory": Opt(_TEXT)},
            extra=Json(),
        ),  # fmt: skip
    },
)
assert set(CASE_FILE.fields) == CASE_FIELDS, "the schema names every field a case file may have"


def _case(data: Any) -> Case:
    if not isinstance(data, Mapping):
        raise UsageError(f"the file holds a JSON {type(data).__name__}, not an object")
    unknown = set(data) - CASE_FIELDS
    if unknown:
        raise UsageError(f"unknown field {min(unknown)!r}")
    CASE_FILE.check(data, "")
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
