"""Saved cases: reading them back, safely, to re-run them through the pipeline.

A case file is one JSON object, its ``format_version`` (CASE_VERSION) and ``Case.as_dict()`` (NaN and
infinities as the strings "nan", "inf", "-inf", see jsonio.py), optionally with a ``finding`` object saying
how it was found (``fuzz`` writes one).  ``save_case`` writes one and ``read_saved`` (or ``load_case``, the
case alone) reads it back.  Loading parses JSON and nothing else: no code is evaluated, a bare
``NaN``/``Infinity`` constant is refused, and a malformed file raises InputError in one line naming the file
and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from json import JSONDecodeError
from pathlib import Path
from typing import Any

from harness.case import Case
from harness.errors import InputError, UsageError
from harness.jsonio import MAX_ELEMENTS, atomic_write_text, dumps, loads
from harness.schema import Int, Json, List, Map, Obj, Opt, Str, format_version

__all__ = [
    "CASE_FIELDS", "CASE_FILE", "CASE_VERSION", "DEFAULT_REGRESSIONS", "MAX_CASE_BYTES", "SavedCase", "case_files", "load_case", "read_saved",
    "save_case",
]  # fmt: skip

# CASE_VERSION history (a case file: save_case writes it, read_saved and load_case read it):
#   0 - no version field: Case.as_dict() and an optional ``finding`` (read still, where it fits CASE_FILE;
#       cases/regressions holds such files).
#   1 - ``format_version`` first, then the same fields.
CASE_VERSION = 1

# Where fuzz saves the cases it found and replay looks first: a folder of the project being tested, relative
# to where the command runs (like --out), never inside the installed package.
DEFAULT_REGRESSIONS = Path("cases") / "regressions"
# The top-level fields a case file may have: the Case's own (as ``Case.as_dict`` writes them) and ``finding``.
CASE_FIELDS = frozenset({f.name for f in fields(Case)} | {"finding", "format_version"})
# The largest case file read: a saved case is a handful of elements (fuzz shrinks them), and reading JSON
# takes some fifty times the file's size in memory (a 40 MB file took 2 GB).  --max-case-bytes raises it.
MAX_CASE_BYTES = 4_000_000


@dataclass(frozen=True, eq=False)
class SavedCase:
    """A case file read back: its case, its ``finding`` (None without one) and its format version."""

    case: Case
    finding: dict[str, Any] | None
    version: int


def save_case(path: str | Path, case: Case, *, finding: Mapping[str, Any] | None = None) -> Path:
    """The case file at ``path``: ``format_version`` (CASE_VERSION), ``case.as_dict()`` and, if given,
    ``finding`` (how the case was found: fuzz.save_finding); read_saved reads it back."""
    data = {"format_version": CASE_VERSION, **case.as_dict()}
    if finding is not None:
        data["finding"] = dict(finding)
    return atomic_write_text(path, dumps(data))


def load_case(path: str | Path, *, max_bytes: int = MAX_CASE_BYTES) -> Case:
    """The case saved in ``path`` (read_saved's, without its finding)."""
    return read_saved(path, max_bytes=max_bytes).case


def read_saved(path: str | Path, *, max_bytes: int = MAX_CASE_BYTES) -> SavedCase:
    """The case file ``path`` as save_case wrote it (its version first: a newer one is refused as such; a
    file without one is version 0); InputError names the file and the field that is wrong.  A file larger
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
        version = format_version(data, CASE_VERSION)
        return SavedCase(_case(data), data.get("finding"), version)
    except UsageError as exc:
        raise InputError(f"{path}: {exc}") from None


_TEXT = Str()
# A case file: its ``format_version``, ``Case.as_dict()`` and fuzz's ``finding`` (fuzz.save_finding).  The
# arrays, options, training and config are read by the case's own decoders (Case.from_dict), which name the
# field; the rest here.
CASE_FILE = Obj(
    {
        "format_version": Int(0, CASE_VERSION),
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
        return Case.from_dict({k: v for k, v in data.items() if k not in ("finding", "format_version")})
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
