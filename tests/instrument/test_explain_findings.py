"""``explain --manual`` on the failures a new user met (issue 23) and on functions that misbehave (issue 25): each a
test that was red before.  The functions are small, local, and run in this process unless the test is about the
child process (those use tests/data/misbehaving_manuals.py through the command).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.case import Options
from harness.explain import Settings, build_case, diagnose, reference_steps

REPO = Path(__file__).resolve().parents[2]
BAD = str(REPO / "tests" / "data" / "misbehaving_manuals.py")


def case_of(y_true, y_pred, weight=None, **options):
    return build_case(np.asarray(y_true, float), np.asarray(y_pred, float), options=Options(**options),
                      sample_weight=None if weight is None else np.asarray(weight, float))  # fmt: skip


def _terms(y, p):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def clipped(p, eps=1e-7):
    return np.clip(p.astype(np.float64), eps, 1 - eps)


RANK3 = ([[[1, 0], [0, 1]], [[1, 1], [0, 0]]], [[[0.9, 0.2], [0.3, 0.8]], [[0.6, 0.7], [0.1, 0.4]]])
ROWS = ([[1, 0, 1], [0, 1, 1]], [[0.9, 0.2, 0.6], [0.3, 0.8, 0.4]])
EDGES = ([1, 0, 1, 0, 1, 0], [1.0, 0.0, 0.0, 1.0, 0.7, 0.2])


# -- a result of another shape is a finding, not a crash ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "data", "said"),
    [
        (lambda y_true, y_pred: np.sum(_terms(y_true, clipped(y_pred)), axis=1), ROWS, "returns shape (2,)"),
        (lambda y_true, y_pred: np.sum(_terms(y_true, clipped(y_pred)), axis=(0, 1)), RANK3, "returns shape (2,)"),
    ],
    ids=["per-sample-sums", "rank3-wrong-axes"],
)
def test_another_shape_is_a_finding(fn, data, said):
    d = diagnose(fn, case_of(*data))
    assert d.verdict == "shape" and said in d.message and "reduces to a scalar" in d.message
    assert "shape" in d.distance


# -- inf and NaN distances ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kind"), [(np.inf, "infinite"), (np.nan, "NaN")])
def test_a_non_finite_result_is_not_zero_from_the_reference(value, kind):
    d = diagnose(lambda y_true, y_pred: np.float32(value), case_of(*ROWS))
    assert d.verdict != "agrees" and d.max_ulp is None
    assert d.distance.startswith(kind) and " 0 " not in d.message and "is 0 from" not in d.message


# -- each departure at the step where it starts -----------------------------------------------------------------------


def test_a_broadcast_departs_at_rank_reconciliation():
    def bcast(y_true, y_pred):
        return np.mean(_terms(y_true, clipped(y_pred)))

    d = diagnose(bcast, case_of([1, 0, 1], [[0.9], [0.2], [0.7]]))
    assert d.matches[0].variants[0].id == "shapes-broadcast" and d.matches[0].departs_at == "ranks"


def test_ignored_weights_depart_at_the_weights():
    def ignores(y_true, y_pred, sample_weight):
        return np.mean(_terms(y_true, clipped(y_pred)))

    d = diagnose(ignores, case_of([[1], [0], [1]], [[0.9], [0.2], [0.7]], weight=[2.0, 2.0, 2.0]))
    assert d.matches[0].variants[0].id == "weights-ignored" and d.matches[0].departs_at == "weights"


def keras2(y_true, y_pred):
    p = clipped(y_pred)
    return np.mean(-(y_true * np.log(p + 1e-7) + (1 - y_true) * np.log(1 - p + 1e-7)))


def test_keras2s_formula_departs_at_the_terms_and_is_named():
    d = diagnose(keras2, case_of(*EDGES))
    assert d.matches[0].variants[0].id == "keras2-clip-and-eps" and d.matches[0].departs_at == "terms"
    assert "Keras 2" in d.message and "float64" in d.message  # its clip in float64, a detail


def test_keras2s_formula_is_named_inside_the_bound():
    d = diagnose(keras2, case_of([1, 0, 1, 0], [0.9, 0.2, 0.6, 0.3]))
    assert d.verdict == "agrees" and "keras2-clip-and-eps" in d.message and "Keras 2" in d.message


def test_a_clip_that_float32_cannot_hold_is_explained():
    d = diagnose(lambda y_true, y_pred: np.mean(_terms(y_true, np.clip(y_pred, 1e-15, 1 - 1e-15))), case_of(*EDGES))
    assert d.matches[0].variants[0].id == "no-clip"
    assert "1 - eps is 1.0" in d.message and "float32" in d.message


# -- suspicious signatures ------------------------------------------------------------------------------------------


def test_a_prediction_first_signature_is_warned_about():
    def pred_first(y_pred, y_true):
        return np.mean(_terms(y_true, clipped(y_pred)))

    d = diagnose(pred_first, case_of([1, 0, 1], [0.9, 0.2, 0.7]))
    assert any("(y_pred, y_true)" in w and "other way round, it agrees" in w for w in d.warnings)


def test_a_loop_that_fails_on_float32_gets_the_float64_hint():
    from decimal import Decimal

    def exact(y_true, y_pred):  # Decimal takes Python floats (float64), not NumPy's float32
        return float(sum(-Decimal(t) * Decimal(p).ln() for t, p in zip(y_true, y_pred, strict=True))) / len(y_true)

    d = diagnose(exact, case_of([1, 1], [0.9, 0.5]))
    assert d.verdict == "raised" and any("--pred-dtype float64" in w for w in d.warnings)


# -- the installed Keras's settings -----------------------------------------------------------------------------------


def test_explain_judges_under_the_keras_settings_it_is_given():
    case = case_of([1, 0], [1.0, 0.0])
    step = reference_steps(case, settings=Settings(epsilon=1e-3)).step("inputs")
    assert "epsilon() = 0.001" in step.rule
    clip_at_1e3 = lambda y_true, y_pred: np.mean(_terms(y_true, np.clip(y_pred, np.float32(1e-3), np.float32(1 - 1e-3))))  # noqa: E731
    assert diagnose(clip_at_1e3, case, settings=Settings(epsilon=1e-3)).verdict == "agrees"
    assert diagnose(clip_at_1e3, case).verdict != "agrees"


def test_the_command_reads_keras_json(tmp_path):
    (tmp_path / "keras.json").write_text(json.dumps({"epsilon": 1e-3, "floatx": "float32"}))
    done = _cli(["--y-true", "1,0", "--y-pred", "1,0", "--json"], KERAS_HOME=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["keras_settings"]["epsilon"] == 1e-3


# -- a misbehaving function in its child process (issue 25) ----------------------------------------------------------


def _cli(argv, **env):
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "explain", "--no-tensorflow", *argv], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env}, cwd=REPO, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("hangs", "did not finish within 2 s"),
        ("exits", "SystemExit"),
        ("exits_hard", "exit status 0"),
        ("segfaults", "SIGSEGV"),
        ("floods", "printed 104857700 bytes"),
    ],
)
def test_a_misbehaving_manual_gets_a_verdict_and_a_nonzero_exit(name, said):
    done = _cli(["--y-true", "1,0", "--y-pred", "0.9,0.2", "--manual-timeout", "2", "--manual", f"{BAD}:{name}"])
    assert done.returncode == 1, (done.returncode, done.stderr[-500:])
    assert said in done.stdout and "verdict:" in done.stdout
    assert len(done.stdout) < 20_000


def test_an_error_at_the_manuals_import_is_one_line_exit_2(tmp_path):
    module = tmp_path / "broken.py"
    module.write_text("raise RuntimeError('at import')\n")
    done = _cli(["--y-true", "1,0", "--y-pred", "0.9,0.2", "--manual", f"{module}:f"])
    assert done.returncode == 2 and "RuntimeError: at import" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout
