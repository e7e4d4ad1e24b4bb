"""The nightly workflow runs exactly the commands the README lists for the nightly, and parses.

No YAML library: a tiny reader takes each step's ``run:`` value (one line, or a ``|`` block) in file order,
which is all this check needs; the structure is checked as far as the nightly depends on it (the jobs, the
matrix lines, each job's environment).  Each rule is also shown to fail on a planted difference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
README = ROOT / "README.md"
TOX = ROOT / "tox.ini"
LINES = ["tf215", "tf-legacy-keras", "tf-latest", "tf-nightly"]


def run_commands(text: str) -> list[str]:
    """Every ``run:`` value of a workflow, in order; a block's lines one by one, stripped."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:- )?run: ?(.*)$", lines[i])
        i += 1
        if not m:
            continue
        indent, value = len(m.group(1)), m.group(2).strip()
        if value in ("|", "|-", ">", ">-"):
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                if lines[i].strip():
                    out.append(lines[i].strip())
                i += 1
        else:
            out.append(value)
    return out


def readme_commands(text: str) -> list[str]:
    """The fenced block between the README's nightly-commands markers, line by line."""
    m = re.search(r"<!-- nightly-commands -->\n```\n(.*?)```\n<!-- /nightly-commands -->", text, re.DOTALL)
    assert m, "README: no <!-- nightly-commands --> block"
    return [line.strip() for line in m.group(1).splitlines() if line.strip()]


def structure(text: str) -> dict[str, list[str]]:
    """Job name -> the keys it sets at job level (two-space indented names under ``jobs:``, their keys)."""
    jobs: dict[str, list[str]] = {}
    inside, current = False, None
    for line in text.splitlines():
        if line.startswith("jobs:"):
            inside = True
            continue
        if inside and re.match(r"^  [A-Za-z0-9_-]+:\s*$", line):
            current = line.strip()[:-1]
            jobs[current] = []
        elif inside and current and re.match(r"^    [A-Za-z0-9_-]+:", line):
            jobs[current].append(line.strip().split(":", 1)[0])
    return jobs


def check(workflow: str, readme: str) -> None:
    tabs = [n for n, line in enumerate(workflow.splitlines(), 1) if "\t" in line]
    assert not tabs, f"nightly.yml: a tab on line {tabs[0]} (YAML forbids them)"
    for n, line in enumerate(workflow.splitlines(), 1):  # what YAML refuses in a plain (unquoted) scalar
        m = re.match(r"^\s*(?:- )?run: (.*)$", line)
        if m and m.group(1).strip() not in ("|", "|-", ">", ">-"):
            value = m.group(1)
            assert ": " not in value and " #" not in value and not value.startswith(("*", "&", "!", "{", "[", '"', "'")), (
                f"nightly.yml line {n}: a plain scalar YAML reads otherwise; use a | block"
            )
    jobs = structure(workflow)
    assert list(jobs) == ["shard", "line", "drift", "backtest"], jobs
    assert jobs["line"].count("needs") == 1 and jobs["drift"].count("needs") == 1
    for job in ("shard", "line"):
        assert "strategy" in jobs[job] and "env" in jobs[job], (job, jobs[job])
    assert workflow.count(f"line: [{', '.join(LINES)}]") == 2, "the matrix must hold every TensorFlow line"
    assert run_commands(workflow) == readme_commands(readme), "nightly.yml and README's nightly commands differ"


def test_the_workflow_runs_exactly_the_readmes_nightly_commands() -> None:
    check(WORKFLOW.read_text(encoding="utf-8"), README.read_text(encoding="utf-8"))


def test_the_commands_are_the_nightlys_parts() -> None:
    joined = "\n".join(run_commands(WORKFLOW.read_text(encoding="utf-8")))
    for part in ("run --suite nightly --shard", "--deadline", "fuzz --seed", "merge ", "audit --out", "pytest", "compare "):
        assert part in joined, part
    assert "BCE_HYPOTHESIS_PROFILE: nightly" in WORKFLOW.read_text(encoding="utf-8")
    assert "head -c 1000000" in joined, "the job summary must stay under GitHub's 1 MB limit"


@pytest.mark.parametrize(
    "plant",
    [
        lambda w, r: (w.replace("--deadline 5400", "--deadline 9999"), r),  # a command changed in one file only
        lambda w, r: (w, r.replace("tox exec -e \"$LINE\" -- bce-harness audit", "# gone\nbce-harness audit", 1)),
        lambda w, r: (w.replace("        run: tox exec -e \"$LINE\" -- bce-harness audit", "        run: |\n          true\n          tox exec -e \"$LINE\" -- bce-harness audit"), r),
        lambda w, r: (w.replace("line: [tf215, ", "line: [", 1), r),  # a line dropped from a matrix
        lambda w, r: (w.replace("  drift:", "\tdrift:"), r),
        lambda w, r: (w.replace("        run: |\n          bce-harness compare reports/nightly-tf-latest", "        run: bce-harness compare reports/nightly-tf-latest"), r),
    ],
    ids=["changed", "readme-missing", "extra-in-workflow", "matrix", "tab", "plain-scalar-colon"],
)
def test_a_planted_difference_is_caught(plant) -> None:
    w, r = plant(WORKFLOW.read_text(encoding="utf-8"), README.read_text(encoding="utf-8"))
    with pytest.raises(AssertionError):
        check(w, r)


def tox_passenv(text: str) -> set[str]:
    """The variables tox.ini's [testenv] passes into its environments (``passenv``, one line or a block)."""
    m = re.search(r"^\[testenv\]\n(.*?)(?=^\[)", text, re.DOTALL | re.MULTILINE)
    assert m, "tox.ini: no [testenv] section"
    found = re.search(r"^pass_?env\s*=(.*?)(?=^\S|\Z)", m.group(1), re.DOTALL | re.MULTILINE)
    return set(re.split(r"[\s,]+", found.group(1).strip())) if found else set()


def check_env_reaches_tox(workflow: str, tox: str) -> None:
    """Every BCE_* setting of the workflow's jobs reaches the commands they run through ``tox exec``: tox
    passes the caller's environment only by name, and a setting it drops changes what the job runs without
    a word (the Hypothesis nightly profile was once set in the workflow and never reached pytest)."""
    settings = set(re.findall(r"^\s+(BCE_[A-Z_]+):", workflow, re.MULTILINE))
    assert settings, "nightly.yml sets no BCE_* variable"
    missing = settings - tox_passenv(tox)
    assert not missing, f"tox.ini [testenv] passenv lacks {sorted(missing)}: the nightly sets them, tox drops them"


def test_the_workflows_settings_reach_the_commands_tox_runs() -> None:
    check_env_reaches_tox(WORKFLOW.read_text(encoding="utf-8"), TOX.read_text(encoding="utf-8"))
    with pytest.raises(AssertionError):  # planted: the profile dropped from passenv, as it once was
        check_env_reaches_tox(WORKFLOW.read_text(encoding="utf-8"), TOX.read_text(encoding="utf-8").replace("    BCE_HYPOTHESIS_PROFILE\n", ""))
