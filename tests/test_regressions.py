"""Every saved regression case (cases/regressions/*.json, as ``bce-harness fuzz`` writes them) replayed.

A case is saved when the fuzz search found it diverging and no registry entry explained it.  Here it must
agree with the reference, or reproduce a divergence the registry now explains: a saved case that fails
again is a regression, and one found on the installed TensorFlow stays failing until it is fixed or
registered.  With no saved case the parameter list is empty and pytest reports it skipped.
"""

from __future__ import annotations

import pytest

from harness.compare import compare
from harness.profiles import select_profile
from harness.reference import expected
from harness.registry import load_registry
from harness.replay import DEFAULT_REGRESSIONS, case_files, load_case
from harness.repro import snippet
from harness.runner import judged

pytestmark = pytest.mark.tensorflow

FILES = case_files([DEFAULT_REGRESSIONS])
SELECTION = select_profile()
REGISTRY = load_registry().for_tensorflow(SELECTION.tensorflow)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_saved_case_replays(path, tf_target):
    case = load_case(path)
    exp = expected(case, profile=SELECTION.profile)
    out = tf_target.run(case)
    comparison = compare(case, exp, out)
    record = judged(case, comparison, exp, out, REGISTRY, SELECTION.profile)  # run's own rule
    status, note = record.status, record.note
    if status == "xfail":
        pytest.xfail(f"{note}: {comparison.kind}")
    if status != "pass":
        actual = out.error or f"{out.value!r} ({out.dtype})"
        pytest.fail(
            f"{path}: {status} {note}\n{comparison.message}\n\n{snippet(case, exp, actual=actual)}", pytrace=False
        )
