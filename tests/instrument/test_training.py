"""The training and replicas families: their cases, their reference, their reproductions, and faults
planted in Keras's loop and distribution code (tests/planted_training.py) that they must catch."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.case import Case, TrainingSpec
from harness.errors import UsageError
from harness.generate.grid import default_suite
from harness.oracle import expected
from harness.oracle.keras3 import Keras3
from harness.oracle.training import batches, sample_weights

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"


def _case(spec: TrainingSpec, n: int = 10, *, weights: bool = False, **kw) -> Case:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (n, 1)).astype(np.float64)
    p = np.float32(rng.uniform(0.05, 0.95, (n, 1))).astype(np.float64)
    w = np.float32(rng.uniform(0.5, 2.0, n)).astype(np.float64) if weights else None
    return Case(id="training/t", y_true=y, y_pred=p, true_dtype="float32", pred_dtype="float32", sample_weight=w, training=spec, **kw)


def test_spec_round_trips_through_the_case():
    spec = TrainingSpec("fit", 4, activation="sigmoid", class_weight=((0, 0.5), (1, 2.0)), metric="weighted_metrics")
    case = _case(spec)
    back = Case.from_dict(json.loads(json.dumps(case.as_dict())))
    assert back.training == spec and back.path == "fit/BinaryCrossentropy/activation:sigmoid"
    replica = TrainingSpec("run", strategy="mirrored", splits=(6, 4))
    assert Case.from_dict(_case(replica).as_dict()).training == replica


@pytest.mark.parametrize(
    "bad",
    [
        {"route": "predict"},
        {"route": "fit", "batch_size": 0},
        {"route": "fit", "activation": "softmax"},
        {"route": "fit", "metric": True},
        {"route": "run"},  # a replica route without a strategy
        {"route": "run", "strategy": "mirrored", "splits": (-1, 2)},
        {"route": "fit", "class_weight": "heavy"},
    ],
    ids=lambda d: ",".join(f"{k}={v!r}" for k, v in d.items()),
)
def test_bad_specs_are_refused(bad):
    with pytest.raises(UsageError, match="training"):
        TrainingSpec.from_dict(bad)


def test_splits_must_add_up_and_paths_stay_default():
    with pytest.raises(UsageError, match="splits"):
        _case(TrainingSpec("run", strategy="mirrored", splits=(3, 3)))
    with pytest.raises(UsageError, match="training case"):
        _case(TrainingSpec("fit"), mode="function")


def test_the_loop_reports_the_batch_size_weighted_mean_of_batch_losses():
    """trainer.py test_step: tracker.update_state(loss, sample_weight=batch size): sum n_b l_b / sum n_b."""
    case = _case(TrainingSpec("evaluate", 4), weights=True)
    assert [(s.start, s.stop) for s in batches(10, 4)] == [(0, 4), (4, 8), (8, 10)]
    y, p, w = case.y_true[:, 0], case.y_pred[:, 0], case.sample_weight
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p)) * w
    batch_means = [per[s].sum() / (s.stop - s.start) for s in batches(10, 4)]  # sum_over_batch_size
    by_size = sum(m * (s.stop - s.start) for m, s in zip(batch_means, batches(10, 4), strict=True)) / 10
    e = expected(case)
    assert abs(float(e.value) - by_size) < 1e-12 and float(e.bound) < 1e-5
    assert abs(by_size - np.mean(batch_means)) > 10 * float(e.bound)  # the partial batch matters here
    on_batch = expected(_case(TrainingSpec("test_on_batch"), weights=True))
    assert abs(float(on_batch.value) - per.sum() / 10) < 1e-12


def test_class_weight_becomes_sample_weight_and_excludes_it():
    case = _case(TrainingSpec("fit", 4, class_weight=((1, 3.0),)))
    w, why = sample_weights(case)
    assert why is None and np.array_equal(w, np.where(case.y_true[:, 0] == 1, 3.0, 1.0))
    both = _case(TrainingSpec("fit", 4, class_weight=((1, 3.0),)), weights=True)
    assert "together" in (expected(both).raises or "")


def test_metrics_are_unweighted_and_weighted_metrics_weighted():
    """compile's docstring: metrics are 'evaluated', weighted_metrics 'evaluated and weighted by sample_weight'."""
    plain = expected(_case(TrainingSpec("evaluate", 4, metric="metrics"), weights=True))
    weighted = expected(_case(TrainingSpec("evaluate", 4, metric="weighted_metrics"), weights=True))
    case = _case(TrainingSpec("evaluate", 4), weights=True)
    y, p, w = case.y_true[:, 0], case.y_pred[:, 0], case.sample_weight
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert abs(float(plain.value[1]) - per.mean()) < 1e-6
    assert abs(float(weighted.value[1]) - (w * per).sum() / w.sum()) < 1e-6


def test_replicas_are_judged_against_the_whole_batch():
    whole = _case(TrainingSpec("run", strategy="mirrored", splits=(7, 3)))
    plain = Keras3().expected(Case(**{k: getattr(whole, k) for k in ("id", "y_true", "y_pred", "true_dtype", "pred_dtype")}))
    assert float(expected(whole).value) == float(plain.value)
    assert float(expected(whole).bound) > float(plain.bound)  # the replicas' own roundings


def _nightly() -> list[Case]:
    from harness.generate.grid import DEFAULT_SEED
    from harness.generate.training import replicas_family, training_family

    return [*training_family(DEFAULT_SEED, "nightly"), *replicas_family(DEFAULT_SEED, "nightly")]


def test_families_are_selectable_and_nightly_holds_more(default_cases):
    default = [c for c in default_cases if c.training is not None]
    nightly = _nightly()
    assert all(c.id.startswith(("training/", "replicas/")) for c in default + nightly)
    assert {c.training.route for c in default} >= {"evaluate", "fit", "test_on_batch", "train_on_batch", "run", "cross_replica"}
    assert 8 <= len(default) <= 14 and len(nightly) > 5 * len(default)
    assert {c.id for c in default} <= {c.id for c in nightly}
    assert all(fnmatch.fnmatchcase(c.id, "training/*") for c in default if c.training.strategy is None and c.id.startswith("t"))
    keras2 = {c.id: expected(c, profile="keras2") for c in default}
    assert "refuses" in keras2["replicas/cross_replica/sum_over_batch_size"].raises
    assert keras2["replicas/run/uneven/sum/weighted"].raises is None


# -- the real loop ----------------------------------------------------------------------------------------

tf_only = [pytest.mark.tensorflow]


def _keras3() -> None:
    pytest.importorskip("keras.src.trainers.trainer", reason="the faults are planted in Keras 3.15's module layout")
    from harness.oracle.profiles import select_profile

    if select_profile().profile != "keras3":
        pytest.skip("the training family is Keras 3's")


@pytest.mark.tensorflow
def test_planted_unweighted_tracker_fails_the_loop_cases_only(registry):
    """A loss tracker that ignores the batch sizes: evaluate and fit with a partial last batch fail, the
    *_on_batch routes (one batch) do not.  A fresh target, so no model compiled before the fault is reused."""
    _keras3()
    sys.path.insert(0, str(TESTS))
    import planted_training

    from harness.frameworks import TFTarget
    from harness.run.runner import run_cases

    cases = [c for c in default_suite() if fnmatch.fnmatchcase(c.id, "training/*") and c.training.activation == "linear"]
    undo = planted_training.unweighted_tracker()
    try:
        result = run_cases(cases, TFTarget(), registry)
    finally:
        undo()
    failing = {r.case.training.route for r in result.records if r.status == "fail"}
    assert not result.ok and failing == {"evaluate", "fit"}, [(r.case.id, r.status) for r in result.records]


def _in_process(code: str, tmp_path: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout, check=False
    )


@pytest.mark.tensorflow
def test_planted_strategy_fault_makes_run_exit_1_under_replicas_only(tmp_path):
    """The loss reaches the tracker unscaled: nothing changes without a strategy, the reported loss halves
    under two replicas.  `bce-harness run` in a fresh process (the two logical CPUs must be made before
    TensorFlow initialises its devices), with the fault planted before it starts."""
    _keras3()
    out = tmp_path / "out"
    proc = _in_process(
        f"""
        import sys
        import planted_training
        planted_training.unscaled_under_strategy()
        from harness.cli import main
        sys.exit(main(["run", "--select", "*/evaluate/bs=4*", "--workers", "0", "--out", {str(out)!r}, "--no-progress"]))
        """,
        tmp_path,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    records = json.loads((out / "results.json").read_text())["records"]
    status = {r["id"]: r["status"] for r in records}
    assert status["replicas/evaluate/bs=4/n=5/metric"] == "fail", status
    assert [s for i, s in status.items() if i.startswith("training/")] == ["pass"], status


@pytest.mark.tensorflow
def test_training_reproduction_runs_as_is_and_shows_a_planted_fault(tmp_path):
    """The reproduction of a fit/evaluate case builds the same tiny model: it agrees on stock Keras (exit 0)
    and shows the divergence (exit 1, DIVERGES) with the loop's fault planted in the same process."""
    _keras3()
    from harness.report.repro import snippet

    (case,) = [c for c in default_suite() if c.id.startswith("training/evaluate/bs=4/")]
    script = tmp_path / "repro.py"
    script.write_text(snippet(case, expected(case)))
    proc = _in_process(
        f"""
        import runpy
        import planted_training

        def run():
            try:
                runpy.run_path({str(script)!r}, run_name="__main__")
            except SystemExit as exc:
                return exc.code
            return 0

        stock = run()
        planted_training.unweighted_tracker()
        print("EXITS", stock, run())
        """,
        tmp_path,
    )
    assert "EXITS 0 1" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.count("agrees") == 1 and proc.stdout.count("DIVERGES") == 1


def test_training_cases_go_a_few_to_a_job(default_cases):
    """A job of model builds must stay under the per-job ceiling on a busy machine: a few cases to a job."""
    from harness.run.runner import TRAINING_JOB_SIZE, plan_jobs

    jobs = plan_jobs([c for c in default_cases if c.training is None] + _nightly())
    mixed = [j for j in jobs if len({c.training is None for _, c in j}) > 1]
    assert not mixed
    assert max(len(j) for j in jobs if j[0][1].training is not None) <= TRAINING_JOB_SIZE
