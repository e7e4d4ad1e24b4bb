"""The command line: exit codes, one-line errors, the files a run writes and their schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.report.summary import FORMAT_VERSION

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--max-cases", "0"],
        ["run", "--max-cases", "many"],
        ["run", "--seed", "-3"],
        ["run", "--profile", "keras9"],
        ["run", "--bogus"],
        ["frobnicate"],
        [],
        ["run", "--registry", "/nonexistent/registry.toml"],
        ["run", "--special-cases", "/nonexistent/special.toml"],
        ["run", "--select", "no-such-case/*"],
    ],
    ids=lambda a: "bce-harness " + " ".join(a),
)
def test_bad_input_is_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_bad_registry_file_names_the_file_and_field(tmp_path, capsys):
    bad = tmp_path / "reg.toml"
    bad.write_text('[[divergence]]\nid = "x"\ntitle = "t"\nreason = "r"\nevidence = ["e"]\nkinds = ["nope"]\n[divergence.match]\nshape = "BC"\n')
    assert main(["run", "--registry", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "kinds" in err and len(err.strip().splitlines()) == 1


def test_without_tensorflow_the_cli_says_so_in_one_line(tmp_path):
    # a 'tensorflow' that cannot be imported, ahead of the real one on the path
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named tensorflow (simulated)')\n")
    proc = run_cli("run", "--max-cases", "3", "--out", str(tmp_path / "out"), env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "TensorFlow is not installed" in lines[0] and "bce-harness[tf]" in lines[0]


def test_cases_lists_ids():
    proc = run_cli("cases", "--select", "special/*")
    assert proc.returncode == 0
    assert "special/bce(y=1, p=0, float32) -> -log(eps)" in proc.stdout.splitlines()


@pytest.mark.tensorflow
def test_run_writes_reports_with_the_schema(tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    # one worker: the records and their schema are the same on any number, and each costs a TensorFlow import
    proc = run_cli("run", "--out", str(out), "--select", "special/*", "--workers", "1", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "records:" in proc.stdout and "report:" in proc.stdout
    data = json.loads((out / "results.json").read_text())
    meta = data["meta"]
    assert meta["format_version"] == FORMAT_VERSION
    for key in ("harness_version", "created_utc", "seed", "python", "numpy", "tensorflow", "keras", "platform", "environment"):
        assert meta[key] is not None, key
    assert "TF_ENABLE_ONEDNN_OPTS" in meta["environment"]
    records = data["records"]
    assert len(records) == data["totals"]["total"] > 0
    for r in records:
        for key in ("id", "api", "options", "pred_dtype", "shape", "status", "kind", "max_abs", "max_rel", "max_ulp"):
            assert key in r
        assert set(r["options"]) == {"from_logits", "label_smoothing", "axis", "reduction", "dtype"}
        if r["status"] != "pass":
            for key in ("y_true", "y_pred", "sample_weight", "expected", "actual"):
                assert key in r
    xfails = [r for r in records if r["status"] == "xfail"]
    assert xfails, "the special cases include known divergences"
    # NaN and infinities survive as strings, so the file is strict JSON
    def no_bare_constants(name: str) -> None:
        raise AssertionError(f"results.json holds a bare {name}")

    json.loads((out / "results.json").read_text(), parse_constant=no_bare_constants)
    report = (out / "report.md").read_text()
    assert "## Summary" in report and "## Known divergences" in report and "```python" in report
    repros = list((out / "repro").glob("*.py"))
    assert repros


@pytest.mark.tensorflow
def test_a_written_reproduction_runs_and_reproduces(tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    # a TensorFlow op's divergence, so it reproduces on the Keras 2 and the Keras 3 line alike
    run_cli("run", "--out", str(out), "--select", "special/bce(y=1, x=+inf, logits)*", "--workers", "1", "--no-progress")
    (script,) = (out / "repro").glob("*.py")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the divergence reproduces
    assert "DIVERGES" in proc.stdout
