"""``explain``: the reference's steps end where the oracle does, and a hand-written BCE gets the right diagnosis.

The seeds' own code (examples/seed_manuals.py, transcribed from ../shared/seeds/) is the first table: each
article's function on the article's inputs.  The second plants the other catalogued mistakes, and two that
are not in the catalogue (a result off by 1%, and one a few ULP off, which is no departure at all).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.case import API_LOSS_CLASS, Options
from harness.errors import InputError, UsageError
from harness.explain import build_case, diagnose, explain, load_manual, load_variants, parse_array, reference_steps

REPO = Path(__file__).resolve().parents[2]
SEEDS = str(REPO / "examples" / "seed_manuals.py")


def seed(name: str):
    return load_manual(f"{SEEDS}:{name}")


def case_of(y_true, y_pred, weight=None, **options):
    return build_case(np.asarray(y_true, float), np.asarray(y_pred, float), options=Options(**options),
                      sample_weight=None if weight is None else np.asarray(weight, float))  # fmt: skip


def verdict(fn, case, profile="keras3"):
    d = diagnose(fn, case, profile=profile)
    ids = [" + ".join(v.id for v in m.variants) for m in d.matches]
    return d, ids


# -- the reference's steps are the oracle's ---------------------------------------------------------------


@pytest.mark.parametrize("profile", ["keras3", "keras2"])
def test_steps_end_at_the_oracles_value_across_the_default_suite(default_cases, profile):
    checked = 0
    for case in default_cases[::3]:
        if case.grad or case.mask is not None or case.producer or case.api == "metrics.BinaryCrossentropy" or case.training:
            continue
        if profile == "keras2" and case.api != API_LOSS_CLASS:
            continue
        try:
            reference_steps(case, profile)  # the oracle's own steps, as harness.oracle.expected takes them
        except UsageError:  # a path explain says it does not cover (training loops, configurations, ...)
            continue
        checked += 1
    assert checked > 300


@pytest.mark.parametrize(("profile", "line"), [("keras3", "Keras 3"), ("keras2", "Keras 2")])
def test_the_prediction_step_describes_the_profiles_own_logit_recovery(profile, line):
    (step,) = [s for s in reference_steps(case_of([1, 0], [0.9, 0.2]), profile).steps if s.key == "prediction"]
    assert line in step.rule and ("Keras 3" if profile == "keras2" else "Keras 2") not in step.rule


# -- the seeds ----------------------------------------------------------------------------------------------


@pytest.mark.tensorflow
def test_seed1_manual_bce_probs_is_unreduced(tf_target):
    """Its function returns the elementwise terms; Keras then takes the mean over the axis and reduces."""
    d, _ = verdict(seed("seed1_manual_bce_probs"), case_of([[1], [0], [1]], [[0.9], [0.2], [0.8]]))
    assert d.verdict == "departs"
    assert d.matches[0].step == "terms" and d.matches[0].departs_at == "axis"
    assert "stops there" in d.message


@pytest.mark.tensorflow
def test_seed1_reduce_mean_agrees(tf_target):
    d, _ = verdict(seed("seed1_reduce_mean"), case_of([[1], [0], [1]], [[0.9], [0.2], [0.8]]))
    assert d.verdict == "agrees", d.message


@pytest.mark.tensorflow
def test_seed1_probability_formula_on_logits(tf_target):
    d, ids = verdict(seed("seed1_reduce_mean"), case_of([[1], [0], [1]], [[2.0], [-1.0], [1.5]], from_logits=True))
    assert d.verdict == "departs" and ids[0] == "sigmoid-not-applied"
    assert d.matches[0].departs_at == "prediction"


@pytest.mark.tensorflow
def test_seed1_mean_against_reduction_sum(tf_target):
    d, ids = verdict(seed("seed1_reduce_mean"), case_of([[1], [0], [1]], [[0.9], [0.2], [0.8]], reduction="sum"))
    assert d.verdict == "departs" and "mean-instead-of-sum" in ids
    assert d.matches[0].departs_at == "reduction"


def test_seed2_example1_agrees():
    d, _ = verdict(seed("seed2_example1"), case_of([1, 0, 1, 0], [0.9, 0.1, 0.6, 0.4]))
    assert d.verdict == "agrees", d.message


def test_seed2_example2_agrees_on_its_inputs_and_departs_past_the_clip():
    d, _ = verdict(seed("seed2_example2"), case_of([1, 0, 1, 0], [2.0, -2.0, 1.0, -1.0], from_logits=True))
    assert d.verdict == "agrees", d.message
    d, ids = verdict(seed("seed2_example2"), case_of([1, 0, 1, 0], [2.0, 20.0, 1.0, -1.0], from_logits=True))
    assert d.verdict == "departs" and ids[0] == "sigmoid-then-clip"
    assert d.matches[0].departs_at == "prediction"


def test_seed2_example3_smoothing_flip():
    d, ids = verdict(seed("seed2_example3"), case_of([1, 0, 1, 0], [0.9, 0.1, 0.6, 0.4], label_smoothing=0.1))
    assert d.verdict == "departs" and ids == ["smoothing-flip"]
    assert d.matches[0].departs_at == "smoothing"
    assert "0.5 * ls" in d.message and "Example 3" in d.message


# -- the rest of the catalogue, planted -----------------------------------------------------------------------

EDGES = ([1, 0, 1, 0, 1, 0], [1.0, 0.0, 0.0, 1.0, 0.7, 0.2])


def _terms(y, p):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def eps_inside_log(y_true, y_pred):
    y, p = y_true.astype(np.float64), y_pred.astype(np.float64)
    return np.mean(-(y * np.log(p + 1e-7) + (1 - y) * np.log(1 - p + 1e-7)))


def keras2_formula(y_true, y_pred):
    y, p = y_true.astype(np.float64), np.clip(y_pred.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.mean(-(y * np.log(p + 1e-7) + (1 - y) * np.log(1 - p + 1e-7)))


def no_clip(y_true, y_pred):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mean(_terms(y_true.astype(np.float64), y_pred.astype(np.float64)))


def sklearn_clip(y_true, y_pred):
    p = np.clip(y_pred.astype(np.float64), 1e-15, 1 - 1e-15)
    return np.mean(_terms(y_true.astype(np.float64), p))


def torch_log_floor(y_true, y_pred):
    y, p = y_true.astype(np.float64), y_pred.astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.mean(-(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100)))


def keras_exact(y_true, y_pred):
    p = np.clip(y_pred.astype(np.float64), np.float32(1e-7), np.float32(1 - 1e-7))
    return np.mean(_terms(y_true.astype(np.float64), p))


def summed(y_true, y_pred):
    return np.sum(np.mean(_terms(y_true, np.clip(y_pred, 1e-7, 1 - 1e-7)), axis=-1))


def weighted_mean(y_true, y_pred, sample_weight):
    per = np.mean(_terms(y_true, np.clip(y_pred, 1e-7, 1 - 1e-7)), axis=-1)
    return np.sum(per * sample_weight) / np.sum(sample_weight)


def per_batch(y_true, y_pred):
    per = np.mean(_terms(y_true, np.clip(y_pred, 1e-7, 1 - 1e-7)), axis=-1)
    return np.sum(per) / per.shape[0]


def nonzero_weights(y_true, y_pred, sample_weight):
    per = np.mean(_terms(y_true, np.clip(y_pred, 1e-7, 1 - 1e-7)), axis=-1)
    return np.sum(per * sample_weight) / np.count_nonzero(sample_weight)


def sigmoid_again(y_true, y_pred):
    p = 1 / (1 + np.exp(-y_pred.astype(np.float64)))
    return np.mean(_terms(y_true, np.clip(p, 1e-7, 1 - 1e-7)))


def sum_over_labels(y_true, y_pred):
    return np.mean(np.sum(_terms(y_true, np.clip(y_pred, 1e-7, 1 - 1e-7)), axis=-1))


def off_by_one_percent(y_true, y_pred):
    return keras_exact(y_true, y_pred) * 1.01


def off_by_a_few_ulp(y_true, y_pred):
    v = np.float32(keras_exact(y_true, y_pred))
    for _ in range(3):
        v = np.nextafter(v, np.float32(np.inf))
    return v


ROWS_23 = ([[1, 0, 1], [0, 1, 1]], [[0.9, 0.2, 0.6], [0.3, 0.8, 0.4]])
ROWS_33 = ([[1, 0, 1], [0, 1, 1], [1, 1, 0]], [[0.9, 0.2, 0.6], [0.3, 0.8, 0.4], [0.7, 0.6, 0.1]])
ROWS_223 = ([[[1, 0, 1], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], [[[0.9, 0.2, 0.6], [0.3, 0.8, 0.4]], [[0.7, 0.6, 0.1], [0.2, 0.3, 0.9]]])


@pytest.mark.parametrize(
    ("fn", "case", "want"),
    [
        (eps_inside_log, case_of(*EDGES), "eps-inside-log"),
        (keras2_formula, case_of(*EDGES), "keras2-clip-and-eps"),
        (no_clip, case_of(*EDGES), "no-clip"),
        (sklearn_clip, case_of(*EDGES), "clip-other-epsilon(1e-15)"),
        (torch_log_floor, case_of(*EDGES), "log-clamped-at-100"),
        (summed, case_of(*ROWS_23), "sum-instead-of-mean"),
        (weighted_mean, case_of(*ROWS_23, weight=[1.0, 3.0]), "divided-by-weight-sum"),
        (per_batch, case_of(*ROWS_223), "divided-by-batch-size"),
        (nonzero_weights, case_of(*ROWS_33, weight=[1.0, 0.0, 2.0]), "divided-by-nonzero-weights"),
        (sigmoid_again, case_of(*ROWS_23), "sigmoid-applied-twice"),
        (sum_over_labels, case_of(*ROWS_23), "sum-over-axis"),
    ],
    ids=lambda x: getattr(x, "__name__", None) if callable(x) else (x if isinstance(x, str) else ""),
)
def test_planted_variant_is_named(fn, case, want):
    d, ids = verdict(fn, case)
    assert d.verdict == "departs", d.message
    assert ids[0] == want, (ids, d.message)


def test_keras_formula_by_hand_agrees_even_at_the_edges():
    d, _ = verdict(keras_exact, case_of(*EDGES))
    assert d.verdict == "agrees", d.message


def test_no_catalogued_cause_is_said_honestly():
    d, _ = verdict(off_by_one_percent, case_of(*ROWS_23))
    assert d.verdict == "uncatalogued" and "no catalogued cause" in d.message and not d.matches


def test_a_few_ulp_is_within_the_bound():
    d, _ = verdict(off_by_a_few_ulp, case_of(*ROWS_23))
    assert d.verdict == "agrees" and d.max_ulp == 3


def test_two_departures_at_once_are_both_named():
    def flip_and_sum(y_true, y_pred):
        z = y_true * 0.9 + 0.1 * (1 - y_true)
        return np.sum(np.mean(_terms(z, np.clip(y_pred, 1e-7, 1 - 1e-7)), axis=-1))

    d, ids = verdict(flip_and_sum, case_of(*ROWS_23, label_smoothing=0.1))
    assert d.verdict == "departs" and ids[0] == "smoothing-flip + sum-instead-of-mean"
    assert d.matches[0].departs_at == "smoothing"


def test_a_raising_manual_is_reported():
    def broken(y_true, y_pred):
        raise ZeroDivisionError("oops")

    d, _ = verdict(broken, case_of(*ROWS_23))
    assert d.verdict == "raised" and "ZeroDivisionError" in d.message


def test_the_manual_receives_the_options_it_names():
    seen = {}

    def spy(y_true, y_pred, label_smoothing, sample_weight=None):
        seen.update(ls=label_smoothing, w=sample_weight, dtype=y_pred.dtype)
        return 0.0

    diagnose(spy, case_of(*ROWS_23, weight=[1.0, 2.0], label_smoothing=0.2))
    assert seen["ls"] == 0.2 and list(seen["w"]) == [1.0, 2.0] and seen["dtype"] == np.float32


# -- the catalogue and the inputs -------------------------------------------------------------------------------


def test_catalogue_is_data_with_sources():
    variants = load_variants()
    assert len(variants) >= 20
    for v in variants:
        assert v.formula and v.found_in and v.cause


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[variant]]\nid = "x"\ntitle = "t"\nformula = "f"\ncause = "c"\nfound_in = ["s"]\nsteps = { clip = "sometimes" }', "steps.clip"),
        ('[[variant]]\nid = "x"\ntitle = "t"\nformula = "f"\ncause = "c"\nsteps = { axis = "sum" }', "found_in"),
        ('[[variant]]\nid = "x"\ntitle = "t"\nformula = "f"\ncause = "c"\nfound_in = ["s"]\nsteps = { axis = "sum" }\ncolour = 1', "colour"),
    ],
)
def test_a_bad_catalogue_is_refused(tmp_path, text, message):
    path = tmp_path / "v.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_variants(path)


@pytest.mark.parametrize(
    ("text", "shape"), [("1,0,1", (3,)), ("0.5", ()), ("[[1, 0], [0, 1]]", (2, 2)), ("nan,inf,-inf", (3,))]
)
def test_parse_array(text, shape):
    assert parse_array(text, "--y-true").shape == shape


def test_parse_array_files(tmp_path):
    np.save(tmp_path / "a.npy", np.array([[0.1, 0.9]]))
    (tmp_path / "b.json").write_text("[1, 0]")
    assert parse_array(str(tmp_path / "a.npy"), "x").shape == (1, 2)
    assert parse_array(str(tmp_path / "b.json"), "x").tolist() == [1.0, 0.0]


# -- TensorFlow's side and the command ----------------------------------------------------------------------------


@pytest.mark.tensorflow
def test_explain_with_tensorflow_gives_the_verdict(tf_target):
    e = explain(case_of([1, 0, 1, 0], [0.9, 0.1, 0.6, 0.4], label_smoothing=0.1), target=tf_target)
    assert e.verdict == "pass"
    assert [s.key for s in e.trace.steps] == ["inputs", "ranks", "smoothing", "prediction", "clip", "terms", "axis",
                                              "weights", "reduction"]  # fmt: skip
    json.dumps(e.as_dict())


@pytest.mark.tensorflow
def test_cli_explain_names_the_cause(tf_target):
    from test_cli import run_cli

    done = run_cli("explain", "--y-true", "1,0,1,0", "--y-pred", "0.9,0.1,0.6,0.4", "--label-smoothing", "0.1",
                   "--manual", f"{SEEDS}:seed2_example3")  # fmt: skip
    assert done.returncode == 1, done.stderr
    for text in ("3. label smoothing", "5. clip", "9. reduction", "verdict: pass", "smoothing-flip"):
        assert text in done.stdout
    done = run_cli("explain", "--y-true", "1,0", "--y-pred", "0.9,0.1", "--json", "--no-tensorflow")
    assert done.returncode == 0 and json.loads(done.stdout)["steps"][0]["step"] == "inputs"


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "--y-true", "1,x", "--y-pred", "0.5,0.5"],
        ["explain", "--y-true", "1,0", "--y-pred", "0.5,0.5", "--manual", "nowhere"],
        ["explain", "--y-true", "1,0", "--y-pred", "0.5,0.5", "--manual", "no_such_module_xyz:f"],
        ["explain", "--y-true", "1,0", "--y-pred", "0.5,0.5", "--label-smoothing", "nan"],
        ["explain", "--y-true", "/nonexistent.npy", "--y-pred", "0.5,0.5"],
    ],
    ids=lambda a: " ".join(a[1:])[:40],
)
def test_cli_explain_usage_errors(argv, capsys):
    from harness.cli import main

    assert main([*argv, "--no-tensorflow"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bce-harness: error:") and len(err.strip().splitlines()) == 1
