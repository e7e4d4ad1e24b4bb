"""Replay the Keras 3 history: run a suite on each Keras release under one TensorFlow, compare each consecutive
pair, and say for every change of ``cases/keras_history.toml`` whether the harness saw it on the right release
and classified it rightly.

Each release is installed beside the others with ``pip install --no-deps --target WORK/keras/<version>
keras==<version>`` (plus dm-tree, which Keras 3.0.x imports as ``tree``), and the suite runs with that folder
first on ``PYTHONPATH`` under this interpreter's TensorFlow: ``python -m harness.cli run --out
WORK/runs/<version>``.  ``--nightly PYTHON`` adds a last step run by another interpreter (a virtual
environment with tf-nightly, which brings keras-nightly).  Steps are compared with ``compare_results``, the
same classification ``bce-harness compare`` prints: regressions, fixes, behaviour changes and drift.

    python benchmarks/backtest.py --work /tmp/backtest --nightly /path/to/nightly-venv/bin/python
    python benchmarks/backtest.py --work /tmp/backtest --keras 3.6.0,3.7.0 --select 'options/*'

A release whose run cannot start (an import error) is a row of its own; a run's own exit code is printed, not
acted on.  The table goes to stdout and, with the per-change verdicts, to WORK/backtest.md and
WORK/backtest.json.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.report.drift import compare_results, load_results  # noqa: E402

# one release per minor line, 3.0 to the last release (the newest patch of each, as pip resolves it)
RELEASES = (
    "3.0.0", "3.0.5", "3.1.1", "3.2.1", "3.3.3", "3.4.1", "3.5.0", "3.6.0", "3.7.0", "3.8.0", "3.9.2",
    "3.10.0", "3.11.3", "3.12.4", "3.13.2", "3.14.1", "3.15.1",
)  # fmt: skip
HISTORY = ROOT / "cases" / "keras_history.toml"
CLASSES = ("regression", "fix", "behaviour", "drift")


def install(version: str, work: Path) -> Path:
    """The folder holding Keras ``version`` (and what it imports that the TensorFlow environment lacks)."""
    target = work / "keras" / version
    if (target / "keras").is_dir():
        return target
    packages = [f"keras=={version}"]
    if Version(version) < Version("3.1"):
        packages.append("dm-tree")  # Keras 3.0.x imports tree (dm-tree); later releases use optree
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *packages],
        check=True,
    )
    return target


def run_suite(label: str, python: str, path: Path | None, work: Path, extra: list[str]) -> dict[str, Any]:
    """One release's run; its folder, exit code, totals and wall time."""
    out = work / "runs" / label
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), str(ROOT)])
    else:
        env["PYTHONPATH"] = str(ROOT)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, "-m", "harness.cli", "run", "--out", str(out), "--force", "--quiet", "--no-progress", *extra],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    row: dict[str, Any] = {"label": label, "out": str(out), "exit": proc.returncode, "seconds": time.perf_counter() - t0}
    if (out / "results.json").is_file():
        data = json.loads((out / "results.json").read_text())
        row["keras"], row["tensorflow"] = data["meta"].get("keras"), data["meta"].get("tensorflow")
        row["totals"] = data.get("totals", {})
    else:
        row["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
    return row


def classify(base: Path, new: Path) -> dict[str, list[tuple[str, str]]]:
    """The step's changes by class: (case id, what moved)."""
    d = compare_results(load_results(base), load_results(new))
    return {
        "regression": [(c.id, c.what) for c in (*d.new_divergences, *d.unexplained)],
        "fix": [(c.id, c.what) for c in d.fixed],
        "behaviour": [(c.id, c.what) for c in d.behaviour],
        "drift": [(c.id, c.what) for c in d.drift],
    }


def verdicts(history: list[dict[str, Any]], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each change of the history: the step it belongs to (the first run release at or after its first
    release), what the harness classified among the cases it names there, and whether that is what the
    change's ``expect`` says; a change with no cases is a hole the table names."""
    out = []
    for change in history:
        first = Version(change["first_release"])
        step = next((s for s in steps if Version(s["new"]) >= first), None)
        globs = change.get("cases", [])
        row = {"id": change["id"], "first_release": change["first_release"], "kind": change["kind"],
               "expect": change.get("expect", "none"), "step": None, "seen": {}, "verdict": ""}  # fmt: skip
        if step is None:
            row["verdict"] = "not replayed (no release at or after it in this backtest)"
        elif Version(step["base"]) >= first:
            row["verdict"] = "not replayed (before the first release of this backtest)"
        elif not globs:
            row["step"] = f"{step['base']} -> {step['new']}"
            row["verdict"] = "no case reaches it: " + change.get("hole", "a hole in the case space")
        elif "changes" not in step:
            row["step"] = f"{step['base']} -> {step['new']}"
            row["verdict"] = "step not compared: " + step.get("error", "a run failed")
        else:
            row["step"] = f"{step['base']} -> {step['new']}"
            seen = {
                cls: sum(1 for cid, _ in step["changes"][cls] if any(fnmatch.fnmatchcase(cid, g) for g in globs))
                for cls in CLASSES
            }
            row["seen"] = {k: v for k, v in seen.items() if v}
            expect = row["expect"]
            if expect == "none":
                ok = not any(seen.values())
                row["verdict"] = "right: no change seen, as expected" if ok else f"WRONG: expected no change, saw {row['seen']}"
            else:
                wrong = {k: v for k, v in seen.items() if v and k != expect and k != "drift"}
                if seen.get(expect) and not wrong:
                    row["verdict"] = f"right: seen as {expect} on this release"
                elif seen.get(expect):
                    row["verdict"] = f"right class, with others too: {row['seen']}"
                else:
                    row["verdict"] = f"WRONG or unseen: expected {expect}, saw {row['seen'] or 'nothing'}"
        out.append(row)
    return out


def render(rows: list[dict[str, Any]], steps: list[dict[str, Any]], changes: list[dict[str, Any]]) -> str:
    lines = ["| release | TensorFlow | exit | pass | fail | xfail | xpass | error | outside | unsupported | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        t = r.get("totals", {})
        if "error" in r:
            lines.append(f"| {r['label']} | - | {r['exit']} | run failed: {r['error']} |||||||| {r['seconds']:.0f} |")
            continue
        cells = " | ".join(str(t.get(k, 0)) for k in ("pass", "fail", "xfail", "xpass", "error", "outside", "unsupported"))
        lines.append(f"| {r.get('keras')} | {r.get('tensorflow')} | {r['exit']} | {cells} | {r['seconds']:.0f} |")
    lines += ["", "| step | regressions | fixes | behaviour changes | drift |", "|---|---|---|---|---|"]
    for s in steps:
        if "changes" not in s:
            lines.append(f"| {s['base']} -> {s['new']} | not compared: {s.get('error')} ||||")
            continue
        lines.append(f"| {s['base']} -> {s['new']} | " + " | ".join(str(len(s["changes"][c])) for c in CLASSES) + " |")
    lines += ["", "| change (cases/keras_history.toml) | first release | kind | step | harness expected | seen | verdict |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in changes:
        seen = ", ".join(f"{k} {v}" for k, v in c["seen"].items()) or "-"
        lines.append(f"| {c['id']} | {c['first_release']} | {c['kind']} | {c['step'] or '-'} | {c['expect']} | {seen} | {c['verdict']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="folder for the installed releases and the runs")
    p.add_argument("--keras", default=",".join(RELEASES), help="comma-separated Keras releases (default: one per minor line)")
    p.add_argument("--nightly", metavar="PYTHON", help="an interpreter whose environment has tf-nightly: a last step")
    p.add_argument("--history", default=str(HISTORY))
    p.add_argument("--select", help="passed to run --select")
    p.add_argument("--reuse", action="store_true", help="keep a release's earlier run in WORK/runs instead of running it again")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    extra = [] if args.select is None else ["--select", args.select]
    history = tomllib.loads(Path(args.history).read_text())["change"]
    rows = []
    plan = [(v, sys.executable) for v in args.keras.split(",") if v] + ([("nightly", args.nightly)] if args.nightly else [])
    for version, python in plan:
        reused = work / "runs" / version / "results.json"
        if args.reuse and reused.is_file():
            data = json.loads(reused.read_text())
            rows.append({"label": version, "out": str(reused.parent), "exit": None, "seconds": 0.0, "totals": data.get("totals", {}),
                         "keras": data["meta"].get("keras"), "tensorflow": data["meta"].get("tensorflow")})  # fmt: skip
        else:
            path = None if version == "nightly" else install(version, work)
            rows.append(run_suite(version, python, path, work, extra))
        r = rows[-1]
        print(f"{version}: exit {r['exit']}, {r.get('totals', r.get('error'))}, {r['seconds']:.0f} s", flush=True)
    steps = []
    for a, b in zip(rows, rows[1:]):
        step: dict[str, Any] = {"base": a.get("keras") or a["label"], "new": b.get("keras") or b["label"]}
        if "error" in a or "error" in b:
            step["error"] = a.get("error") or b.get("error")
        else:
            step["changes"] = classify(Path(a["out"]), Path(b["out"]))
        steps.append(step)
    changes = verdicts(history, steps)
    text = render(rows, steps, changes)
    print(text)
    (work / "backtest.md").write_text(text)
    (work / "backtest.json").write_text(json.dumps({"runs": rows, "steps": steps, "changes": changes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
