"""The record stream: every record appended to ``DIR/records.jsonl`` the moment it completes.

The first line is ``{"stream": STREAM_VERSION, "meta": {...}}``; every other line is one complete record
(case, expected, outcome, comparison, status), enough to rebuild it.  A run killed at any point leaves a
stream whose complete lines are all good (a torn last line is ignored), so ``--resume DIR`` continues it
without redoing finished work, and ``bce-harness merge`` joins the streams of shards into one report.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.case import Case, Expected, Outcome
from harness.errors import InputError, UsageError
from harness.jsonio import MAX_ELEMENTS, atomic_write_text, dumps, loads, pack_array
from harness.jsonl import JsonlAppender, read_jsonl
from harness.judge.compare import Comparison
from harness.judge.registry import Registry
from harness.oracle import PROFILES
from harness.run.runner import STATUSES, Record, judged
from harness.schema import Int, Json, List, Map, Num, Obj, Opt, Str

__all__ = [
    "STREAM_NAME",
    "check_merge_out",
    "check_shards",
    "file_fingerprint",
    "recorded",
    "RecordStream",
    "iter_stream",
    "load_stream",
    "merge_records",
    "PROVENANCE",
    "read_provenance",
    "record_from_json",
    "record_to_json",
    "suite_fingerprint",
    "write_provenance",
]

STREAM_NAME = "records.jsonl"
# STREAM_VERSION history:
#   1 - first layout: a header line with meta, then one full record per line.
#   2 - arrays packed (jsonio.pack_array: base64 of their bytes), not lists of numbers: a line is written per
#       record, and printing its floats was most of a large run's time in this process.  Version 1 streams
#       are still read (decode_array takes both forms).
STREAM_VERSION = 2
_READABLE_VERSIONS = (1, 2)


def suite_fingerprint(cases: Iterable[Any]) -> str:
    """A short hash of the case ids in order: two runs of the same suite and selection share it."""
    return ids_fingerprint(c.id for c in cases)


def ids_fingerprint(ids: Iterable[str]) -> str:
    """``suite_fingerprint`` of cases with these ids: each id's UTF-8 bytes and a NUL, hashed a few
    thousand ids at a time (the same bytes as one by one, in a tenth of the time)."""
    h = hashlib.sha256()
    it = iter(ids)
    while batch := list(itertools.islice(it, 4096)):
        h.update(("\0".join(batch) + "\0").encode())
    return h.hexdigest()[:16]


def recorded(out_dir: str | Path) -> int:
    """How many lines after the header the stream in ``out_dir`` has (0 without a stream): what a new run
    there would replace."""
    path = Path(out_dir) / STREAM_NAME
    try:
        with path.open("rb") as f:
            return max(sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1, 0)
    except FileNotFoundError:
        return 0


def file_fingerprint(path: str | Path) -> str:
    """A short hash of a file's bytes (the registry a run judged with: shards to merge must share it)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def record_to_json(r: Record) -> dict[str, Any]:
    """A record as one stream line: each part through its own encoder, arrays packed."""
    return {
        "case": r.case.as_dict(encode=pack_array),
        "status": r.status,
        "note": r.note,
        "comparison": r.comparison.as_dict(),
        "expected": None if r.expected is None else r.expected.as_dict(encode=pack_array),
        "outcome": None if r.outcome is None else r.outcome.as_dict(encode=pack_array),
        **({} if r.evidence is None else {"evidence": dict(r.evidence)}),
    }


_TEXT = Str()
_ULPS = Int(0, 2**64)
# A stream line (``record_to_json``): each part's own decoder reads it after the schema; the arrays are
# decoded there (jsonio checks each shape before it allocates).
LINE = Obj(
    {
        "case": Map(Json(), 100),  # Case.from_dict checks every field
        "status": Str(choices=STATUSES),
        "note": Opt(_TEXT),
        "comparison": Obj(
            {"kind": Opt(_TEXT), "also": List(_TEXT, 100), "message": _TEXT, "mismatched": Int(0, MAX_ELEMENTS),
             "total": Int(0, MAX_ELEMENTS), "max_abs": Opt(Num()), "max_rel": Opt(Num()), "max_ulp": Opt(_ULPS)},
            required=frozenset({"kind", "message"}),
        ),  # fmt: skip
        "expected": Opt(Obj({"value": Json(), "bound": Json(), "dtype": Opt(_TEXT), "raises": Opt(_TEXT), "rule": Opt(_TEXT),
                             "outside": Opt(_TEXT)}, required=frozenset({"value", "bound", "dtype", "raises"}))),  # fmt: skip
        "outcome": Opt(Obj({"value": Json(), "dtype": Opt(_TEXT), "error": Opt(_TEXT), "seconds": Num(lo=0)},
                           required=frozenset({"value", "dtype", "error"}))),  # fmt: skip
        "evidence": Opt(Map(Json())),
    },
    required=frozenset({"case", "status", "comparison"}),
)
# The header's meta (cli's run header): the keys a resume and a merge compare, each of its type; a key of
# another version is kept, not read.
HEADER = Obj(
    {
        "stream": Int(1, 1000),
        "meta": Obj(
            {"seed": Opt(Int(0, 2**64)), "profile": Opt(_TEXT), "suite": Opt(_TEXT), "shard": Opt(List(Int(1, 2**31), 2)),
             "select": Opt(_TEXT), "max_cases": Opt(Int(1)), "whole_suite": Opt(_TEXT), "size": Opt(Int(0)),
             "loss_factory": Opt(_TEXT), "registry_sha": Opt(_TEXT), "special_cases_sha": Opt(_TEXT), "suite_name": Opt(_TEXT),
             "seeds": Opt(List(Int(0, 2**64), 2)), "backend": Opt(_TEXT)},
            extra=Json(),
        ),  # fmt: skip
    },
    required=frozenset({"stream", "meta"}),
)


def record_from_json(d: dict[str, Any], registry: Registry, *, profile: str = "keras3") -> Record:
    """Rebuild a record through each part's decoder; its verdict is taken again against ``registry`` (the
    registry may have changed), matching the facets of ``profile``, the semantics the stream was judged against."""
    LINE.check(d, "")
    case = Case.from_dict(d["case"])
    comparison = Comparison.from_dict(d["comparison"])
    exp = None if d.get("expected") is None else Expected.from_dict(d["expected"])
    out = None if d.get("outcome") is None else Outcome.from_dict(d["outcome"])
    if d["status"] == "error":
        return Record(case, "error", comparison, exp, out, note=d.get("note", ""))
    record = judged(case, comparison, exp, out, registry, profile)
    evidence = d.get("evidence")
    return record if not isinstance(evidence, dict) else replace(record, evidence=evidence)


class RecordStream(JsonlAppender):
    """Appends records to ``DIR/records.jsonl``, one flushed line each (harness/jsonl.py, the one appender)."""

    def __init__(self, out_dir: str | Path, meta: dict[str, Any], *, append: bool = False) -> None:
        super().__init__(Path(out_dir) / STREAM_NAME, {"stream": STREAM_VERSION, "meta": meta}, append=append)

    def append(self, record: Record) -> None:
        self.write(record_to_json(record))


def load_stream(path: str | Path, registry: Registry) -> tuple[dict[str, Any], list[Record]]:
    """The meta and records of a stream file (or of the records.jsonl in a folder)."""
    meta, records = iter_stream(path, registry)
    return meta, list(records)


def iter_stream(path: str | Path, registry: Registry) -> tuple[dict[str, Any], Iterator[Record]]:
    """The meta of a stream and its records one at a time, read line by line: a million-record stream is
    never in memory at once (report/bulk.py keeps what the reports need)."""
    path = Path(path)
    if path.is_dir():
        path = path / STREAM_NAME
    head, lines = read_jsonl(path, "stream", _READABLE_VERSIONS, "record stream", loads=loads)
    if not isinstance(head.get("meta"), dict):
        raise InputError(f"{path}: line 1 is not the header of a record stream (is this a records.jsonl written by bce-harness run?)")
    try:
        HEADER.check(head, "")
    except UsageError as exc:
        raise InputError(f"{path}: line 1 (the header): {exc}") from None
    meta = head["meta"]
    profile = meta.get("profile", "keras3")
    if profile not in PROFILES:
        raise InputError(f"{path}: header profile={profile!r} is not one of {', '.join(sorted(PROFILES))}")

    def records() -> Iterator[Record]:
        for n, value in lines:
            try:
                yield record_from_json(value, registry, profile=profile)
            except UsageError as exc:  # the schema's or a part's decoder's: it names the field and the value
                raise InputError(f"{path}: line {n} is not a record ({exc})") from None
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise InputError(f"{path}: line {n} is not a record ({type(exc).__name__}: {exc})") from None

    return meta, records()


def merge_records(groups: Iterable[Sequence[Any]]) -> list[Record]:
    """Records of several shards in one list, each case once (the last seen wins)."""
    by_id: dict[str, Record] = {}
    for group in groups:
        for r in group:
            by_id[r.case.id] = r
    return list(by_id.values())


# What the shards of one run share: the header keys that must be equal for their records to make one report.
def check_shards(dirs: Sequence[str | Path], metas: Sequence[dict[str, Any]], groups: Sequence[Sequence[Any]]) -> None:
    """Refuse, naming the folder, shards that are not exactly slices 1..N of one run, each complete: each K
    once, every record of each slice there.  That they are slices of one run (the same suite, seed,
    selection, registry and loss factory) is the run's identity, checked by ``harness.engine.merge``."""
    shards = []
    for d, m in zip(dirs, metas, strict=True):
        shard = m.get("shard")
        if shard is None:
            if len(dirs) > 1:
                raise InputError(f"{d}: holds a whole run (no --shard), not a slice; merge the shards of one run")
            shard = (1, 1)
        if not (isinstance(shard, list | tuple) and len(shard) == 2 and all(type(x) is int for x in shard)
                and 1 <= shard[0] <= shard[1]):  # fmt: skip
            raise InputError(f"{d}: header shard={shard!r} is not [K, N] with 1 <= K <= N")
        shards.append(tuple(shard))
    counts = {n for _, n in shards}
    if len(counts) != 1:
        raise InputError(f"the shards split the suite differently: N = {', '.join(map(str, sorted(counts)))}")
    (n,) = counts
    seen: dict[int, str | Path] = {}
    for d, (k, _) in zip(dirs, shards, strict=True):
        if k in seen:
            raise InputError(f"{d}: shard {k}/{n} is also in {seen[k]}; give each shard once")
        seen[k] = d
    missing = sorted(set(range(1, n + 1)) - set(seen))
    if missing:
        raise InputError(f"shard(s) {', '.join(f'{k}/{n}' for k in missing)} missing: merge needs all {n} slices of the run")
    for d, m, records in zip(dirs, metas, groups, strict=True):
        size = m.get("size")
        if size is not None and len({r.case.id for r in records}) != size:
            raise InputError(
                f"{d}: holds {len(records)} of its {size} records (an interrupted run?); finish it with run --resume first"
            )


def check_merge_out(out: str | Path, dirs: Sequence[str | Path]) -> None:
    """Refuse an --out that is one of the shard folders: its reports (and stream) would be replaced."""
    target = Path(out).resolve()
    for d in dirs:
        folder = Path(d).resolve()
        if folder.is_file() or folder.name == STREAM_NAME:
            folder = folder.parent
        if folder == target:
            raise UsageError(f"--out {out}: is the shard folder {d}; its reports would be overwritten (choose another)")


# What a run's results say of where it ran, kept beside its stream so that merge can carry it (the merging
# machine's own versions are not the shards').  Each value as meta.py writes it: a string or None, except
# target (the target's versions and settings), cpu_flags (strings) and environment (flags to str or None).
PROVENANCE = ("tensorflow", "keras", "target", "python", "numpy", "platform", "cpu_flags", "environment")
PROVENANCE_NAME = "provenance.json"
_TEXT_CAP = 1000  # characters of a version or platform string


def _short(value: Any, cap: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= cap else f"{text[:cap]}... ({len(text)} characters)"


def write_provenance(out_dir: str | Path, run_meta: dict[str, Any]) -> Path:
    """``provenance.json`` in ``out_dir``: the PROVENANCE fields of ``run_meta``."""
    return atomic_write_text(Path(out_dir) / PROVENANCE_NAME, dumps({k: run_meta.get(k) for k in PROVENANCE}))


def _shard_folder(d: str | Path) -> Path:
    folder = Path(d)
    return folder.parent if folder.name == STREAM_NAME or folder.is_file() else folder


def _check_provenance(path: Path, data: Any) -> dict[str, Any]:
    """``data`` as read from ``path``, every field of its type and size, or InputError naming it."""
    if not isinstance(data, dict):
        raise InputError(f"{path}: is not an object")
    for key in data:
        if key not in PROVENANCE:
            raise InputError(f"{path}: unknown field {str(key)[:100]!r}")

    def text(v: Any) -> bool:
        return v is None or (isinstance(v, str) and len(v) <= _TEXT_CAP)

    def scalar(v: Any) -> bool:
        return text(v) or (type(v) in (int, float, bool) and v == v and abs(v) != float("inf"))

    for key in PROVENANCE:
        v = data.get(key)
        if key == "target":
            ok = v is None or (isinstance(v, dict) and len(v) <= 100 and all(text(k) and scalar(x) for k, x in v.items()))
        elif key == "cpu_flags":
            ok = v is None or (isinstance(v, list) and len(v) <= 1000 and all(isinstance(f, str) and text(f) for f in v))
        elif key == "environment":
            ok = v is None or (isinstance(v, dict) and len(v) <= 100 and all(text(k) and text(x) for k, x in v.items()))
        else:
            ok = text(v)
        if not ok:
            raise InputError(f"{path}: {key}={_short(v)} is not what a run writes there")
    return {k: data.get(k) for k in PROVENANCE}


def read_provenance(dirs: Sequence[str | Path]) -> dict[str, Any]:
    """The versions, platform and environment the shards in ``dirs`` ran on, which they must share:
    InputError names the shard folder and the field where one is missing, malformed or different."""
    found: list[tuple[Path, dict[str, Any]]] = []
    for d in dirs:
        path = _shard_folder(d) / PROVENANCE_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(
                f"{path}: not found: the shard's versions and platform are unknown (its folder was not copied "
                "whole, or an older bce-harness made it); run the shard again"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
        if len(text) > 1_000_000:
            raise InputError(f"{path}: {len(text)} characters, more than a provenance holds")
        try:
            data = loads(text)
        except ValueError as exc:
            raise InputError(f"{path}: not JSON ({exc})") from None
        found.append((path, _check_provenance(path, data)))
    first_path, first = found[0]
    for path, prov in found[1:]:
        for key in PROVENANCE:
            if prov[key] != first[key]:
                raise InputError(
                    f"{path.parent}: ran with {key}={_short(prov[key])}, {first_path.parent} with "
                    f"{_short(first[key])}; the shards of one merge share their versions, platform and environment"
                )
    return first
