"""A large run's records as the reports need them, in bounded memory.

A run of a million records cannot hold a million ``Record`` objects (each with its case's arrays, the
expected and the actual values): ``Bulk`` keeps in memory every unexpected record (fail, xpass, error) and
the records ``keep`` names (the base suite's, so the summary table, cross-mode and HTML sections see the
same records as a default run), and writes every other record's results.json entry (``summary.record_dict``:
a pass as its summary, format 6; a known divergence, xfail, with its arrays) as one JSON line to
``DIR/passes.partial.jsonl`` (harness/jsonl.py, the one appender), counting it into the totals, the
summary table's rows, the known divergences' counts and a top-N of the worst ULP differences among the
passes.  ``summary.write_reports(..., bulk=...)`` then streams that file into ``results.json`` and removes
it.  The same records go, as they arrive, into ``results.parquet`` (report/columns.py: one row group at a
time in memory), which ``write_reports`` completes with the kept ones.  Every record, in full, is in
``records.jsonl``.

A run of more than ``RESULTS_JSON_MAX`` records (the whole nightly suite) writes no results.json: its gigabyte
of JSON is what results.parquet replaces (compare, pandas, DuckDB read that), so its bulk (``json=False``)
writes no passes' file either.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.jsonl import JsonlAppender, read_jsonl
from harness.report.columns import COLUMNS_NAME, ColumnWriter
from harness.run.runner import NO_VERDICT, Record

__all__ = ["PASSES_NAME", "PASSES_VERSION", "RESULTS_JSON_MAX", "TOP_N", "Bulk"]

PASSES_NAME = "passes.partial.jsonl"
PASSES_VERSION = 1  # its header line, {"passes": 1}: the file lives only while a run writes its reports
TOP_N = 20
# The most records a run writes results.json for (an export for small runs: the default suite, a few seeds of
# the sweep); past it results.parquet alone holds the records.  A million records are a gigabyte of JSON.
RESULTS_JSON_MAX = 100_000


class Bulk:
    """Records kept (did not pass, or ``keep``) and passing summaries spilled to disk, with their counts."""

    def __init__(self, out_dir: str | Path, keep: Callable[[Record], bool] = lambda r: False, *, json: bool = True) -> None:
        from harness.report.summary import record_dict, summary_rows

        self._record_dict, self._rows_of = record_dict, summary_rows
        self.path = Path(out_dir) / PASSES_NAME
        self.json = json  # whether write_reports writes results.json (False past RESULTS_JSON_MAX records)
        self._file: JsonlAppender | None = JsonlAppender(self.path, {"passes": PASSES_VERSION}) if json else None
        self.columns = ColumnWriter(Path(out_dir) / COLUMNS_NAME)
        self.keep = keep
        self.kept: list[Record] = []
        self.summarised = 0
        self.statuses: dict[str, int] = dict.fromkeys(("pass", "xfail", *NO_VERDICT), 0)
        self.divergences: dict[str, int] = {}
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.worst: list[tuple[int, str, str]] = []  # a min-heap of (max ULP, id, line) of the summarised passes

    def add(self, record: Record) -> None:
        if record.status not in self.statuses or self.keep(record):
            self.kept.append(record)
            return
        d = self._record_dict(record)
        if self.json:
            assert self._file is not None, "Bulk.add after close"
            self._file.write(d)
        self.columns.add(record, d)
        self.summarised += 1
        self.statuses[record.status] += 1
        (row,) = self._rows_of([record])
        g = self.rows.setdefault((row["family"], row["dtype"]), {**dict.fromkeys(("pass", "xfail", *NO_VERDICT), 0), "worst_ulp": 0})
        g[record.status] += 1
        g["worst_ulp"] = max(g["worst_ulp"], row["worst_ulp"])
        if record.status in NO_VERDICT:
            return
        if record.status == "xfail":
            key = record.divergence.id if record.divergence is not None else "?"
            self.divergences[key] = self.divergences.get(key, 0) + 1
            return
        ulp = record.comparison.max_ulp or 0
        item = (ulp, record.case.id, f"max ULP {ulp}, max abs {d['max_abs']}, max rel {d['max_rel']}")
        if len(self.worst) < TOP_N:
            heapq.heappush(self.worst, item)
        elif item > self.worst[0]:
            heapq.heapreplace(self.worst, item)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def lines(self) -> Iterator[str]:
        """The summarised passes' JSON lines, in the order they completed (none when ``json`` is False)."""
        self.close()
        if not self.json:
            return
        # each line as written (results.json takes it as it is): the header is checked, the lines not parsed again
        _, lines = read_jsonl(self.path, "passes", (PASSES_VERSION,), "passes file", raw=True)
        for _, line in lines:
            yield line

    def worst_first(self) -> list[tuple[int, str, str]]:
        return sorted(self.worst, reverse=True)

    def discard(self) -> None:
        """Remove the passes' file, and results.parquet.partial unless write_reports completed it."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.columns.abort()
