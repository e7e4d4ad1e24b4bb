"""``results.parquet``: a run's records as columns, one row per record, beside ``results.json``.

A million-record night's results.json is a gigabyte of JSON that ``compare`` must parse whole; the same
records as Parquet columns are a few dozen megabytes, and a reader takes only the columns it needs
(``compare`` reads ids, statuses and output digests; pandas, polars or DuckDB read whatever a question
needs: README, "Querying a night's results").

One row per record, in the schema ``SCHEMA`` (its version, ``VERSION``, in the file's key-value metadata under
``VERSION_KEY``; the run's meta and totals as JSON under ``META_KEY`` and ``TOTALS_KEY``).  A passing record
keeps only its summary columns (what ``summary.record_dict`` writes for it: differences, digest, shape,
preview); every other record also keeps its whole ``record_dict`` (with its arrays) as JSON in ``detail``, so
``compare`` and a maintainer lose nothing.  The low-cardinality strings are dictionary-encoded (a reader
gets categories), the rest zstd-compressed.

``ColumnWriter`` buffers ``ROWS_PER_GROUP`` rows and writes them as one row group, so a run of any size holds
one group's rows at a time; it writes to ``results.parquet.partial`` and renames it on ``close`` (a reader
never sees a torn file under the final name).  ``ColumnsFile`` reads one back, after one schema check.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.errors import InputError, UsageError
from harness.families import group_of
from harness.jsonio import encode_number
from harness.report.drift import Drift, Tally, check_pair, check_record, output_digest, rename_pred_dtype
from harness.report.html import BIN_STARTS, Sections, write_html
from harness.report.junit import (
    JUNIT_TAIL,
    junit_case,
    junit_head,
    pass_cases,
    suite_counts,
    totals_suite,
    write_junit_chunks,
)
from harness.run.runner import Record

__all__ = [
    "COLUMNS_NAME", "META_KEY", "ROWS_PER_GROUP", "SCHEMA", "VERSION", "VERSION_KEY", "ColumnWriter", "ColumnsFile", "SummaryRows", "columns_path",
    "compare_columns", "record_of", "record_row",
]  # fmt: skip

COLUMNS_NAME = "results.parquet"
VERSION = "2"
# The versions this reader takes, each with the columns it named otherwise: version 1 (one session's runs)
# named y_pred's dtype input_dtype.
_RENAMED = {"1": {"input_dtype": "pred_dtype"}, "2": {}}
VERSION_KEY = b"bce_harness.results_columns"
META_KEY = b"bce_harness.meta"
TOTALS_KEY = b"bce_harness.totals"
ROWS_PER_GROUP = 10_000  # rows buffered as Python lists (tens of MB; 50,000 rows grew a 60,000-record run by 200 MB)

_CAT = pa.dictionary(pa.int32(), pa.string())
_SIZES = pa.list_(pa.int64())

# Version 1.  A change of a column's meaning or type is a new VERSION (the reader refuses another); a column
# added at the end is not.
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("group", _CAT),  # families.group_of: the option family, as compare and the reports group records
        ("family", _CAT),  # tags["family"]
        ("regime", _CAT),  # tags["regime"]
        ("tags", _CAT),  # every tag, as JSON
        ("api", _CAT),
        ("mode", _CAT),
        ("producer", _CAT),
        ("grad", _CAT),
        ("status", _CAT),
        ("kind", _CAT),  # the comparison's kind (tolerance, nan_inf, exception, ...)
        ("options", _CAT),  # the options as JSON; the five below are the same, for queries
        ("from_logits", pa.bool_()),
        ("label_smoothing", pa.float64()),
        ("axis", _CAT),  # JSON: an int or a list
        ("reduction", _CAT),
        ("option_dtype", _CAT),  # the loss's dtype= option
        ("pred_dtype", _CAT),  # y_pred's dtype (version 1: input_dtype)
        ("true_dtype", _CAT),
        ("compute_dtype", _CAT),
        ("actual_dtype", _CAT),
        ("expected_dtype", _CAT),
        ("shape", _SIZES),
        ("true_shape", _SIZES),
        ("actual_shape", _SIZES),
        ("training", _CAT),  # JSON
        ("config", _CAT),  # JSON
        ("row_lengths", _SIZES),
        ("max_abs", pa.float64()),
        ("max_rel", pa.float64()),
        ("max_ulp", pa.uint64()),
        ("bound", pa.float64()),  # the largest element of the error bound (null: no bound)
        ("digest", pa.string()),  # drift.output_digest of the output, every record with one
        ("preview", pa.list_(pa.float64())),  # a pass's first values (record_dict's preview)
        ("divergence", _CAT),  # the registry entry's id
        ("actual_error", pa.string()),  # TensorFlow's exception, "Type: message"
        ("message", pa.string()),
        ("note", pa.string()),
        ("evidence", pa.string()),  # JSON
        ("inferred", pa.bool_()),
        ("detail", pa.string()),  # every record but a pass: its whole record_dict as JSON
    ]
)
_DICTIONARY = [f.name for f in SCHEMA if f.type == _CAT]
# the keys record_dict writes for a pass, in its order; ``note``, ``divergence`` and ``evidence``/``inferred``
# only when set
_PASS_KEYS = (
    "id", "api", "options", "pred_dtype", "true_dtype", "compute_dtype", "shape", "true_shape", "tags", "mode",
    "producer", "grad", "training", "config", "row_lengths", "status", "kind", "max_abs", "max_rel", "max_ulp",
    "actual_dtype", "actual_error", "expected_dtype", "digest", "actual_shape", "preview",
)  # fmt: skip
_JSON_KEYS = ("options", "tags", "training", "config")


def columns_path(where: str | os.PathLike[str]) -> Path | None:
    """The results.parquet ``where`` names (the file, or a run's folder holding one), or None."""
    p = Path(where)
    if p.is_dir():
        p = p / COLUMNS_NAME
    return p if p.suffix == ".parquet" and p.is_file() else None


_JSON_MEMO = 4_096  # distinct small dicts (a record's tags, options) whose JSON text is remembered
_JSON_TEXTS: dict[tuple[Any, ...], str] = {}
_SCALARS = (str, bool, int, float, type(None))


def _json(x: Any) -> str | None:
    """``x`` as JSON text; a flat dict of scalars (tags, options: a few hundred distinct ones in a
    million records) is encoded once and then found by its items, each with its type (True and 1 hash alike)
    and a float by its exact bits (0.0 and -0.0 hash alike)."""
    if x is None:
        return None
    key = None
    if isinstance(x, dict) and all(type(v) in _SCALARS for v in x.values()):  # (a list, a dict: encoded afresh)
        key = tuple((k, type(v), v.hex() if isinstance(v, float) else v) for k, v in x.items())
        if key in _JSON_TEXTS:
            return _JSON_TEXTS[key]
    text = json.dumps(x, sort_keys=False, allow_nan=False)
    if key is not None and len(_JSON_TEXTS) < _JSON_MEMO:
        _JSON_TEXTS[key] = text
    return text


def _float(x: Any) -> float | None:
    """A number as record_dict encodes it (a float, or "nan"/"inf"/"-inf") as a float."""
    return None if x is None else float(x)


def row_of(d: Mapping[str, Any], *, digest: str | None = None, bound: float | None = None) -> dict[str, Any]:
    """The row of one record's ``record_dict``; ``digest`` and ``bound`` from its Record where the dict has
    none (a record that did not pass keeps its arrays, not their digest)."""
    options, tags = d.get("options") or {}, d.get("tags") or {}
    return {
        "id": d["id"],
        "group": group_of(d),
        "family": tags.get("family"),
        "regime": tags.get("regime"),
        "tags": _json(tags),
        "api": d.get("api"),
        "mode": d.get("mode"),
        "producer": d.get("producer"),
        "grad": d.get("grad"),
        "status": d["status"],
        "kind": d.get("kind"),
        "options": _json(options),
        "from_logits": options.get("from_logits"),
        "label_smoothing": options.get("label_smoothing"),
        "axis": _json(options.get("axis")),
        "reduction": options.get("reduction"),
        "option_dtype": options.get("dtype"),
        "pred_dtype": d.get("pred_dtype"),
        "true_dtype": d.get("true_dtype"),
        "compute_dtype": d.get("compute_dtype"),
        "actual_dtype": d.get("actual_dtype"),
        "expected_dtype": d.get("expected_dtype"),
        "shape": d.get("shape"),
        "true_shape": d.get("true_shape"),
        "actual_shape": d.get("actual_shape"),
        "training": _json(d.get("training")),
        "config": _json(d.get("config")),
        "row_lengths": d.get("row_lengths"),
        "max_abs": _float(d.get("max_abs")),
        "max_rel": _float(d.get("max_rel")),
        "max_ulp": d.get("max_ulp"),
        "bound": bound,
        "digest": d.get("digest") if digest is None else digest,
        "preview": None if d.get("preview") is None else [float(v) for v in d["preview"]],
        "divergence": d.get("divergence"),
        "actual_error": d.get("actual_error"),
        "message": d.get("message"),
        "note": d.get("note"),
        "evidence": _json(d.get("evidence")),
        "inferred": d.get("inferred"),
        "detail": None if d["status"] == "pass" else json.dumps(d, allow_nan=False),
    }


def record_row(record: Record, d: Mapping[str, Any]) -> dict[str, Any]:
    """The row of ``record``, whose ``summary.record_dict`` is ``d``."""
    o, e = record.outcome, record.expected
    if "digest" in d:  # (a summary's dict has it made already)
        digest = d["digest"]
    else:
        digest = None if o is None or o.value is None else output_digest(o.value, o.dtype)
    bound = None
    if e is not None and e.bound is not None:
        b = np.asarray(e.bound, dtype=np.float64)
        bound = float(b.max()) if b.size else None
    return row_of(d, digest=digest, bound=bound)


class ColumnWriter:
    """results.parquet written as records arrive, ``rows_per_group`` rows in memory at most."""

    def __init__(self, path: str | os.PathLike[str], *, rows_per_group: int = ROWS_PER_GROUP) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.rows_per_group = rows_per_group
        self.rows = 0
        self._buffer: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}
        self._writer: pq.ParquetWriter | None = None
        self._closed = False

    def add(self, record: Record, d: Mapping[str, Any]) -> None:
        """``record``, whose ``summary.record_dict`` is ``d``."""
        self.add_row(record_row(record, d))

    def add_row(self, row: Mapping[str, Any]) -> None:
        if self._closed:
            raise RuntimeError("ColumnWriter.add after close")
        # the row is built whole before any column grows: an interrupt between two appends would shear it
        values = [(name, row[name]) for name in self._buffer]
        for name, value in values:
            self._buffer[name].append(value)
        self.rows += 1
        if len(self._buffer["id"]) >= self.rows_per_group:
            self._flush()

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            schema = SCHEMA.with_metadata({VERSION_KEY: VERSION.encode()})
            self._writer = pq.ParquetWriter(
                self.partial, schema, compression="zstd", use_dictionary=_DICTIONARY,
                # the ids, digests and texts are near unique: statistics on them only grow the footer
                write_statistics=["max_abs", "max_rel", "max_ulp", "bound"],
            )  # fmt: skip
        return self._writer

    def _flush(self) -> None:
        writer = self._open()
        if self._buffer["id"]:
            table = pa.Table.from_pydict(self._buffer, schema=writer.schema)
            writer.write_table(table, row_group_size=len(table))
        self._buffer = {name: [] for name in self._buffer}

    def close(self, meta: Mapping[str, Any], totals: Mapping[str, Any] | None = None) -> Path:
        """Write the rest, the run's ``meta`` and ``totals`` into the footer, and rename the file into place."""
        try:
            self._flush()
            writer = self._open()
            writer.add_key_value_metadata({META_KEY: json.dumps(dict(meta), allow_nan=False), TOTALS_KEY: json.dumps(dict(totals or {}))})
            writer.close()
            self._closed = True
            with open(self.partial, "rb+") as f:  # on disk before the rename, as jsonio.atomic_write_text
                os.fsync(f.fileno())
            os.replace(self.partial, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop what was written (an interrupted or refused run leaves no results.parquet.partial)."""
        self._closed = True
        if self._writer is not None:
            try:
                self._writer.close()
            except (OSError, pa.ArrowException):  # the partial file is removed anyway
                pass
            self._writer = None
        self.partial.unlink(missing_ok=True)


class ColumnsFile:
    """One results.parquet, its schema checked once: InputError (one line, naming the file) for a file of
    another version, one that is not Parquet or is torn, or one missing a column this version reads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.file = pq.ParquetFile(self.path)
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file") from None
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: not a results.parquet (torn or not Parquet: {str(exc).splitlines()[0]})") from None
        kv = self.file.metadata.metadata or {}
        version = kv.get(VERSION_KEY)
        found = None if version is None else version.decode(errors="replace")
        if found not in _RENAMED:
            shown = "none" if found is None else repr(found)
            raise InputError(f"{self.path}: results columns version {shown}; this bce-harness reads versions {', '.join(_RENAMED)}")
        self.renamed = {new: old for old, new in _RENAMED[found].items()}  # this version's name of a column
        names = self.file.schema_arrow.names
        missing = [f.name for f in SCHEMA if self.renamed.get(f.name, f.name) not in names]
        if missing:
            raise InputError(f"{self.path}: results columns version {found} without column(s) {', '.join(missing)}")
        try:
            self.meta: dict[str, Any] = json.loads(kv[META_KEY])
            self.totals: dict[str, Any] = json.loads(kv.get(TOTALS_KEY, b"{}"))
        except (KeyError, ValueError) as exc:
            raise InputError(f"{self.path}: results columns without a readable run meta ({exc})") from None
        if not isinstance(self.meta, dict):
            raise InputError(f"{self.path}: the run meta is not a JSON object")
        self.meta["source"] = str(self.path)

    @property
    def rows(self) -> int:
        return self.file.metadata.num_rows

    def read(self, columns: Sequence[str]) -> pa.Table:
        """Only ``columns``, every row group."""
        try:
            table = self.file.read(columns=[self.renamed.get(c, c) for c in columns])
            return table.rename_columns(list(columns))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: a torn results.parquet ({str(exc).splitlines()[0]})") from None

    def records(self, ids: pa.Array | None = None) -> Iterator[dict[str, Any]]:
        """Each record as results.json holds it (``record_dict``'s dict); with ``ids``, only those, read from
        the row groups that hold one only."""
        try:
            for g in range(self.file.num_row_groups):
                if ids is not None:
                    found = pc.is_in(self.file.read_row_group(g, columns=["id"]).column("id"), value_set=ids)
                    if not pc.any(found).as_py():
                        continue
                # in batches: a group's detail column decoded whole is tens of megabytes
                for batch in self.file.iter_batches(batch_size=4096, row_groups=[g]):
                    if ids is not None:
                        batch = batch.filter(pc.is_in(batch.column("id"), value_set=ids))
                    for row in batch.to_pylist():
                        for new, old in self.renamed.items():
                            row[new] = row.pop(old)
                        yield record_of(row, self.path)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: a torn results.parquet ({str(exc).splitlines()[0]})") from None

    def results(self) -> dict[str, Any]:
        """The file as load_results gives a results.json: meta, records (every one, in memory) and totals."""
        return {"meta": self.meta, "records": list(self.records()), "totals": self.totals}

    def summaries(self) -> dict[str, Any]:
        """The file as the HTML and JUnit reports read a results.json: meta, totals, and records that are
        their summary fields only (no arrays), read from the file a batch at a time each time they are
        iterated (``SummaryRows``), so compare --out of a million-record run holds one batch."""
        return {"meta": self.meta, "records": SummaryRows(self), "totals": self.totals}


class SummaryRows:
    """A results.parquet's records as summary dicts (``FIELDS``, with the options as ``{"from_logits": ...}``
    and the tags decoded), re-read a batch at a time on every iteration; ``len`` is the file's row count."""

    FIELDS = ("id", "status", "kind", "max_ulp", "max_abs", "compute_dtype", "tags", "from_logits", "message", "note", "divergence")
    BATCH = 8192

    def __init__(self, f: ColumnsFile) -> None:
        self.f = f
        self._tags: dict[str, Any] = {}  # the tags column is dictionary-encoded: a few hundred distinct texts

    def __len__(self) -> int:
        return self.f.rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            for batch in self.f.file.iter_batches(batch_size=self.BATCH, columns=list(self.FIELDS)):
                yield from self._dicts(batch)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.f.path}: a torn results.parquet ({str(exc).splitlines()[0]})") from None

    def _decoded(self, tags: str | None) -> dict[str, Any]:
        """A record's tags from the column's JSON (a copy each time: a reader may change its record)."""
        if not tags:
            return {}
        if tags not in self._tags:
            self._tags[tags] = json.loads(tags)
        return dict(self._tags[tags])

    def _dicts(self, batch: pa.RecordBatch) -> Iterator[dict[str, Any]]:
        """The summary dicts of ``batch``'s rows."""
        # a dictionary column's values converted as plain strings: a tenth of the time of its scalars
        cols = {}
        for name in self.FIELDS:
            column = batch.column(name)
            cols[name] = (column.cast(pa.string()) if pa.types.is_dictionary(column.type) else column).to_pylist()
        tags, logits = cols.pop("tags"), cols.pop("from_logits")
        names = tuple(cols)
        for values, t, fl in zip(zip(*cols.values(), strict=True), tags, logits, strict=True):
            out = {k: v for k, v in zip(names, values, strict=True) if v is not None}
            out["tags"] = self._decoded(t)
            out["options"] = {"from_logits": bool(fl)}
            yield out

    def write_reports(self, results: Mapping[str, Any], html_path: Path, junit_path: Path, *,
                      drift: Drift | None = None) -> tuple[Path, Path]:  # fmt: skip
        """report.html and junit.xml of these records (``results``: ``ColumnsFile.summaries()``), the same files
        as html.write_html and junit.write_junit write iterating them, from one pass over the columns.

        Of a million-record night most records pass, and a pass is a few columns' values: the passes of a
        batch are counted into the page's sections by their keys, and their test cases written in one go,
        columns at a time.  Every other record (a few in a hundred) is a summary dict, as iteration gives it,
        through the same code as the JSON path's."""
        sections = Sections()
        junit = write_junit_chunks(self._junit(results, sections), junit_path)
        return write_html(results, html_path, drift=drift, sections=sections), junit

    def _junit(self, results: Mapping[str, Any], sections: Sections) -> Iterator[str]:
        """junit.xml's text a batch at a time, ``sections`` gathered on the way."""
        suite = totals_suite(results.get("totals") or {})
        if suite is None:  # as junit_chunks counts the records, from the status column alone
            counts = pc.value_counts(self.f.read(["status"]).column("status").cast(pa.string()))
            suite = suite_counts({x["values"]: x["counts"] for x in counts.to_pylist()})
        yield junit_head(results["meta"], *suite)
        try:
            for batch in self.f.file.iter_batches(batch_size=self.BATCH, columns=list(self.FIELDS)):
                yield "".join(self._batch(batch, sections))
        except (pa.ArrowException, OSError) as exc:  # reading the file (writing junit.xml is the caller's)
            raise InputError(f"{self.f.path}: a torn results.parquet ({str(exc).splitlines()[0]})") from None
        yield JUNIT_TAIL

    def _batch(self, batch: pa.RecordBatch, sections: Sections) -> list[str]:
        """The test cases of ``batch``'s records, each line in its row's place, and the batch's records
        added to ``sections``."""
        status, statuses = _codes(batch.column("status"))
        passing = np.array([v == "pass" for v in statuses] + [False])[status] & batch.column("id").is_valid().to_numpy(zero_copy_only=False)
        lines = [""] * len(batch)
        others = np.flatnonzero(~passing)
        if len(others):
            for i, r in zip(others.tolist(), self._dicts(batch.take(pa.array(others))), strict=True):
                sections.add(r)
                lines[i] = junit_case(r)
        rows = np.flatnonzero(passing)
        if not len(rows):
            return lines
        # each row's option family, compute dtype and value regime as an index into the names of each
        tag, tags = _codes(batch.column("tags"))
        decoded = [self._decoded(t) for t in tags] + [{}]
        logits = batch.column("from_logits").fill_null(False).to_numpy(zero_copy_only=False)
        group_names, by_tag = _names([group_of({"tags": t, "options": {"from_logits": fl}}) for fl in (False, True) for t in decoded])
        group = by_tag[tag + len(decoded) * logits][rows]
        regime_names, by_tag = _names([t.get("regime", "?") for t in decoded])
        regime = by_tag[tag][rows]
        dtype, dtypes = _codes(batch.column("compute_dtype"))
        dtype_names, by_code = _names([d or "?" for d in dtypes] + ["?"])
        dtype = by_code[dtype][rows]
        # the summary: passes per option family and compute dtype
        key = group * len(dtype_names) + dtype
        for k, n in zip(*np.unique(key, return_counts=True), strict=True):
            sections.add_passes(group_names[k // len(dtype_names)], dtype_names[k % len(dtype_names)], int(n))
        # the heatmap and the histograms: the passes with a ULP
        has_ulp = batch.column("max_ulp").is_valid().to_numpy(zero_copy_only=False)[rows]
        ulp = batch.column("max_ulp").fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)[rows][has_ulp]
        diff = batch.column("max_abs").fill_null(0.0).to_numpy(zero_copy_only=False)[rows][has_ulp]
        dtype, regime = dtype[has_ulp], regime[has_ulp]
        if len(ulp):
            cell = dtype * len(regime_names) + regime
            # per cell its largest ULP, and of the rows with it the first
            order = np.lexsort((np.arange(len(ulp)), np.invert(ulp), cell))
            for i in order[np.unique(cell[order], return_index=True)[1]].tolist():
                sections.add_worst(dtype_names[dtype[i]], regime_names[regime[i]], int(ulp[i]), float(diff[i]))
            bins = np.searchsorted(np.array(BIN_STARTS, dtype=np.uint64), ulp, side="right") - 1
            per_dtype = np.bincount(dtype * len(BIN_STARTS) + bins, minlength=len(dtype_names) * len(BIN_STARTS))
            for d in np.unique(dtype).tolist():
                sections.add_bins(dtype_names[d], per_dtype[d * len(BIN_STARTS) : (d + 1) * len(BIN_STARTS)].tolist())
        # the passes' test cases
        ids = batch.column("id").take(pa.array(rows)).to_pylist()
        for i, line in zip(rows.tolist(), pass_cases([group_names[g] for g in group.tolist()], ids), strict=True):
            lines[i] = line
        return lines


def _codes(column: pa.Array) -> tuple[np.ndarray, list[Any]]:
    """A column as codes into the list of its distinct values, a null's code one past the last value (a list
    of what each value means, with what a null means appended, is indexed by the codes)."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    values = column.dictionary.to_pylist()
    return column.indices.fill_null(len(values)).to_numpy(zero_copy_only=False).astype(np.int64), values


def _names(values: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """The distinct ``values`` in their first order, and each value's index among them: rows whose codes
    name the same value (a null dtype and an empty one are both "?") count as one key."""
    names: dict[Any, int] = {}
    index = [names.setdefault(v, len(names)) for v in values]
    return list(names), np.array(index, dtype=np.int64)


def record_of(row: Mapping[str, Any], source: str | os.PathLike[str] = "results.parquet") -> dict[str, Any]:
    """The record_dict of one row: a record that did not pass from its ``detail``, a pass from its columns."""
    if row.get("detail") is not None:
        try:
            full = json.loads(row["detail"])
        except ValueError as exc:
            raise InputError(f"{source}: record {row.get('id')!r}: detail is not JSON ({exc})") from None
        if not isinstance(full, dict) or full.get("id") != row.get("id"):
            raise InputError(f"{source}: record {row.get('id')!r}: detail is not that record's JSON object")
        return rename_pred_dtype(full)
    d: dict[str, Any] = {}
    for key in _PASS_KEYS:
        value = row.get(key)
        if key in _JSON_KEYS and value is not None:
            value = json.loads(value)
        elif key in ("max_abs", "max_rel"):
            value = encode_number(value)
        elif key == "preview" and value is not None:
            value = [encode_number(v) for v in value]
        d[key] = value
    if d["options"] is None:
        d["options"] = {}
    if d["tags"] is None:
        d["tags"] = {}
    for key in ("divergence", "note"):
        if row.get(key) is not None:
            d[key] = row[key]
    if row.get("evidence") is not None:
        d["evidence"] = json.loads(row["evidence"])
        d["inferred"] = bool(row.get("inferred"))
    return d


# What compare_results' classification reads of a pair besides the arrays (drift._behaviour, _moved and the
# status rules): where all of these agree, the digests say the outputs are the same values (dtype, shape and
# bytes, -0 as +0 and one NaN), so the pair cannot be a change.  kind and divergence are not read there; they
# are compared anyway, so a pair whose verdict moved in any way is looked at.
_FACTS = ("status", "kind", "digest", "actual_error", "actual_dtype", "divergence")


def _slim(f: ColumnsFile) -> pa.Table:
    """The id, group and facts of every record of ``f``, the categories as plain strings (two files'
    dictionaries differ, and a comparison needs one), and each row's position."""
    table = f.read(["id", "group", *_FACTS])
    columns = {name: table.column(name).cast(pa.string()) for name in table.column_names}
    ids = columns["id"]
    if pc.count_distinct(ids).as_py() != len(ids):
        counts = pc.value_counts(ids)
        twice = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
        raise InputError(f"{f.path}: id {twice!r} appears twice")
    return pa.table({**columns, "_row": pa.array(np.arange(len(table), dtype=np.int64))})


def _differ(x: pa.ChunkedArray, y: pa.ChunkedArray) -> pa.ChunkedArray:
    """Elementwise: ``x`` and ``y`` differ, a null equal only to a null."""
    both_null = pc.and_(pc.is_null(x), pc.is_null(y))
    return pc.and_(pc.fill_null(pc.not_equal(x, y), True), pc.invert(both_null))


# DuckDB's memory for the join (it spills to a temporary folder past it): compare's whole footprint, with
# Python, NumPy and pyarrow loaded, stays under the 1 GB the nightly's compare is held to.
DUCKDB_MEMORY = "384MB"


def _drift_duckdb(base: ColumnsFile, new: ColumnsFile, exact: bool) -> Drift:
    """``compare_columns`` by DuckDB, out of core: the two files joined by id from disk (a hash join that
    spills past ``DUCKDB_MEMORY``), and the pairs whose facts differ streamed back in NEW's order a batch at a
    time, both records of each whole, into the ``Tally``: memory holds one batch and the changes found.

    Two passing records whose only difference is the output's digest are not read (unless ``exact``): a
    pass is a summary, and ``drift._moved_summary`` finds nothing in such a pair without ``exact``."""
    import tempfile

    import duckdb

    tally = Tally(exact)
    with tempfile.TemporaryDirectory(prefix="bce-compare-") as spill:
        con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "threads": 2, "temp_directory": spill})
        try:
            for name, f in (("b", base), ("n", new)):
                # the file by the relation API, not in the SQL text: its path is data, never query text
                con.read_parquet(str(f.path), file_row_number=True).create_view(f"{name}_file")
                con.execute(f'CREATE TEMP VIEW {name} AS SELECT *, "group"::VARCHAR AS _group, file_row_number AS _row FROM {name}_file')
                twice = con.execute(f"SELECT id FROM {name} GROUP BY id HAVING count(*) > 1 LIMIT 1").fetchone()
                if twice is not None:
                    raise InputError(f"{f.path}: id {twice[0]!r} appears twice")
            only_base = tuple(r[0] for r in con.execute("SELECT id FROM b ANTI JOIN n USING (id) ORDER BY _row").fetchall())
            only_new = tuple(r[0] for r in con.execute("SELECT id FROM n ANTI JOIN b USING (id) ORDER BY _row").fetchall())
            groups = con.execute("SELECT n._group, count(*) FROM n JOIN b USING (id) GROUP BY n._group").fetchall()
            tally.groups.update({str(k): int(v) for k, v in groups})
            compared = sum(tally.groups.values())

            def differ(c: str) -> str:
                return f'n."{c}"::VARCHAR IS DISTINCT FROM b."{c}"::VARCHAR'

            others = " OR ".join(differ(c) for c in _FACTS if c != "digest")
            digest = differ("digest") if exact else (
                f"{differ('digest')} AND (n.status::VARCHAR <> 'pass' OR n.actual_shape IS DISTINCT FROM b.actual_shape)"
            )  # fmt: skip
            names = {side: [r[0] for r in con.execute(f"DESCRIBE {side}_file").fetchall() if r[0] != "file_row_number"] for side in ("b", "n")}
            select = ", ".join(f'{side}."{c}" AS "{side}.{c}"' for side in ("b", "n") for c in names[side])
            # unordered, so the join streams (ordering wide rows is what runs out of memory); the changes found,
            # few, are put in NEW's order at the end
            relation = con.sql(
                f"SELECT n._group AS _group, n._row AS _row, {select} FROM n JOIN b USING (id) WHERE {others} OR ({digest})"
            )
            # batches of the result as DuckDB makes them (to_arrow_reader since DuckDB 2, fetch_arrow_reader before)
            batches = getattr(relation, "to_arrow_reader", None) or getattr(relation, "fetch_arrow_reader")  # noqa: B009
            reader = batches(2048)
            lists = (tally.new_div, tally.unexplained, tally.fixed, tally.drifted, tally.behaviour)
            rows: dict[int, int] = {}  # each change (by identity) -> its NEW row, for the order at the end
            for batch in reader:
                for row in batch.to_pylist():
                    sides = []
                    for side, f in (("b", base), ("n", new)):
                        part = {k[2:]: v for k, v in row.items() if k.startswith(side + ".")}
                        for renamed, old in f.renamed.items():
                            part[renamed] = part.pop(old)
                        r = record_of(part, f.path)
                        try:
                            check_record(r, f"record {str(r.get('id'))[:200]!r}")
                        except UsageError as exc:
                            raise InputError(f"{f.path}: {exc}") from None
                        sides.append(r)
                    before = [len(x) for x in lists]
                    tally.pair(sides[1]["id"], row["_group"], sides[0], sides[1])
                    for x, n in zip(lists, before, strict=True):
                        rows.update((id(c), row["_row"]) for c in x[n:])
            for x in lists:
                x.sort(key=lambda c: rows[id(c)])
        except duckdb.Error as exc:
            raise InputError(f"{base.path} or {new.path}: {str(exc).splitlines()[0]}") from None
        finally:
            con.close()
    return tally.drift(base.meta, new.meta, only_base, only_new, compared)


def _pairs_arrow(base: ColumnsFile, new: ColumnsFile) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, int], int, list[tuple[str, str]]]:
    """What pyarrow alone (DuckDB not installed) makes of the two files: the ids only in BASE and only in NEW,
    the common records per group, their count, and the (id, group) of the pairs whose facts differ, in NEW's
    order; the slim columns of both files joined in memory (about 1.4 GB at a million records a side)."""
    b, n = _slim(base), _slim(new)
    in_new, in_base = pc.is_in(b.column("id"), value_set=n.column("id")), pc.is_in(n.column("id"), value_set=b.column("id"))
    only_base = tuple(b.column("id").filter(pc.invert(in_new)).to_pylist())
    only_new = tuple(n.column("id").filter(pc.invert(in_base)).to_pylist())
    joined = n.join(b.drop_columns(["group", "_row"]), keys="id", join_type="inner", right_suffix="_b")
    del b  # the join holds what is needed of BASE
    groups = {item["values"]: item["counts"] for item in pc.value_counts(joined.column("group")).to_pylist()}
    differ = None
    for fact in _FACTS:
        d = _differ(joined.column(fact), joined.column(fact + "_b"))
        differ = d if differ is None else pc.or_(differ, d)
    candidates = joined.filter(differ).select(["id", "group", "_row"]).sort_by("_row")
    compared = len(joined)
    pairs = list(zip(candidates.column("id").to_pylist(), candidates.column("group").to_pylist(), strict=True))
    return only_base, only_new, groups, compared, pairs


def _has_duckdb() -> bool:
    import importlib.util

    return importlib.util.find_spec("duckdb") is not None


def compare_columns(base: ColumnsFile, new: ColumnsFile, *, exact: bool = False, engine: str | None = None) -> Drift:
    """``drift.compare_results`` of two results.parquet, out of core: the slim columns of both joined by id
    (by DuckDB when it is installed, which spills past ``DUCKDB_MEMORY``, else by pyarrow in memory), and
    only the pairs whose facts differ built into records (from ``detail``, or a pass's columns) and
    classified by the same ``Tally``.  The Drift is compare_results' on the same records, its changes in the
    order of NEW's rows; memory holds the slim columns and the differing records, never every record.
    ``engine``: "duckdb" or "arrow" to choose (the tests run both)."""
    check_pair(base.meta, new.meta, exact)
    # DuckDB reads a path as a glob: a path with a glob's characters is joined by pyarrow instead
    plain = not any(ch in str(f.path) for f in (base, new) for ch in "*?[")
    use = engine or ("duckdb" if _has_duckdb() and plain else "arrow")
    if use not in ("duckdb", "arrow"):
        raise UsageError(f"engine={engine!r} is not 'duckdb' or 'arrow'")
    if use == "duckdb":
        return _drift_duckdb(base, new, exact)
    only_base, only_new, groups, compared, pairs = _pairs_arrow(base, new)
    tally = Tally(exact)
    tally.groups.update(groups)
    ids = pa.array([cid for cid, _ in pairs], type=pa.string())
    sides = []
    for f in (base, new):
        records = {}
        for r in f.records(ids):
            try:
                check_record(r, f"record {str(r.get('id'))[:200]!r}")
            except UsageError as exc:
                raise InputError(f"{f.path}: {exc}") from None
            records[r["id"]] = r
        sides.append(records)
    before, after = sides
    for cid, group in pairs:
        tally.pair(cid, group, before[cid], after[cid])
    return tally.drift(base.meta, new.meta, only_base, only_new, compared)
