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


_KEPT = ("status", "kind", "divergence", "api", "options", "pred_dtype", "true_dtype", "actual_error")


def classify(base: Path, new: Path) -> dict[str, list[dict[str, Any]]]:
    """The step's changes by class, each as its case id, what moved and NEW's record (for ``where``)."""
    d = compare_results(load_results(base), load_results(new))
    return {
        cls: [{"id": c.id, "what": c.what, "record": {k: c.after.get(k) for k in _KEPT}} for c in changes]
        for cls, changes in (
            ("regression", (*d.new_divergences, *d.unexplained)), ("fix", d.fixed), ("behaviour", d.behaviour), ("drift", d.drift),
        )
    }  # fmt: skip


def _field(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _selected(change: dict[str, Any], check: dict[str, Any]) -> bool:
    if not any(fnmatch.fnmatchcase(change["id"], g) for g in check["cases"]):
        return False
    return all(_field(change["record"], k) in (v if isinstance(v, list) else [v]) for k, v in check.get("where", {}).items())


def _judge(check: dict[str, Any], seen: dict[str, int]) -> str:
    expect = check["expect"]
    found = {k: v for k, v in seen.items() if v}
    if expect == "none":
        return "right: no change, as expected" if not found else f"WRONG: expected no change, saw {found}"
    if found.get(expect) and not any(k not in (expect, "drift") for k in found):
        return f"right: {expect}"
    if found.get(expect):
        return f"right class, with others: {found}"
    return f"WRONG or unseen: expected {expect}, saw {found or 'nothing'}"


def verdicts(history: list[dict[str, Any]], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each change of the history: the step it belongs to (into the first replayed release at or after its
    first release) and, per check, what the harness classified among the cases the check selects and whether
    that is what the check expects; a change without checks names its hole in the case space."""
    out = []
    for change in history:
        first = Version(change["first_release"])
        step = next((s for s in steps if Version(s["new"]) >= first), None)
        row = {"id": change["id"], "first_release": change["first_release"], "kind": change["kind"], "step": None, "checks": []}
        if step is None or Version(step["base"]) >= first:
            row["verdict"] = "not replayed (outside the releases of this backtest)"
            out.append(row)
            continue
        row["step"] = f"{step['base']} -> {step['new']}"
        if not change.get("checks"):
            row["verdict"] = "no case reaches it: " + change.get("hole", "a hole in the case space")
        elif "changes" not in step:
            row["verdict"] = "step not compared: " + str(step.get("error"))
        else:
            for check in change["checks"]:
                seen = {cls: sum(1 for c in step["changes"][cls] if _selected(c, check)) for cls in CLASSES}
                row["checks"].append({"expect": check["expect"], "seen": {k: v for k, v in seen.items() if v}, "verdict": _judge(check, seen)})
            row["verdict"] = "; ".join(c["verdict"] for c in row["checks"])
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
    lines += ["", "| change (cases/keras_history.toml) | first release | kind | step | expected | seen | verdict |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in changes:
        expected = "; ".join(k["expect"] for k in c["checks"]) or "-"
        seen = "; ".join(", ".join(f"{k} {v}" for k, v in k["seen"].items()) or "nothing" for k in c["checks"]) or "-"
        lines.append(f"| {c['id']} | {c['first_release']} | {c['kind']} | {c['step'] or '-'} | {expected} | {seen} | {c['verdict']} |")
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
    for a, b in zip(rows, rows[1:], strict=False):
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
