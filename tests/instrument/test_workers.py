"""Survival: crashes and hangs in TensorFlow cost one record; runs stream, resume, shard and merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.tensorflow

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parents[1]

SPECIAL = """
[[case]]
id = "ordinary one"
y_true = [[1.0], [0.0]]
y_pred = [[0.75], [0.25]]
expect = [0.2876820724517809, 0.2876820724517809]

[[case]]
id = "aborts"
y_true = [[1.0]]
y_pred = [[0.5]]
label_smoothing = 0.375

[[case]]
id = "ordinary two"
y_true = [[0.0, 1.0]]
y_pred = [[0.5, 0.5]]
reduction = "sum"

[[case]]
id = "hangs"
y_true = [[1.0]]
y_pred = [[0.5]]
label_smoothing = 0.625

[[case]]
id = "ordinary three"
y_true = [[1.0]]
y_pred = [[0.125]]
"""


def bce_harness(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout
    )


@pytest.fixture(scope="module")
def special(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("special") / "special.toml"
    path.write_text(SPECIAL)
    return path


def test_crash_and_hang_become_records_and_the_rest_is_kept(special, tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    proc = bce_harness(
        "run", "--special-cases", str(special), "--select", "special/*", "--loss-factory", "planted:make",
        "--workers", "2", "--timeout", "4", "--out", str(out), "--no-progress", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    records = {r["id"]: r for r in json.loads((out / "results.json").read_text())["records"]}
    assert records["special/aborts"]["status"] == "fail" and records["special/aborts"]["kind"] == "crash"
    assert records["special/hangs"]["status"] == "fail" and records["special/hangs"]["kind"] == "timeout"
    for name in ("ordinary one", "ordinary two", "ordinary three"):
        assert records[f"special/{name}"]["status"] == "pass"
    assert "SIGABRT" in records["special/aborts"]["message"]
    # each record carries the worker's last output: the Python stack faulthandler wrote at the abort, and at
    # the hang (asked for before the kill) with what the loss printed; none of it is in the run's own output
    assert "Fatal Python error: Aborted" in records["special/aborts"]["message"]
    assert 'planted.py", line' in records["special/aborts"]["message"]
    hang = records["special/hangs"]["message"]
    assert "planted hang: sleeping for an hour" in hang and "in hang" in hang
    assert "planted hang" not in proc.stdout + proc.stderr and "Fatal Python error" not in proc.stdout + proc.stderr
    # crashes and hangs are listed first, each with its reproduction
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL")]
    assert lines[:2] == ["FAIL [crash] special/aborts", "FAIL [timeout] special/hangs"] or lines[:2] == [
        "FAIL [timeout] special/hangs",
        "FAIL [crash] special/aborts",
    ]
    report = (out / "report.md").read_text()
    unexpected = report.split("## Unexpected results")[1]
    assert unexpected.index("special/aborts") < unexpected.index("```python")
    assert {p.name for p in (out / "repro").glob("*.py")} >= {"special_aborts.py", "special_hangs.py"}


@pytest.mark.heavy  # the default run resumes a run cut by its deadline (test_survival.py)
def test_resume_continues_an_interrupted_stream(special, tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    args = ("run", "--select", "special/*", "--workers", "0", "--out", str(out), "--no-progress", "--quiet")
    assert bce_harness(*args).returncode == 0
    full = json.loads((out / "results.json").read_text())
    stream = out / "records.jsonl"
    lines = stream.read_text().splitlines()
    # keep the header and five records, then a torn sixth line, as a killed run would leave it
    stream.write_text("\n".join(lines[:6]) + "\n" + lines[6][:40])
    proc = bce_harness(*args, "--resume")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["meta"]["resumed_records"] == 5
    assert [r["id"] for r in resumed["records"]] == [r["id"] for r in full["records"]]
    assert resumed["totals"] == full["totals"]


def test_resume_refuses_another_suite(tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    assert bce_harness("run", "--select", "special/*", "--workers", "0", "--out", str(out), "--quiet").returncode == 0
    proc = bce_harness("run", "--select", "errors/*", "--workers", "0", "--out", str(out), "--resume")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.heavy  # merge's refusals run always (test_battery.py, test_files_from_elsewhere.py)
def test_shards_merge_into_the_whole(tmp_path):
    pytest.importorskip("tensorflow")
    base = ("run", "--select", "special/*", "--workers", "0", "--no-progress", "--quiet")
    assert bce_harness(*base, "--out", str(tmp_path / "whole")).returncode == 0
    for k in (1, 2):
        assert bce_harness(*base, "--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}")).returncode == 0
    proc = bce_harness("merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "merged"), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert merged["totals"] == whole["totals"]
    assert sorted(r["id"] for r in merged["records"]) == sorted(r["id"] for r in whole["records"])


def _sigint_as_at_a_terminal() -> None:
    # A background job of a non-interactive shell (how a CI runner may start the tests) inherits SIGINT
    # ignored, and so would the run; a Ctrl-C at a terminal reaches a process that has it at its default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_cleanly_with_a_partial_report(special, tmp_path, sig):
    pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--special-cases", str(special), "--select", "special/*",
         "--loss-factory", "planted:make", "--workers", "1", "--timeout", "600", "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
        preexec_fn=_sigint_as_at_a_terminal,
    )  # fmt: skip
    stream = out / "records.jsonl"
    deadline = time.monotonic() + 120
    # the stream's first line is its header, written as the run starts; a few seconds later the one worker
    # is importing TensorFlow or stuck on the hanging case (its job holds every case, so none is done yet)
    while time.monotonic() < deadline and not (stream.exists() and stream.read_text().count("\n") >= 1):
        time.sleep(0.2)
    time.sleep(3)
    proc.send_signal(sig)
    try:
        # EOF on the pipes needs every holder gone: a worker that outlived the run would hold them too
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        alive = proc.poll() is None
        proc.kill()
        pytest.fail(
            f"the run did not stop within 120 s of {sig.name}" if alive else "a worker outlived the run (its stdout is open)"
        )
    assert proc.returncode == 2, stdout + stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr and "--resume" in stderr
    meta = json.loads((out / "results.json").read_text())["meta"]
    assert meta["interrupted"] is True


def test_a_worker_gets_its_next_job_before_its_results_are_taken_in():
    """The caller's work on a job's results (verdicts, the stream) must not leave the worker idle: when the
    first result of a job reaches the caller, the worker is already at the next one."""
    pytest.importorskip("tensorflow")
    from harness.generate.grid import default_suite
    from harness.run.workers import WorkerPool

    cases = default_suite(special_cases=None)[:4]
    jobs = [[(0, cases[0]), (1, cases[1])], [(2, cases[2]), (3, cases[3])]]
    with WorkerPool(1) as pool:
        results = pool.run(jobs)
        first = next(results)
        assert first.index == 0
        assert pool._slots[0].job is not None and [i for i, _ in pool._slots[0].job.pairs] == [2, 3]
        assert sorted(r.index for r in [first, *results]) == [0, 1, 2, 3]


def test_a_job_is_reported_in_chunks_each_stacked_group_or_a_few_unstacked_cases(default_cases):
    from harness.run.runner import plan_jobs
    from harness.run.workers import CHUNK, chunks
    from harness.stacking import batch_key

    for job in plan_jobs(default_cases):
        parts = chunks(job)
        assert [p for part in parts for p in part] == job  # every case once, in order
        for part in parts:
            keys = {batch_key(c) for _, c in part}
            assert len(keys) == 1 and (None not in keys or len(part) <= CHUNK)


def test_findings_log_keeps_whole_lines_and_appends_on_resume(tmp_path):
    from harness.errors import InputError
    from harness.run.findings import FINDINGS_NAME, FindingsLog, load_findings

    assert load_findings(tmp_path) == []
    with FindingsLog(tmp_path) as log:
        log({"finding": "a", "message": "one"})
    with FindingsLog(tmp_path, append=True) as log:
        log({"finding": "b", "message": "two"})
    with (tmp_path / FINDINGS_NAME).open("a") as f:
        f.write('{"finding": "torn", "mess')  # a run killed in the middle of a line
    assert [f["message"] for f in load_findings(tmp_path)] == ["one", "two"]
    with FindingsLog(tmp_path) as log:  # a new run starts the file again
        pass
    assert load_findings(tmp_path) == []
    (tmp_path / FINDINGS_NAME).write_text("[1]\n")
    with pytest.raises(InputError, match="line 1 is not a finding"):
        load_findings(tmp_path)
