"""The differential suite: every case of the default suite against the installed TensorFlow.

A registered known divergence that reproduces is an xfail (with the registry's reason); one that no
longer reproduces fails the test (strict: the registry must stay honest).  A failure prints the
numpy-style mismatch message and a standalone reproduction.
"""

from __future__ import annotations

import pytest

from harness.compare import compare
from harness.generator import default_suite
from harness.reference import expected
from harness.registry import load_registry
from harness.repro import snippet
from harness.runner import verdict

pytestmark = pytest.mark.tensorflow

CASES = default_suite()
REGISTRY = load_registry()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_tensorflow_matches_the_specification(case, tf_target):
    exp = expected(case)
    out = tf_target.run(case)
    comparison = compare(case, exp, out)
    status, note = verdict(comparison, REGISTRY.find(case.facets))
    if status == "xfail":
        pytest.xfail(f"{note}: {comparison.kind}")
    if status != "pass":
        actual = out.error or f"{out.value!r} ({out.dtype})"
        pytest.fail(f"{status}: {note}\n{comparison.message}\n\nReproduction:\n{snippet(case, exp, actual=actual)}", pytrace=False)
