"""The differential suite: every case of the default suite against the installed TensorFlow.

Each case is judged against the profile of the installed line (profiles.select_profile: Keras 2 on
TensorFlow <= 2.15 or with TF_USE_LEGACY_KERAS=1, Keras 3 otherwise), with the registry entries whose
version range holds for the installed TensorFlow.  A registered known divergence that reproduces is an xfail (with the registry's reason); one that no
longer reproduces fails the test (strict: the registry must stay honest).  A failure prints the
numpy-style mismatch message and a standalone reproduction.
"""

from __future__ import annotations

import pytest

from harness.generate.grid import default_suite
from harness.judge.compare import compare
from harness.judge.registry import load_registry
from harness.oracle import expected
from harness.oracle.profiles import select_profile
from harness.report.repro import snippet
from harness.run.runner import NO_VERDICT, judged

pytestmark = pytest.mark.tensorflow

SELECTION = select_profile()
CASES = default_suite(profile=SELECTION.profile)
REGISTRY = load_registry().for_versions(SELECTION.tensorflow, SELECTION.keras)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_tensorflow_matches_the_specification(case, tf_target):
    check(case, tf_target)


def check(case, tf_target, *, source: str = "") -> None:
    """Run ``case`` against the reference and judge it with run's own rule: pass, xfail with the registry's
    reason, or fail with the mismatch and a reproduction (``source``: where the case came from)."""
    if case.training is not None and case.training.strategy is not None and not tf_target.replica_devices:
        pytest.skip("TensorFlow initialised its devices before the target could make two logical CPUs")
    exp = expected(case, profile=SELECTION.profile, **tf_target.keras_settings())
    out = tf_target.run(case)
    comparison = compare(case, exp, out)
    record = judged(case, comparison, exp, out, REGISTRY, SELECTION.profile)
    if record.status == "xfail":
        pytest.xfail(f"{record.note}: {comparison.kind}")
    if record.status in NO_VERDICT:  # no verdict: what happened is recorded, not judged
        pytest.skip(f"{record.status}: {record.note}")
    if record.status != "pass":
        actual = out.error or f"{out.value!r} ({out.dtype})"
        where = f"{source}: " if source else ""
        pytest.fail(
            f"{where}{record.status}: {record.note}\n{comparison.message}\n\nReproduction:\n"
            f"{snippet(case, exp, actual=actual)}",
            pytrace=False,
        )
