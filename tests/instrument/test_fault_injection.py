"""Fault injection: plant a wrong BinaryCrossentropy and show that the default suite reports it.

A check that cannot fail is a defect.  Each fault below is a subtly broken loss built from TensorFlow ops
(or a changed Keras global), run through the real pipeline (generator, reference, comparator, registry)
over the whole default suite.  Each must produce unexpected failures, of the kind we expect, on the cases
that exercise it.  The last test plants a fault inside Keras itself and runs the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.case import API_LOSS_CLASS, Options, compute_dtype_of
from harness.frameworks import TFTarget
from harness.oracle import expected
from harness.oracle.profiles import select_profile
from harness.run.runner import RunResult, run_cases

pytestmark = [
    pytest.mark.tensorflow,
    pytest.mark.skipif(
        select_profile().profile != "keras3",
        reason="the planted faults are built on the Keras 3 API (the loss's dtype argument, keras.config, "
        "keras.src.losses); on a Keras 2 line the differential suite runs, the faults do not",
    ),
]

REPO = Path(__file__).resolve().parents[2]


def _real(tf, options: Options, **changes):
    o = replace(options, **changes)
    return tf.keras.losses.BinaryCrossentropy(
        from_logits=o.from_logits, label_smoothing=o.label_smoothing, axis=o.axis, reduction=o.reduction, dtype=o.dtype
    )


def _loss_dtype(options: Options) -> str:
    """The dtype a loss object with these options computes in (case.compute_dtype_of, the one rule)."""
    return compute_dtype_of(API_LOSS_CLASS, "float32", options.dtype)


def _cast(tf, x, options: Options):
    return tf.cast(x, _loss_dtype(options))


# Each fault: options -> callable(y_true, y_pred, sample_weight=None).  tf is passed in at run time.
def seed_smoothing(tf, o: Options):
    """The first write-up's smoothing, y (1 - ls) + ls (1 - y), instead of y (1 - ls) + ls / 2."""
    real = _real(tf, o, label_smoothing=0.0)
    ls = o.label_smoothing

    def call(y, p, sample_weight=None):
        y = _cast(tf, y, o)
        return real(y * (1 - ls) + ls * (1 - y), p, sample_weight=sample_weight)

    return call


def sum_for_mean(tf, o: Options):
    """A sum where a mean belongs."""
    red = "sum" if o.reduction in ("sum_over_batch_size", "mean") else o.reduction
    return _real(tf, o, reduction=red)


def ignored_sample_weight(tf, o: Options):
    real = _real(tf, o)
    return lambda y, p, sample_weight=None: real(y, p)


def naive_sigmoid_log(tf, o: Options):
    """from_logits by sigmoid, then the clipped probability formula."""
    if not o.from_logits:
        return _real(tf, o)
    real = _real(tf, o, from_logits=False)
    return lambda y, p, sample_weight=None: real(y, tf.sigmoid(_cast(tf, p, o)), sample_weight=sample_weight)


def lost_nan(tf, o: Options):
    """NaN results replaced by 0 (a nan_to_num somewhere)."""
    real = _real(tf, o)

    def call(y, p, sample_weight=None):
        out = real(y, p, sample_weight=sample_weight)
        return tf.where(tf.math.is_nan(out), tf.zeros_like(out), out)

    return call


def float16_inside(tf, o: Options):
    """Loss of precision: a float32/float64 loss computed in float16 and cast back."""
    if _loss_dtype(o) not in ("float32", "float64"):
        return _real(tf, o)
    real = _real(tf, o, dtype="float16")

    def call(y, p, sample_weight=None):
        return tf.cast(real(y, p, sample_weight=sample_weight), _loss_dtype(o))

    return call


def batch_only_divisor(tf, o: Options):
    """sum_over_batch_size divided by the batch size instead of the number of loss elements."""
    if o.reduction not in ("sum_over_batch_size", "mean"):
        return _real(tf, o)
    real = _real(tf, o, reduction=None)

    def call(y, p, sample_weight=None):
        values = real(y, p, sample_weight=sample_weight)
        if values.shape.rank == 0:
            return values
        n = tf.cast(tf.shape(values)[0], values.dtype)
        return tf.math.divide_no_nan(tf.reduce_sum(values), n)

    return call


def dropped_axis(tf, o: Options):
    return _real(tf, o, axis=-1)


def dropped_label_smoothing(tf, o: Options):
    return _real(tf, o, label_smoothing=0.0)


def probability_bce(tf, o: Options, *, lo: float, hi: float, shift: float = 0.0):
    """A binary cross-entropy of probabilities, -(y log(p + shift) + (1 - y) log(1 - p + shift)) with p
    clipped to [lo, hi], built on Keras's own Loss base class, so conversion, weights and reductions stay
    Keras's; logits go to the real loss.  Planted faults vary the clip and the shift."""
    if o.from_logits:
        return _real(tf, o)
    from keras.src.losses.loss import squeeze_or_expand_to_same_rank

    ls, axis = o.label_smoothing, o.axis

    class PlantedBCE(tf.keras.losses.Loss):
        def call(self, y_true, y_pred):
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
            y = y_true * (1.0 - ls) + 0.5 * ls
            p = tf.clip_by_value(y_pred, lo, hi)
            return tf.reduce_mean(-(y * tf.math.log(p + shift) + (1 - y) * tf.math.log(1 - p + shift)), axis=axis)

    return PlantedBCE(reduction=o.reduction, dtype=o.dtype)


def lower_clip_lost(tf, o: Options):
    """Probabilities clipped to [0, 1 - eps] only: p = 0 with y = 1 gives inf."""
    return probability_bce(tf, o, lo=0.0, hi=1.0 - 1e-7)


# fault name -> (factory, family/kind of record that must fail, a case id fragment that must be named)
FAULTS: dict[str, tuple[Callable, str, str]] = {
    "seed smoothing formula": (seed_smoothing, "tolerance", "/ls=0.1/"),
    "sum where a mean belongs": (sum_for_mean, "tolerance", "/sum_over_batch_size"),
    "ignored sample_weight": (ignored_sample_weight, "tolerance", "/w=per_sample"),
    "naive sigmoid-then-log for logits": (naive_sigmoid_log, "tolerance", "values/logits/large_1e2/"),
    "lost NaN": (lost_nan, "nan_inf", "values/probs/nan/"),
    "float16 inside a float32 loss": (float16_inside, "tolerance", "values/probs/typical/f32-f32/dtype=default"),
    "batch-only divisor": (batch_only_divisor, "tolerance", "options/BTC/"),
    "dropped axis option": (dropped_axis, "tolerance", "/axis=0/"),
    "dropped label_smoothing": (dropped_label_smoothing, "tolerance", "/ls=1/"),
    "lower clip lost for p == 0": (lower_clip_lost, "tolerance", "special/bce(y=1, p=0, float32)"),
}


# the share of each generated family the faults run over: a quarter in the nightly (BCE_HARNESS_HEAVY=1), an
# eighth in the default run (the same draws: the eighth is part of the quarter)
SCREEN_SHARE = 0.25 if os.environ.get("BCE_HARNESS_HEAVY") else 0.125
NAMED = [fragment for _factory, _kind, fragment in FAULTS.values()] + ["values/probs/exact_bounds/"]


@pytest.fixture(scope="module")
def screen(default_cases):
    """A seeded share (SCREEN_SHARE) of every generated family plus all special and error cases.

    Running ten faults over the whole suite would cost minutes; a quarter (the nightly's), or an eighth, keeps
    every family, option and regime represented (the families are products, so a random share hits every axis
    value) and the assertions below name the cases that must be among the failures: where the share holds
    none of a named kind, its first case is added, so an assertion never fails for want of its case.
    """
    rng = np.random.default_rng(7)
    # the training and replicas families build models: their own faults are planted in test_training.py
    direct = [c for c in default_cases if c.training is None]
    keep = [c for c in direct if c.tags["family"] in ("special", "errors") or rng.random() < SCREEN_SHARE]
    for fragment in NAMED:
        if not any(fragment in c.id for c in keep):
            keep.append(next(c for c in direct if fragment in c.id))
    return keep


@pytest.fixture(scope="module")
def oracle(screen):
    """The reference is deterministic: compute it once for all the faults."""
    cache = {c.id: expected(c) for c in screen}
    return lambda case, profile="keras3": cache[case.id]


def _run_with(tf_target: TFTarget, factory, cases, registry, oracle) -> RunResult:
    tf = tf_target.tf
    target = TFTarget(loss_factory=lambda options: factory(tf, options))
    return run_cases(cases, target, registry, oracle=oracle)


@pytest.mark.parametrize("name", list(FAULTS))
def test_planted_fault_is_reported(name, tf_target, screen, oracle, registry):
    factory, kind, fragment = FAULTS[name]
    result = _run_with(tf_target, factory, screen, registry, oracle)
    failed = [r for r in result.records if r.status in ("fail", "xpass")]
    assert failed, f"{name}: the default suite did not notice"
    assert not result.ok
    kinds = {r.comparison.kind for r in failed}
    assert kind in kinds, f"{name}: failure kinds {kinds}"
    named = [r.case.id for r in failed if fragment in r.case.id]
    assert named, f"{name}: no failing case id contains {fragment!r}; failing: {[r.case.id for r in failed][:10]}"


# 1e-6 shows in the default run that a changed epsilon is caught; 1e-8, the finer one, is the nightly's
@pytest.mark.parametrize("eps", [1e-6, pytest.param(1e-8, marks=pytest.mark.heavy)])
def test_other_epsilon_is_reported(eps, tf_target, screen, oracle, registry):
    import keras

    old = keras.config.epsilon()
    keras.config.set_epsilon(eps)
    try:
        result = run_cases(screen, TFTarget(), registry, oracle=oracle)
    finally:
        keras.config.set_epsilon(old)
    failed = {r.case.id for r in result.records if r.status == "fail"}
    assert "special/bce(y=1, p=0, float32) -> -log(eps)" in failed
    assert any(i.startswith("values/probs/exact_bounds/") for i in failed)


def test_cli_exits_1_and_names_the_cases_when_keras_is_broken(tmp_path):
    """A fault planted inside Keras before the command runs: the loss clips with another epsilon than the one
    keras.config.epsilon() reports (a configured epsilon is not a fault: the reference reads it), exit 1."""
    pytest.importorskip("tensorflow")
    from planted import CLIP_WITH_ANOTHER_EPSILON

    (tmp_path / "sitecustomize.py").write_text(CLIP_WITH_ANOTHER_EPSILON)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        # one worker (the planted Keras reaches it as it reaches any): each further one costs a TensorFlow import
        [sys.executable, "-m", "harness", "run", "--out", str(tmp_path / "out"), "--select", "special/*", "--workers", "1",
         "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL [tolerance] special/bce(y=1, p=0, float32) -> -log(eps)" in proc.stdout
    report = (tmp_path / "out" / "report.md").read_text()
    assert "special/bce(y=1, p=0, float32) -> -log(eps)" in report


# -- outside the old grid: faults only the covering array's label domains, smoothings and sizes reach ------


def clipped_labels(tf, o: Options):
    """Labels clipped to [0, 1] before the loss: soft labels outside it (2, -1, 1.5) silently change."""
    real = _real(tf, o)
    return lambda y, p, sample_weight=None: real(tf.clip_by_value(_cast(tf, y, o), 0.0, 1.0), p, sample_weight=sample_weight)


def clamped_smoothing(tf, o: Options):
    """label_smoothing clamped to [0, 1], as a validating constructor might do."""
    return _real(tf, o, label_smoothing=min(max(o.label_smoothing, 0.0), 1.0))


def large_inputs_misread_their_tail(tf, o: Options):
    """Past 1,000 elements the last prediction is read as its neighbour's (a blocked kernel's tail)."""
    real = _real(tf, o)

    def call(y, p, sample_weight=None):
        p = tf.convert_to_tensor(p)
        if p.shape.num_elements() and p.shape.num_elements() > 1000:
            flat = tf.reshape(p, [-1])
            p = tf.reshape(tf.concat([flat[:-1], flat[-2:-1]], 0), tf.shape(p))
        return real(y, p, sample_weight=sample_weight)

    return call


PAIRS_FAULTS = {
    "labels clipped to [0, 1]": clipped_labels,
    "label_smoothing clamped to [0, 1]": clamped_smoothing,
    "large inputs misread their tail": large_inputs_misread_their_tail,
}


@pytest.fixture(scope="module")
def pairs_cases(default_cases):
    return [c for c in default_cases if c.tags["family"] == "pairs" and c.api == "BinaryCrossentropy"]


# the default run sweeps one fault over the pairs family (the check can fail); the nightly all of them
@pytest.mark.parametrize(
    "name", [n if k == 0 else pytest.param(n, marks=pytest.mark.heavy) for k, n in enumerate(PAIRS_FAULTS)]
)
def test_a_fault_outside_the_old_grid_is_reported_by_the_pairs_family(name, tf_target, pairs_cases, registry):
    cache = {c.id: expected(c) for c in pairs_cases}
    result = _run_with(tf_target, PAIRS_FAULTS[name], pairs_cases, registry, lambda case, profile="keras3": cache[case.id])
    assert [r for r in result.records if r.status == "fail"], f"{name}: the pairs family did not notice"


# the worse sum, which must be flagged, runs always; the as-accurate one (no false alarm) is the nightly's
@pytest.mark.parametrize(
    ("accumulator", "flagged"), [pytest.param("float64", False, marks=pytest.mark.heavy), ("bfloat16", True)]
)
def test_a_sum_as_accurate_as_tensorflows_passes_and_a_worse_one_fails(
    accumulator, flagged, tf_target, pairs_cases, registry, monkeypatch
):
    """Keras's reductions summed in reverse order in ``accumulator``, the result rounded once to the loss's
    dtype.  float64 is at least as accurate as TensorFlow's own sum, so the large sizes must not flag it (the
    bound holds for any order of summation); a bfloat16 accumulator is a real loss of accuracy and must be."""
    import keras.src.losses.loss as loss_module

    real_sum = loss_module.ops.sum

    def planted_sum(x, axis=None, keepdims=False):
        tf = tf_target.tf
        x = tf.convert_to_tensor(x)
        if not x.dtype.is_floating:
            return real_sum(x, axis=axis, keepdims=keepdims)
        acc = tf.cast(x, accumulator)
        if axis is None:
            acc = tf.reverse(tf.reshape(acc, [-1]), [0])
        return tf.cast(tf.reduce_sum(acc, axis=axis, keepdims=keepdims), x.dtype)

    monkeypatch.setattr(loss_module.ops, "sum", planted_sum)
    cache = {c.id: expected(c) for c in pairs_cases}
    result = run_cases(pairs_cases, TFTarget(), registry, oracle=lambda case, profile="keras3": cache[case.id])
    unexpected = [(r.case.id, r.comparison.kind) for r in result.records if r.status in ("fail", "error")]
    assert bool(unexpected) is flagged, unexpected
