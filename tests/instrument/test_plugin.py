"""The pytest plugin as a project would use it: examples/test_custom_loss.py passes, and fails with a planted
wrong loss, its message numpy.testing's with ULPs and the catalogued cause.

Each run is a fresh pytest in a subprocess with plugin autoloading off and ``-p harness.pytest_plugin`` (and
Hypothesis's plugin, for a fixed seed: the gate repeats), so the
plugin under test is this checkout's, whichever bce-harness the environment has installed; the entry point
that loads it by itself is checked in pyproject.toml here and in the built wheel's metadata
(tests/instrument/test_wheel.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.pytest_plugin import assert_bce_matches

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def run_example(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(folder)])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.pytest_plugin", "-p", "_hypothesis_pytestplugin", "--hypothesis-seed=0",
         "-q", "-p", "no:cacheprovider", "test_custom_loss.py"],
        capture_output=True, text=True, cwd=folder, env=env, timeout=600, check=False,
    )  # fmt: skip


@pytest.fixture
def example(tmp_path: Path) -> Path:
    for name in ("test_custom_loss.py", "custom_loss.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path


def test_the_example_passes(example):
    done = run_example(example)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "4 passed" in done.stdout


@pytest.mark.parametrize(
    ("old", "new", "cause"),
    [
        ("0.5 * label_smoothing", "label_smoothing * (1 - y)", "smoothing-flip"),
        ("np.float32(EPSILON), np.float32(1 - EPSILON)", "1e-15, 1 - 1e-15", "clip-other-epsilon(1e-15)"),
    ],
    ids=["smoothing-flip", "clip-1e-15"],
)
def test_a_planted_wrong_loss_fails(example, old, new, cause):
    loss = example / "custom_loss.py"
    text = loss.read_text()
    assert old in text
    loss.write_text(text.replace(old, new))
    done = run_example(example)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "Mismatched elements" in done.stdout and "ULP" in done.stdout
    assert cause in done.stdout


def test_assert_bce_matches_message_names_ulps_and_cause():
    def eps_inside(y_true, y_pred):
        import numpy as np

        return np.mean(-(y_true * np.log(y_pred + 1e-7) + (1 - y_true) * np.log(1 - y_pred + 1e-7)))

    with pytest.raises(AssertionError) as info:
        assert_bce_matches(eps_inside, [1, 0, 1], [0.0, 1.0, 0.5])
    text = str(info.value)
    assert "Not equal to tolerance" in text and "ULP" in text and "eps-inside-log" in text
    # the loss under test is the user's, not TensorFlow's
    assert "actual (your loss)" in text and "(TF)" not in text and "TensorFlow" not in text


def test_assert_bce_matches_refuses_an_unknown_option():
    with pytest.raises(TypeError, match="colour"):
        assert_bce_matches(lambda y, p: 0.0, [1], [0.5], colour="red")


def test_the_entry_point_names_the_plugin():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"bce_harness": "harness.pytest_plugin"}
