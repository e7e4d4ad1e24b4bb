"""The lint and type gates can fail: ruff (pyproject.toml's [tool.ruff]) on a planted unused import, mypy
([tool.mypy]) on a planted type error, each in a temporary copy of one module under the project's own
configuration, beside the clean copy that passes.  Skipped, with the reason, where ruff or mypy is not
installed (the [test] extra installs both; .ci/run runs them on the whole tree)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = "harness/jsonio.py"  # imports only the standard library and NumPy: mypy reads it alone, in seconds
CLEAN = ""
UNUSED_IMPORT = "import colorsys  # planted: never used\n"
TYPE_ERROR = '\n\ndef planted() -> int:\n    return "not an int"\n'


def _tool(name: str) -> list[str]:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' installs it)")
    return [sys.executable, "-m", name]


def _copy(tmp_path: Path, planted: str) -> Path:
    """pyproject.toml and the package (for the modules MODULE imports), with ``planted`` in MODULE: after its
    imports (an import) or at its end (code)."""
    tmp_path.mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / MODULE
    source = (ROOT / MODULE).read_text(encoding="utf-8")
    if planted.startswith("import"):
        head, sep, tail = source.partition("from pathlib import Path\n")
        assert sep, f"{MODULE} no longer imports Path: plant the import elsewhere"
        source = head + sep + planted + tail
    else:
        source += planted
    target.write_text(source, encoding="utf-8")
    return target


def _ruff(tmp_path: Path, planted: str) -> subprocess.CompletedProcess[str]:
    _copy(tmp_path, planted)
    cmd = [*_tool("ruff"), "check", "--no-cache", "--output-format", "concise", MODULE]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)


def _mypy(tmp_path: Path, planted: str) -> subprocess.CompletedProcess[str]:
    _copy(tmp_path, planted)
    cmd = [*_tool("mypy"), "--no-incremental", "--cache-dir", str(tmp_path / ".mypy_cache"), MODULE]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_passes_the_clean_module_and_fails_on_a_planted_unused_import(tmp_path: Path) -> None:
    clean = _ruff(tmp_path / "clean", CLEAN)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    planted = _ruff(tmp_path / "planted", UNUSED_IMPORT)
    assert planted.returncode == 1, planted.stdout + planted.stderr
    assert "F401" in planted.stdout and "colorsys" in planted.stdout, planted.stdout


def test_mypy_passes_the_clean_module_and_fails_on_a_planted_type_error(tmp_path: Path) -> None:
    clean = _mypy(tmp_path / "clean", CLEAN)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    planted = _mypy(tmp_path / "planted", TYPE_ERROR)
    assert planted.returncode == 1, planted.stdout + planted.stderr
    assert "[return-value]" in planted.stdout and "jsonio.py" in planted.stdout, planted.stdout
