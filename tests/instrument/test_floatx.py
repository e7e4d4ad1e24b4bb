"""A Keras whose floatx is float64 (keras.json under KERAS_HOME, or set_floatx before the run): the reference
judges each path in the dtypes that floatx gives it, so the default suite's classes that follow floatx give
no false failure, and a loss that narrows its arithmetic to float32 is still caught (issue 21)."""

from __future__ import annotations

import fnmatch
import functools
import sys
from pathlib import Path

import pytest

from harness.case import Case
from harness.generate.grid import default_suite
from harness.oracle.profiles import select_profile

REPO = Path(__file__).resolve().parents[2]
KERAS3 = select_profile().profile == "keras3"

# one or more records of each class that failed, or passed a registered divergence, under floatx float64
CLASSES = {
    "gradient of a float32 variable": ["paths/BinaryCrossentropy/eager/grad=y_pred/probs/typical/sum",
                                       "paths/BinaryCrossentropy/eager/grad=y_pred/logits/typical/mean_with_sample_weight",
                                       "paths/BinaryCrossentropy/eager/grad=sample_weight/sum_over_batch_size"],
    "gradient through a layer": ["paths/BinaryCrossentropy/eager/grad=y_pred/producer=layers.Activation(sigmoid)/typical"],
    "producer function": ["paths/BinaryCrossentropy/eager/producer=tf.sigmoid/*",
                          "paths/BinaryCrossentropy/function/producer=keras.activations.sigmoid/*"],
    "loss tracker and metric": ["training/test_on_batch/n=6/weighted_metric",
                                "training/evaluate/sigmoid/bs=3/n=7/weighted/metric"],
    "traced before the change": ["paths/BinaryCrossentropy/function/config=floatx=float64,traced_before=True/typical"],
    "subnormal float32 weight": ["special/subnormal weight*"],
}  # fmt: skip

pytestmark = [pytest.mark.tensorflow, pytest.mark.skipif(not KERAS3, reason="Keras 3's paths")]


@functools.lru_cache(maxsize=1)
def _suite() -> tuple[Case, ...]:
    return tuple(default_suite())


def _cases(patterns: list[str]) -> list[Case]:
    cases = [c for c in _suite() if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]
    assert cases, patterns
    return cases


@pytest.fixture
def floatx64(tf_target):
    """Keras's floatx set to float64 for the test, as keras.json would set it at import."""
    backend = tf_target.tf.keras.backend
    before, policy = backend.floatx(), tf_target._policy_state()
    # a layer an earlier test built in this process fixed the global policy at its floatx: a process whose
    # keras.json says float64 starts with none set, so the policy follows floatx
    tf_target._set_policy_state(None)
    backend.set_floatx("float64")
    yield
    backend.set_floatx(before)
    tf_target._set_policy_state(policy)  # a layer built meanwhile fixed the global policy at float64


def _unexpected(cases, target, registry) -> list[str]:
    from harness.run.runner import run_cases

    result = run_cases(cases, target, registry)
    return [f"{r.case.id}: {r.status}" for r in result.records if r.status in ("fail", "xpass", "error")]


@pytest.mark.parametrize("name", list(CLASSES))
@pytest.mark.usefixtures("floatx64")
def test_no_false_failure_under_floatx_float64(name, registry):
    from harness.frameworks import TFTarget

    assert _unexpected(_cases(CLASSES[name]), TFTarget(), registry) == []


@pytest.mark.usefixtures("floatx64")
def test_a_loss_narrowed_to_float32_is_caught_under_floatx_float64(registry, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "tests"))
    import planted

    from harness.frameworks import TFTarget

    cases = _cases(["paths/BinaryCrossentropy/eager/probs/typical/*", "paths/BinaryCrossentropy/eager/logits/typical/*"])
    failing = _unexpected(cases, TFTarget(loss_factory=planted.float32_inside), registry)
    assert len(failing) == len(cases), failing
    sys.modules.pop("planted", None)


def test_the_oracle_follows_floatx_in_the_gradient_tracker_and_producer():
    from harness.oracle import expected

    grad = _cases(["paths/BinaryCrossentropy/eager/grad=y_pred/probs/typical/sum"])[0]
    wide = expected(grad, floatx="float64")
    assert wide.dtype == "float32"  # the gradient of a float32 variable
    assert (wide.bound >= 2**-24 * abs(wide.value)).all()  # its rounding into float32 is in the bound
    tracker = _cases(["training/test_on_batch/n=6/weighted_metric"])[0]
    assert expected(tracker, floatx="float64").dtype == "float64"
    assert expected(tracker, floatx="float32").dtype == "float32"
