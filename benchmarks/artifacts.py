"""A million-record night's artifacts and compare of two of them: results.parquet against results.json.

``python benchmarks/artifacts.py --source DIR`` takes a real run's folder (its ``records.jsonl``: a default
run, ``bce-harness run --out DIR``, takes half a minute) and builds two runs of ``--records N`` records each by
replicating its records under new ids (``<id>#<copy>``), NEW with a few planted changes (a pass that now
fails: a regression; a known divergence that now holds: a fix; a pass whose value moved by one ULP: drift
under ``--exact``).  Both are written through the real writers of a large run (report/bulk.py and
summary.write_reports: results.json and results.parquet), then ``bce-harness compare BASE NEW --exact`` runs
in a subprocess on the parquet path (both folders hold results.parquet) and on the JSON path (the
results.json files named), timed, with the peak RSS of the compare process (getrusage RUSAGE_CHILDREN of a
small driver process, one per measurement).  The JSON path is measured at ``--json-records`` (a million
records of it need about 8 GB), and the ratios are printed.  Nothing here asserts a time.

records.jsonl is not written here (it is the run's stream, not a report); its size is estimated from the
source run's, per record.  Replicated records compress better than a real night's (each copy repeats the
same arrays), so results.parquet's size is also given per record of the source run written once.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.case import Outcome
from harness.judge.compare import compare
from harness.judge.registry import load_registry
from harness.report.bulk import Bulk
from harness.report.columns import COLUMNS_NAME, ColumnWriter
from harness.report.summary import meta, record_dict, write_reports
from harness.run.runner import Record, RunResult, judged
from harness.run.stream import STREAM_NAME, iter_stream

_DRIVER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "print(json.dumps({'rc': rc, 'seconds': time.perf_counter() - t,"
    " 'peak_rss_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
)


def _renamed(r: Record, new_id: str) -> Record:
    """``r`` under another id, its arrays shared (a copy of the case without re-validating it)."""
    case = copy.copy(r.case)
    object.__setattr__(case, "id", new_id)
    out = copy.copy(r)
    object.__setattr__(out, "case", case)
    return out


def _rejudged(r: Record, value: np.ndarray, registry) -> Record:
    out = Outcome(value=value, dtype=r.outcome.dtype if r.outcome is not None else None)
    return judged(r.case, compare(r.case, r.expected, out), r.expected, out, registry, "keras3")


def plants(records: list[Record], registry) -> dict[str, Record]:
    """The changed records of NEW, by id of the first copy: a regression, a fix and an exact-only drift."""
    passes = [r for r in records if r.status == "pass" and r.outcome is not None and r.outcome.value is not None
              and r.case.tags.get("family") == "values"]  # fmt: skip
    xfails = [r for r in records if r.status == "xfail" and r.expected is not None and r.expected.value is not None]
    regression = _rejudged(passes[0], np.asarray(passes[0].outcome.value) + 0.5, registry)
    drift = _rejudged(passes[1], np.asarray(passes[1].outcome.value) * (1 + 2**-22), registry)
    fix = _rejudged(xfails[0], np.asarray(xfails[0].expected.value, dtype=np.float64), registry)
    assert (regression.status, drift.status) == ("fail", "pass"), (regression.status, drift.status)
    return {r.case.id: r for r in (regression, drift, fix)}


def write_run(records: list[Record], n: int, out: Path, changed: dict[str, Record] | None = None) -> float:
    """``n`` records, ``records`` replicated, written as a large run writes them; the seconds it took."""
    t0 = time.perf_counter()
    bulk = Bulk(out)
    for k in range(n):
        r = records[k % len(records)]
        if k < len(records) and changed and r.case.id in changed:
            r = changed[r.case.id]
        bulk.add(_renamed(r, f"{r.case.id}#{k // len(records)}"))
    run_meta = meta(seed=1, profile="keras3", versions={"tensorflow": "2.x", "keras": "3.x"}, env={}, extra={})
    write_reports(RunResult(tuple(bulk.kept)), run_meta, out, bulk)
    return time.perf_counter() - t0


def measure(argv: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", _DRIVER, *argv], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def compare_argv(base: Path, new: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "compare", str(base), str(new), "--exact"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="a run's folder with records.jsonl (bce-harness run --out DIR)")
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--json-records", type=int, default=100_000, help="the size the JSON path is measured at")
    p.add_argument("--keep", help="write the runs here (default: a temporary folder, removed)")
    args = p.parse_args(argv)
    registry = load_registry()
    _, stream = iter_stream(args.source, registry)
    records = list(stream)
    changed = plants(records, registry)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bce-artifacts-"))
    print(f"source: {len(records)} records of {args.source}; runs in {root}")

    once = root / "once.parquet"
    w = ColumnWriter(once)
    for r in records:
        w.add(r, record_dict(r))
    w.close({"seed": 1})
    per_record = once.stat().st_size / len(records)
    stream_per_record = (Path(args.source) / STREAM_NAME).stat().st_size / len(records)

    rows = []
    for n in sorted({args.json_records, args.records}):
        base, new = root / f"base-{n}", root / f"new-{n}"
        seconds = [write_run(records, n, base), write_run(records, n, new, changed)]
        sizes = {name: (base / name).stat().st_size for name in (COLUMNS_NAME, "results.json")}
        print(f"\n{n:,} records: written in {seconds[0]:.0f} s and {seconds[1]:.0f} s")
        print(f"  results.parquet {sizes[COLUMNS_NAME] / 2**20:,.1f} MiB, results.json {sizes['results.json'] / 2**20:,.1f} MiB "
              f"(x{sizes['results.json'] / sizes[COLUMNS_NAME]:.1f}); records.jsonl about {stream_per_record * n / 2**20:,.0f} MiB "
              f"(the source's {stream_per_record:.0f} bytes a record)")
        print(f"  results.parquet of distinct records (the source written once): {per_record:.0f} bytes a record, "
              f"{per_record * n / 2**20:,.1f} MiB at this size")
        paths = {"parquet": compare_argv(base, new)}
        if n == args.json_records:
            paths["json"] = compare_argv(base / "results.json", new / "results.json")
        for name, cmd in paths.items():
            m = measure(cmd)
            rows.append((n, name, m))
            print(f"  compare --exact, {name} path: exit {m['rc']}, {m['seconds']:.1f} s, peak RSS {m['peak_rss_mib']:,.0f} MiB")
    by = {(n, name): m for n, name, m in rows}
    small = args.json_records
    if (small, "json") in by and (small, "parquet") in by:
        j, q = by[(small, "json")], by[(small, "parquet")]
        print(f"\nat {small:,} records the parquet path takes {j['seconds'] / q['seconds']:.1f}x less time and "
              f"{j['peak_rss_mib'] / q['peak_rss_mib']:.1f}x less memory than the JSON path")
    if not args.keep:
        import shutil

        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
