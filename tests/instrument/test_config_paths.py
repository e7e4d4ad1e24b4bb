"""Configuration as facets, the legacy backend function and layer producers: the records round-trip, bad
settings are refused by name, and a fault planted only under one configuration or in one new path is caught.

Each fault runs a handful of cases of the paths family in this process (``run_cases``, as ``--workers 0``
does), so the default suite pays a few seconds; the non-default keras.json runs the command in a fresh
process (Keras reads it at import) and is heavy (BCE_HARNESS_HEAVY=1).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.case import Case, Config
from harness.errors import UsageError
from harness.generate.grid import default_suite
from harness.oracle.profiles import select_profile

REPO = Path(__file__).resolve().parents[2]
HEAVY = bool(os.environ.get("BCE_HARNESS_HEAVY"))
KERAS3 = select_profile().profile == "keras3"


@functools.lru_cache(maxsize=1)
def _suite() -> tuple[Case, ...]:
    return tuple(default_suite(special_cases=None))


def _paths(pattern: str) -> list[Case]:
    return [c for c in _suite() if fnmatch.fnmatchcase(c.id, pattern)]


def test_config_round_trips_and_is_a_facet():
    case = next(c for c in _suite() if c.config is not None and c.config.traced_before)
    again = Case.from_dict(json.loads(json.dumps(case.as_dict())))
    assert again.config == case.config and again.path == case.path
    assert case.facets["traced_before"] is True and case.facets["config"] == case.config.label
    assert case.tags["family"] == "config"


def test_a_ragged_and_an_integer_case_round_trip_through_results_json():
    from harness.judge.compare import Comparison
    from harness.report.issue import _case as case_from_record
    from harness.report.summary import record_dict
    from harness.run.runner import Record

    for pattern in ("paths/BinaryCrossentropy/eager/ragged", "paths/metrics.BinaryCrossentropy/eager/int_predictions"):
        case = _paths(pattern)[0]
        record = json.loads(json.dumps(record_dict(Record(case=case, status="fail", comparison=Comparison("tolerance", "x")))))
        again = case_from_record(record)
        assert again.row_lengths == case.row_lengths and again.pred_dtype == case.pred_dtype and again.path == case.path


@pytest.mark.parametrize(
    "bad",
    [{"policy": "mixed_float8"}, {"epsilon": 0.0}, {"epsilon": True}, {"floatx": "int32"}, {"traced_before": 1}, {"colour": 1}],
    ids=lambda d: ",".join(f"{k}={v!r}" for k, v in d.items()),
)
def test_bad_settings_are_refused_by_name(bad):
    with pytest.raises(UsageError, match=next(iter(bad))):
        Config.from_dict(bad)


def test_traced_before_needs_a_graph():
    case = _paths("paths/BinaryCrossentropy/function/config=epsilon=0.001,traced_before=True/*")[0]
    with pytest.raises(UsageError, match="traced_before"):
        Case.from_dict({**case.as_dict(), "mode": "eager"})


# -- faults planted in one configuration or one new path -----------------------------------------------------

needs_keras3 = [pytest.mark.tensorflow, pytest.mark.skipif(not KERAS3, reason="Keras 3's paths and module layout")]


def _failing(cases, target, registry) -> list[str]:
    from harness.run.runner import run_cases

    result = run_cases(cases, target, registry)
    return [r.case.id for r in result.records if r.status in ("fail", "xpass", "error")]


@pytest.mark.parametrize(
    ("factory", "faulty", "clean"),
    [
        ("wrong_under_mixed_float16", "paths/BinaryCrossentropy/eager/config=policy=mixed_float16/typical",
         "paths/BinaryCrossentropy/eager/probs/typical/*"),
        ("wrong_with_a_loss_policy", "paths/BinaryCrossentropy/eager/config=loss_policy=mixed_*16/typical",
         "paths/BinaryCrossentropy/eager/config=policy=*/typical"),
        ("stale_epsilon", "paths/BinaryCrossentropy/eager/config=epsilon=0.001/exact_bounds",
         "paths/BinaryCrossentropy/eager/probs/exact_bounds/*"),
        ("integer_predictions_halved", "paths/BinaryCrossentropy/eager/int_predictions",
         "paths/BinaryCrossentropy/eager/probs/typical/*"),
    ],
)  # fmt: skip
@pytest.mark.usefixtures("tf_target")
def test_a_fault_under_one_configuration_is_caught_there_only(factory, faulty, clean, registry, monkeypatch):
    if not KERAS3:
        pytest.skip("Keras 3's configuration paths")
    monkeypatch.syspath_prepend(str(REPO / "tests"))
    import planted

    from harness.frameworks import TFTarget

    target = TFTarget(loss_factory=getattr(planted, factory))
    failing = _failing(_paths(faulty) + _paths(clean), target, registry)
    assert failing and all(fnmatch.fnmatchcase(i, faulty) for i in failing), failing


@pytest.mark.usefixtures("tf_target")
def test_a_behaviour_outside_the_documented_domain_is_recorded_not_judged(registry, monkeypatch):
    """Ragged inputs are outside Keras 3's documented domain (dense shapes): a Keras that flattens them
    instead of raising gets no verdict, and the record keeps what it did, so compare sees the change as a
    behaviour change."""
    if not KERAS3:
        pytest.skip("Keras 3's documented domain")
    monkeypatch.syspath_prepend(str(REPO / "tests"))
    import planted

    from harness.frameworks import TFTarget
    from harness.run.runner import run_cases

    cases = _paths("paths/BinaryCrossentropy/eager/ragged")
    stock = run_cases(cases, TFTarget(), registry).records
    flattened = run_cases(cases, TFTarget(loss_factory=planted.ragged_flattened), registry).records
    assert [r.status for r in stock] == [r.status for r in flattened] == ["outside"]
    assert stock[0].outcome.error is not None and flattened[0].outcome.error is None


def _scaled(fn, tf):
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        return out * tf.constant(1.001, out.dtype)

    return wrapped


@pytest.mark.usefixtures("tf_target")
def test_a_fault_in_the_legacy_backend_function_is_caught(tf_target, registry, monkeypatch):
    if not KERAS3:
        pytest.skip("Keras 3's module layout")
    from harness.frameworks import TFTarget

    backend = tf_target.tf.keras.backend  # the name tf.keras.backend exports (keras.src.legacy.backend's function)
    monkeypatch.setattr(backend, "binary_crossentropy", _scaled(backend.binary_crossentropy, tf_target.tf))
    # on probabilities the function's older formula is a registered tolerance divergence
    # (legacy-backend-older-formula), which a scaled result shares the kind of: logits show the fault
    failing = _failing(_paths("paths/backend.binary_crossentropy/eager/*/typical/*"), TFTarget(), registry)
    assert "paths/backend.binary_crossentropy/eager/logits/typical/None" in failing, failing


@pytest.mark.usefixtures("tf_target")
def test_a_fault_in_the_activation_layer_is_caught(tf_target, registry, monkeypatch):
    if not KERAS3:
        pytest.skip("Keras 3's module layout")
    from keras.src.layers.activations.activation import Activation

    from harness.frameworks import TFTarget

    monkeypatch.setattr(Activation, "call", _scaled(Activation.call, tf_target.tf))
    cases = _paths("paths/BinaryCrossentropy/eager/producer=*/typical")
    failing = _failing(cases, TFTarget(), registry)
    assert failing and all("Activation" in i or "model" in i for i in failing), failing


# -- a Keras configured by keras.json ------------------------------------------------------------------------


@pytest.mark.tensorflow
@pytest.mark.skipif(not HEAVY, reason="a fresh TensorFlow process: set BCE_HARNESS_HEAVY=1")
def test_a_non_default_keras_json_is_read_and_gives_no_false_failure(tmp_path):
    pytest.importorskip("tensorflow")
    home = tmp_path / "keras"
    home.mkdir()
    (home / "keras.json").write_text(json.dumps({"epsilon": 1e-5, "floatx": "float32", "backend": "tensorflow"}))
    env = {**os.environ, "KERAS_HOME": str(home), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--out", str(out), "--select", "*/probs/exact_bounds/*",
         "--workers", "1", "--no-progress"],
        check=False, capture_output=True, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    meta = json.loads((out / "results.json").read_text())["meta"]
    assert meta["target"]["keras_epsilon"] == 1e-5, meta["target"]
