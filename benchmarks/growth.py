"""The nightly suite's cost against its size, and the workers' scaling: measured curves, not timed tests.

``growth(sizes)`` runs ``bce-harness run --suite nightly --max-cases N`` (N records spread evenly over the
suite: its base and the value sweep in proportion) for each N, as a user runs it, in a subprocess, and
samples the resident memory of that process and all its descendants (the worker processes) every 0.2 s:
records per second and peak memory of the process tree (PSS summed, which is what the machine holds:
summed RSS counts TensorFlow's shared libraries once per worker; both are printed, with the run's own
RSS), then a least-squares line through each (seconds = a + b N, PSS = c + d N), the constants stated,
and a plot.
``scaling(workers)`` runs one workload at ``--workers 1..cores`` and prints each one's speed-up over one
worker and per worker.  Nothing here asserts a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss(pid: int) -> int:
    """Bytes resident in ``pid`` and every descendant (from /proc; 0 where there is none)."""
    return tree_memory(pid)[0]


def tree_memory(pid: int) -> tuple[int, int, int]:
    """(RSS summed, PSS summed, RSS of ``pid`` alone) over ``pid`` and its descendants, in bytes.  RSS counts
    a shared page (TensorFlow's libraries, mapped by every worker) once per process; PSS divides it among
    the processes that share it, so the PSS sum is what the machine holds."""
    tree, rss, pss, own, todo = _children(), 0, 0, 0, [pid]
    while todo:
        p = todo.pop()
        todo += tree.get(p, [])
        try:
            with open(f"/proc/{p}/smaps_rollup", encoding="ascii") as f:
                fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.split()[-1:] == ["kB"]}
        except (OSError, IndexError, ValueError):
            continue
        rss += fields.get("Rss", 0)
        pss += fields.get("Pss", 0)
        if p == pid:
            own = fields.get("Rss", 0)
    return rss, pss, own


def measured_run(argv: Sequence[str]) -> tuple[float, int, int]:
    """(seconds, peak tree RSS in bytes, exit code) of ``bce-harness`` with ``argv``."""
    seconds, (rss, _, _), code = measured_run_detail(argv)
    return seconds, rss, code


def measured_run_detail(argv: Sequence[str]) -> tuple[float, tuple[int, int, int], int]:
    """(seconds, the peaks of tree_memory's three figures, exit code) of ``bce-harness`` with ``argv``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "harness", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = [0, 0, 0]
    while proc.poll() is None:
        peak = [max(a, b) for a, b in zip(peak, tree_memory(proc.pid), strict=True)]
        time.sleep(0.2)
    return time.perf_counter() - start, (peak[0], peak[1], peak[2]), proc.returncode


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares ``y = a + b x``: (a, b)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


STREAM = "records.jsonl"  # the crash-safe stream: --resume and merge read it; the night uploads the rest


def artifact_sizes(out: Path) -> dict[str, int]:
    """Bytes of each file a run wrote in ``out`` (repro/ counted as one), largest first."""
    found: dict[str, int] = {}
    for p in out.iterdir():
        found[p.name] = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def night_bytes(sizes: dict[str, int]) -> int:
    """What a night keeps of a run: every file but the record stream."""
    return sum(v for k, v in sizes.items() if k != STREAM)


def growth(sizes: Sequence[int], workers: int, plot: Path, keep: Path | None = None) -> list[tuple[int, float, int]]:
    """``keep``: the folder the largest size's run writes to, kept (a whole nightly, to compare with another)."""
    print(f"\n== nightly suite growth: --max-cases {', '.join(map(str, sizes))}, workers={workers}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in sizes:
            out = str(keep) if keep is not None and n == max(sizes) else scratch
            seconds, (rss, pss, own), code = measured_run_detail(
                ["run", "--suite", "nightly", "--max-cases", str(n), "--workers", str(workers), "--out", out, "--force", "--no-progress", "--quiet"]
            )
            rows.append((n, seconds, pss))
            print(
                f"{n:>9} records: {seconds:8.1f} s, {n / seconds:7.0f} records/s, peak memory of the run and its workers: "
                f"PSS {pss / 2**20:5.0f} MiB (RSS summed {rss / 2**20:5.0f} MiB), the run's own RSS {own / 2**20:5.0f} MiB (exit {code})"
            )
            sizes_of = artifact_sizes(Path(out))
            print("           files: " + ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sizes_of.items())
                  + f"; the night's artifacts (all but the stream {STREAM}): {night_bytes(sizes_of) / 2**20:.1f} MiB")
    if len(rows) >= 2:
        a, b = fit([r[0] for r in rows], [r[1] for r in rows])
        c, d = fit([r[0] for r in rows], [r[2] for r in rows])
        print(f"time: {a:.1f} s + {b * 1e3:.3f} ms a record  ->  1,000,000 records: {(a + b * 1e6) / 60:.0f} min")
        print(f"PSS:  {c / 2**20:.0f} MiB + {d * 1e6 / 2**20:.0f} MiB a million records  ->  1,000,000 records: {(c + d * 1e6) / 2**30:.2f} GiB")
        print(f"plot: {write_plot(rows, plot)}")
    return rows


def write_plot(rows: Sequence[tuple[int, float, int]], path: Path) -> Path:
    """Seconds and peak PSS against records: a PNG with matplotlib when it is installed, else an SVG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _svg(rows, path.with_suffix(".svg"))
    fig, ax = plt.subplots(figsize=(7, 4))
    ns = [r[0] for r in rows]
    ax.plot(ns, [r[1] for r in rows], "o-", label="seconds")
    ax.set_xlabel("records")
    ax.set_ylabel("seconds")
    ax2 = ax.twinx()
    ax2.plot(ns, [r[2] / 2**20 for r in rows], "s--", color="tab:red", label="peak PSS (MiB)")
    ax2.set_ylabel("peak PSS (MiB)")
    fig.legend(loc="upper left")
    fig.tight_layout()
    path = path.with_suffix(".png")
    fig.savefig(path)
    return path


def _svg(rows: Sequence[tuple[int, float, int]], path: Path) -> Path:
    W, H, L, B = 640, 360, 70, 50  # size, left and bottom margins
    xmax = max(r[0] for r in rows) or 1
    tmax = max(r[1] for r in rows) or 1
    mmax = max(r[2] for r in rows) / 2**20 or 1

    def x(v: float) -> float:
        return L + (W - 2 * L) * v / xmax

    def y(v: float, top: float) -> float:
        return H - B - (H - 2 * B) * v / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<line x1="{L}" y1="{H - B}" x2="{W - L}" y2="{H - B}" stroke="black"/>',
        f'<line x1="{L}" y1="{B}" x2="{L}" y2="{H - B}" stroke="black"/>',
        f'<line x1="{W - L}" y1="{B}" x2="{W - L}" y2="{H - B}" stroke="black"/>',
        f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">records (nightly suite, --max-cases)</text>',
        f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle" fill="#1f77b4">seconds</text>',
        f'<text x="{W - 14}" y="{H / 2}" transform="rotate(90 {W - 14} {H / 2})" text-anchor="middle" fill="#d62728">peak PSS (MiB)</text>',
    ]
    for k in range(5):
        f = k / 4
        parts.append(f'<text x="{x(f * xmax)}" y="{H - B + 16}" text-anchor="middle">{f * xmax:,.0f}</text>')
        parts.append(f'<text x="{L - 6}" y="{y(f * tmax, tmax) + 4}" text-anchor="end" fill="#1f77b4">{f * tmax:.0f}</text>')
        parts.append(f'<text x="{W - L + 6}" y="{y(f * mmax, mmax) + 4}" fill="#d62728">{f * mmax:.0f}</text>')
    t_pts = " ".join(f"{x(n):.1f},{y(s, tmax):.1f}" for n, s, _ in rows)
    m_pts = " ".join(f"{x(n):.1f},{y(m / 2**20, mmax):.1f}" for n, _, m in rows)
    parts.append(f'<polyline points="{t_pts}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    parts.append(f'<polyline points="{m_pts}" fill="none" stroke="#d62728" stroke-width="2" stroke-dasharray="6 3"/>')
    for n, s, m in rows:
        parts.append(f'<circle cx="{x(n):.1f}" cy="{y(s, tmax):.1f}" r="3" fill="#1f77b4"/>')
        parts.append(f'<rect x="{x(n) - 3:.1f}" y="{y(m / 2**20, mmax) - 3:.1f}" width="6" height="6" fill="#d62728"/>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def scaling(workers: Sequence[int], argv: Sequence[str]) -> list[tuple[int, float]]:
    print(f"\n== --workers scaling: bce-harness {' '.join(argv)}")
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for w in workers:
            seconds, _, code = measured_run([*argv, "--workers", str(w), "--out", out, "--force", "--no-progress", "--quiet"])
            rows.append((w, seconds))
            base = rows[0][1]
            print(f"workers {w}: {seconds:7.1f} s, speed-up {base / seconds:4.2f}x over {rows[0][0]}, "
                  f"{base / seconds / w * rows[0][0]:4.2f} per worker (exit {code})")  # fmt: skip
    return rows


def costs(sample: int = 200) -> dict[str, float]:
    """Per-record costs by kind (harness/run/estimate.py), measured in this process with TensorFlow warm:
    for each kind a sample of up to ``sample`` records of the default suite and a two-seed sweep, run as a
    worker runs them (reference, call, comparison: the worker's cost), and the run's own per-record work
    (generation, verdict, a stream line: MAIN_COST).  Prints the figures to paste into estimate.py."""
    from harness.frameworks import TFTarget
    from harness.generate.grid import Suite, sweep_family
    from harness.judge.registry import load_registry
    from harness.run.estimate import kind_of
    from harness.run.runner import run_cases
    from harness.run.stream import RecordStream

    by: dict[str, list] = {}
    for c in Suite("default", seeds=(1, 2)):
        by.setdefault(kind_of(c), []).append(c)
    target, registry = TFTarget(), load_registry()
    run_cases(by["eager"][:3], target, registry)  # TensorFlow's first call is not a record's cost
    found: dict[str, float] = {}
    main = []
    with tempfile.TemporaryDirectory() as out, RecordStream(out, {"benchmark": True}) as stream:
        for kind, cases in sorted(by.items()):
            pick = cases[:: max(1, len(cases) // sample)][:sample]
            result = run_cases(pick, target, registry, on_record=stream.append)
            sec = result.seconds
            found[kind] = (sec["reference"] + sec["target"] + sec["compare"]) / len(pick)
            main.append((sec["verdict"] + sec["on_record"]) / len(pick))
    start = time.perf_counter()
    generated = sum(1 for s in range(3, 6) for _ in sweep_family(s))
    generation = (time.perf_counter() - start) / generated
    found["main"] = max(main) + generation
    print("\n== per-record costs by kind (seconds; paste into harness/run/estimate.py)")
    print("COSTS = {" + ", ".join(f'"{k}": {v:.4f}' for k, v in found.items() if k != "main") + "}")
    print(f"MAIN_COST = {found['main']:.4f}  # verdict and stream {max(main):.4f} + generation {generation:.4f}")
    return found
