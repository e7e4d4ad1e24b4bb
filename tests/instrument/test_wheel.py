"""The package as users get it: a built wheel, installed (not editable) into a fresh virtual environment, runs
the default suite from an empty folder, its data read as package data.

The fresh environment gets no TensorFlow of its own (no download in a test): a ``.pth`` file lets it see this
interpreter's site-packages after its own, so the wheel's ``harness`` is the one imported (checked) and the
installed TensorFlow is the one under test.  The wheel is built without build isolation, from a copy of the
sources, with the setuptools the ``test`` extra installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.version import Version

import harness

# building a wheel and a virtual environment takes minutes: the nightly does it (BCE_HARNESS_HEAVY=1)
pytestmark = pytest.mark.heavy

REPO = Path(__file__).resolve().parents[2]


def _setuptools_builds_wheels() -> bool:
    try:
        return Version(metadata.version("setuptools")) >= Version("70.1")
    except metadata.PackageNotFoundError:
        return False


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, **kwargs)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    if not _setuptools_builds_wheels():
        pytest.skip("setuptools >= 70.1 is needed to build the wheel offline (pip install -e '.[test]' installs it)")
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    shutil.copytree(REPO / "harness", src / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"), str(src)])
    (wheel,) = (root / "dist").glob("bce_harness-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    child_site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (child_site / "_parent_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: the parent's site (linked above, for TensorFlow) may hold bce-harness itself (a tox
    # environment installs it), and pip would then install nothing here and the parent's copy would be tested
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    empty = root / "empty"
    empty.mkdir()
    return venv, env, empty


def test_the_wheel_carries_its_data_and_one_version(wheel_env):
    venv, env, empty = wheel_env
    code = "import harness, harness.packagedata as p; print(harness.__file__); print(p.data_path('known_divergences.toml'))"
    where = _run([str(venv / "bin" / "python"), "-c", code], cwd=empty, env=env)
    module, registry = where.stdout.split()
    assert module.startswith(str(venv)) and registry.startswith(str(venv)), where.stdout
    version = _run([str(venv / "bin" / "bce-harness"), "--version"], cwd=empty, env=env).stdout
    assert version.strip() == f"bce-harness {harness.__version__}"
    assert _run([str(venv / "bin" / "python"), "-c", "from importlib import metadata; print(metadata.version('bce-harness'))"],
                cwd=empty, env=env).stdout.strip() == harness.__version__  # fmt: skip
    code = "from importlib import metadata; print([e.value for e in metadata.entry_points(group='pytest11') if e.name == 'bce_harness'])"
    plugins = _run([str(venv / "bin" / "python"), "-c", code], cwd=empty, env=env).stdout.strip()
    assert plugins == "['harness.pytest_plugin']"


@pytest.mark.tensorflow
def test_the_installed_wheel_runs_the_default_suite_from_an_empty_folder(wheel_env):
    pytest.importorskip("tensorflow")
    venv, env, empty = wheel_env
    done = _run([str(venv / "bin" / "bce-harness"), "run", "--max-cases", "60", "--workers", "0", "--no-progress", "--quiet",
                 "--out", "out"], cwd=empty, env=env)  # fmt: skip
    assert "60 records" in done.stdout
    assert (empty / "out" / "results.json").is_file()
    assert not (empty / "cases").exists()  # nothing written beside the package's data
