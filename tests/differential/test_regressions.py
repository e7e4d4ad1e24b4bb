"""Every saved regression case (cases/regressions/*.json, as ``bce-harness fuzz`` writes them) replayed.

A case is saved when the fuzz search found it diverging and no registry entry explained it.  Here it must
agree with the reference, or reproduce a divergence the registry now explains: a saved case that fails
again is a regression, and one found on the installed TensorFlow stays failing until it is fixed or
registered.  With no saved case the parameter list is empty and pytest reports it skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_differential import check  # the differential suite's judgement: run's own rule

from harness.generate.saved import DEFAULT_REGRESSIONS, case_files, load_case

pytestmark = pytest.mark.tensorflow

FILES = case_files([Path(__file__).resolve().parents[2] / DEFAULT_REGRESSIONS])  # the clone's, wherever pytest runs


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_saved_case_replays(path, tf_target):
    check(load_case(path), tf_target, source=str(path))
