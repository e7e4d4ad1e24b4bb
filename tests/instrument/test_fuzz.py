"""The fuzz search and replay: planted faults are found, shrunk, saved and replayed; stock TensorFlow is clean.

The planted faults are those of test_fault_injection.py plus three more below, each run through
``fuzz`` with its default budget.  The default pytest (the "quick" and "ci" Hypothesis profiles) runs two
of them, the nightly profile all.  One test runs the command line end to end against a Keras broken in
place (a ``sitecustomize`` that changes its epsilon), so the written reproduction is run against the
broken TensorFlow and against a correct one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from test_fault_injection import FAULTS, _real, probability_bce

from harness.case import Case, Expected, Options, Outcome
from harness.cli import main
from harness.dtypes import round_to
from harness.errors import InputError, UsageError
from harness.fuzz import DEFAULT_EXAMPLES, Finding, explanation, fingerprint, fuzz, save_finding, shard_seed
from harness.generate.saved import load_case
from harness.judge.compare import KINDS, Comparison
from harness.judge.registry import Divergence, Registry, load_registry
from harness.oracle import expected
from harness.oracle.profiles import select_profile
from harness.run.runner import run_cases

REPO = Path(__file__).resolve().parents[2]
SELECTION = select_profile()
REGISTRY = load_registry().for_versions(SELECTION.tensorflow, SELECTION.keras)
NIGHTLY = settings.get_current_profile_name() == "nightly"
keras3_only = pytest.mark.skipif(SELECTION.profile != "keras3", reason="fuzz draws Keras 3 options")


def _case(**changes: Any) -> Case:
    base = Case(
        id="fuzz/x",
        y_true=np.array([[0.0, 1.0], [1.0, 0.0]]),
        y_pred=np.array([[0.25, 0.5], [0.75, 0.5]]),
        true_dtype="float32",
        pred_dtype="float32",
        tags={"family": "fuzz", "regime": "typical", "shape": "BC", "weights": "none"},
    )
    return replace(base, **changes)


# -- fingerprints and explanations (no TensorFlow) -----------------------------------------------------


def test_fingerprint_ignores_values_sizes_and_input_dtypes() -> None:
    a = _case()
    b = _case(y_true=np.ones((5, 3)), y_pred=np.full((5, 3), 0.125), true_dtype="float64", pred_dtype="float64")
    assert fingerprint(a, "tolerance") == fingerprint(b, "tolerance")
    assert len(fingerprint(a, "tolerance")) == 12 and int(fingerprint(a, "tolerance"), 16) >= 0


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"options": Options(from_logits=True)}, id="from_logits"),
        pytest.param({"options": Options(label_smoothing=0.1)}, id="label_smoothing"),
        pytest.param({"options": Options(axis=0)}, id="axis"),
        pytest.param({"options": Options(reduction="sum")}, id="reduction"),
        pytest.param({"options": Options(dtype="float16")}, id="dtype"),
        pytest.param(
            {"sample_weight": np.array(2.0), "tags": {"family": "fuzz", "shape": "BC", "weights": "scalar"}},
            id="weights",
        ),
    ],
)
def test_fingerprint_tells_option_signatures_and_kinds_apart(other: dict[str, Any]) -> None:
    a = _case()
    assert fingerprint(a, "tolerance") != fingerprint(_case(**other), "tolerance")
    assert fingerprint(a, "tolerance") != fingerprint(a, "nan_inf")


def test_fingerprint_takes_none_and_none_string_as_one_reduction_and_checks_the_kind() -> None:
    assert fingerprint(_case(options=Options(reduction=None)), "shape") == fingerprint(
        _case(options=Options(reduction="none")), "shape"
    )
    assert fingerprint(_case(options=Options(label_smoothing=0.3)), "shape") == fingerprint(
        _case(options=Options(label_smoothing=0.7)), "shape"
    )
    with pytest.raises(UsageError, match="kind='bogus'"):
        fingerprint(_case(), "bogus")


def test_explanation_is_any_matching_entry_that_lists_the_kind() -> None:
    shape_only = Divergence("a", "t", "r", ("ev",), frozenset({"shape"}), {"family": "fuzz"})
    nan_inf = Divergence("b", "t", "r", ("ev",), frozenset({"nan_inf"}), {"family": "fuzz"})
    other = Divergence("c", "t", "r", ("ev",), frozenset({"nan_inf"}), {"family": "values"})
    registry = Registry((shape_only, other, nan_inf))
    facets = _case().facets
    assert explanation(registry, facets, "nan_inf") is nan_inf
    assert explanation(registry, facets, "shape") is shape_only
    assert explanation(registry, facets, "tolerance") is None


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"examples": 0}, "examples=0"),
        ({"examples": True}, "examples=True"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": 1.5}, "seed=1.5"),
    ],
    ids=lambda v: str(v),
)
def test_fuzz_checks_its_options(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(UsageError, match=name.replace("(", r"\(")):
        fuzz(object(), Registry(), **kwargs)  # type: ignore[arg-type]


class _ReferenceTarget:
    """A target without TensorFlow that returns the reference's value, rounded to the compute dtype, or
    that value doubled for cases with a sample weight (a planted fault in NumPy, to test the search fast)."""

    name = "reference"

    def __init__(self, *, broken: bool) -> None:
        self.broken = broken

    def run(self, case: Case) -> Outcome:
        exp = expected(case)
        if exp.raises is not None:
            return Outcome(error=f"ValueError: {exp.raises}")
        value = np.asarray(round_to(np.asarray(exp.value, dtype=np.float64), exp.dtype))
        if self.broken and case.sample_weight is not None:
            value = 2 * value
        return Outcome(value=value, dtype=exp.dtype)


class _Recording(_ReferenceTarget):
    """The faithful reference target, keeping the inputs of every case it was asked to run."""

    def __init__(self) -> None:
        super().__init__(broken=False)
        self.seen: list[bytes] = []

    def run(self, case: Case) -> Outcome:
        self.seen.append(json.dumps(case.as_dict(), sort_keys=True).encode())
        return super().run(case)


def test_shards_of_one_search_draw_other_cases_and_repeat() -> None:
    """Each shard of a search with one seed runs with its own seed; its rounds (seed, seed + 1, ...) meet no
    other shard's, the shards' draws differ, and a shard run again draws what it drew before."""
    assert shard_seed(7, None) == 7
    seeds = [shard_seed(7, (k, 4)) for k in range(1, 5)]
    assert all(0 <= s < 2**32 for s in seeds) and seeds == [shard_seed(7, (k, 4)) for k in range(1, 5)]
    rounds = [set(range(s, s + len(KINDS) + 1)) for s in [7, *seeds, shard_seed(8, (1, 4)), shard_seed(7, (1, 2))]]
    assert sum(map(len, rounds)) == len(set().union(*rounds))
    draws = []
    for seed in (seeds[0], seeds[1], seeds[0]):
        target = _Recording()
        fuzz(target, Registry(), examples=10, seed=seed)
        draws.append(target.seen)
    # Hypothesis tries the simplest case of the strategy first whatever the seed: a few draws are shared
    assert draws[0] == draws[2] and len(set(draws[0]) & set(draws[1])) <= len(draws[0]) // 4, len(set(draws[0]) & set(draws[1]))


def test_the_search_shrinks_a_planted_fault_and_finds_nothing_in_a_faithful_target(tmp_path: Path) -> None:
    result = fuzz(_ReferenceTarget(broken=False), Registry(), examples=60, seed=3)
    assert result.findings == () and result.calls >= 60
    result = fuzz(_ReferenceTarget(broken=True), Registry(), examples=60, seed=3)
    assert result.findings, "a doubled weighted loss was not found"
    for finding in result.findings:
        case = finding.case
        assert case.id == f"fuzz/{finding.fingerprint}" and case.sample_weight is not None
        assert case.y_pred.size <= 4, case
        assert finding.comparison.message.splitlines()[1] == f"case: {case.id}"
    saved = save_finding(result.findings[0], out=tmp_path / "out", regressions=tmp_path / "reg", provenance={"seed": 3})
    assert saved.new and saved.repro.name == f"repro_{result.findings[0].fingerprint}.py"
    data = json.loads(saved.regression.read_text())
    assert data["finding"]["seed"] == 3 and data["finding"]["kind"] == result.findings[0].comparison.kind
    loaded = load_case(saved.regression)
    assert loaded.as_dict() == result.findings[0].case.as_dict()
    again = save_finding(result.findings[0], out=tmp_path / "out", regressions=tmp_path / "reg", provenance={"seed": 4})
    assert not again.new and json.loads(saved.regression.read_text())["finding"]["seed"] == 3


@pytest.mark.parametrize(
    "shape, axis, form, weights, expected",
    [
        pytest.param((3, 2, 4), -1, "per_sample", (3,), {(2, 2, 4): (2,), (3, 1, 4): (3,), (3, 2, 3): (3,)}, id="BTC"),
        pytest.param(
            (3, 2, 4), 1, "per_element", (3, 4), {(2, 2, 4): (2, 4), (3, 1, 4): (3, 4), (3, 2, 3): (3, 3)}, id="axis 1"
        ),
        pytest.param((2, 3), 0, "column", (3, 1), {(1, 3): (3, 1), (2, 2): (2, 1)}, id="BC, axis 0"),
    ],
)
def test_one_index_fewer_cuts_the_weights_along_the_same_loss_axis(
    shape: tuple[int, ...], axis: int, form: str, weights: tuple[int, ...], expected: dict[tuple[int, ...], tuple]
) -> None:
    from harness.fuzz import _one_index_fewer
    from harness.generate.regimes import shape_kind

    kind = shape_kind(shape, shape)
    case = _case(
        y_true=np.zeros(shape),
        y_pred=np.full(shape, 0.5),
        options=Options(axis=axis),
        sample_weight=np.ones(weights),
        tags={"family": "fuzz", "shape": kind, "weights": form},
    )
    got = {c.y_pred.shape: c.sample_weight.shape for c in _one_index_fewer(case, shape_kind)}
    assert got == expected


# -- planted faults in TensorFlow ----------------------------------------------------------------------


def relative_bias(tf, o: Options):
    """Every result 2**-16 too large: 128 float32 ULP, a quiet accumulation error."""
    real = _real(tf, o)
    return lambda y, p, sample_weight=None: real(y, p, sample_weight=sample_weight) * (1 + 2.0**-16)


def epsilon_inside_the_log(tf, o: Options):
    """Keras 2's log(p + eps) with Keras 3's clip: the probabilities' losses move by eps / p."""
    return probability_bce(tf, o, lo=1e-7, hi=1.0 - 1e-7, shift=1e-7)


def weights_squared(tf, o: Options):
    real = _real(tf, o)

    def call(y, p, sample_weight=None):
        if sample_weight is None:
            return real(y, p)
        return real(y, p, sample_weight=tf.convert_to_tensor(sample_weight) ** 2)

    return call


PLANTED: dict[str, Callable[..., Any]] = {
    **{name: factory for name, (factory, _kind, _fragment) in FAULTS.items()},
    "relative bias of 2**-16": relative_bias,
    "epsilon inside the log": epsilon_inside_the_log,
    "sample weights squared": weights_squared,
}
# The default pytest runs four faults on a budget of 100 examples and a fixed seed (a few seconds each: found
# within 100, so within the default budget); the nightly profile runs every fault with the default budget
# and a random seed, named in the failure message.
QUICK = ("sum where a mean belongs", "relative bias of 2**-16", "seed smoothing formula", "lower clip lost for p == 0")
EXAMPLES, SEED = (DEFAULT_EXAMPLES, None) if NIGHTLY else (100, 20261122)


def _broken(tf_target, name: str):
    from harness.frameworks import TFTarget

    factory = PLANTED[name]
    return TFTarget(loss_factory=lambda options: factory(tf_target.tf, options))


@keras3_only
@pytest.mark.tensorflow
@pytest.mark.parametrize("name", list(PLANTED))
def test_fuzz_finds_shrinks_and_saves_a_planted_fault(name: str, tf_target, tmp_path: Path) -> None:
    if not NIGHTLY and name not in QUICK:
        pytest.skip("nightly: BCE_HYPOTHESIS_PROFILE=nightly runs every planted fault")
    broken = _broken(tf_target, name)
    result = fuzz(broken, REGISTRY, examples=EXAMPLES, seed=SEED)
    assert result.findings, f"{name}: not found in {result.calls} cases (seed {result.seed})"
    for finding in result.findings:
        case = finding.case
        weights = 0 if case.sample_weight is None else case.sample_weight.size
        assert case.y_pred.size <= 8 and weights <= 8, f"{name}: not shrunk to a handful: {case.as_dict()}"
        saved = save_finding(finding, out=tmp_path / "out", regressions=tmp_path / "regressions")
        replayed = load_case(saved.regression)
        with_fault = run_cases([replayed], broken, REGISTRY, profile=SELECTION.profile).records[0]
        assert with_fault.status == "fail", f"{name}: the saved case does not replay: {with_fault.comparison.message}"
        stock = run_cases([replayed], tf_target, REGISTRY, profile=SELECTION.profile).records[0]
        assert stock.status in ("pass", "xfail"), f"{name}: stock TensorFlow {stock.status}: {stock.comparison.message}"


@keras3_only
@pytest.mark.tensorflow
def test_fuzz_finds_nothing_unregistered_in_stock_tensorflow(tf_target) -> None:
    result = fuzz(tf_target, REGISTRY, examples=2 * EXAMPLES, seed=SEED)
    messages = "\n\n".join(f.comparison.message for f in result.findings)
    assert not result.findings, f"unregistered divergences (seed {result.seed}):\n{messages}"


# -- the command line, against a Keras broken in place --------------------------------------------------


# Under the nightly profile the command's default budget and a random seed; by default 100 and a fixed seed.
FUZZ_ARGS = [] if NIGHTLY else ["--examples", "100", "--seed", "5", "--shard", "2/3"]


def _env(broken_dir: Path | None) -> dict[str, str]:
    paths = [str(broken_dir)] if broken_dir else []
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(REPO)]), "TF_CPP_MIN_LOG_LEVEL": "3"}


@keras3_only
@pytest.mark.tensorflow
def test_cli_fuzz_writes_a_reproduction_that_fails_on_the_broken_keras_only(tmp_path: Path, tf_target) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    # the loss clips with another epsilon than keras.config.epsilon() reports (a configured epsilon is not a
    # fault: the reference reads it, in fuzz as in run)
    from planted import CLIP_WITH_ANOTHER_EPSILON

    (broken / "sitecustomize.py").write_text(CLIP_WITH_ANOTHER_EPSILON)
    out, regressions = tmp_path / "out", tmp_path / "regressions"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "fuzz", *FUZZ_ARGS, "--out", str(out), "--regressions", str(regressions)],
        capture_output=True,
        text=True,
        env=_env(broken),
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "NEW [" in proc.stdout and "again: bce-harness fuzz --seed " in proc.stdout
    if not NIGHTLY:  # the line that repeats the search names the seed of the whole search and the shard
        assert "again: bce-harness fuzz --seed 5 --shard 2/3 --examples 100" in proc.stdout
    scripts = sorted(out.glob("repro_*.py"))
    saved = sorted(regressions.glob("*.json"))
    assert scripts and len(scripts) == len(saved)
    script = scripts[0]
    # the script against the broken Keras and against a correct one, side by side
    runs = {
        name: subprocess.Popen(
            [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for name, env in (("broken", _env(broken)), ("stock", _env(None)))
    }
    (broken_out, broken_err), (stock_out, stock_err) = (runs[name].communicate() for name in ("broken", "stock"))
    assert runs["broken"].returncode == 1 and "DIVERGES" in broken_out, broken_out + broken_err
    assert "actual (TF):" in broken_out and "expected:" in broken_out
    assert runs["stock"].returncode == 0 and "agrees" in stock_out, stock_out + stock_err

    cases = [load_case(f) for f in saved]
    stock = run_cases(cases, tf_target, REGISTRY, profile=SELECTION.profile)
    assert {r.status for r in stock.records} <= {"pass", "xfail"}, [r.comparison.message for r in stock.records]
    from planted import tf_nn_module

    nn = tf_nn_module()
    real = nn.backend
    nn.backend = _OtherEpsilon(real)
    try:
        from harness.frameworks import TFTarget

        with_fault = run_cases(cases, TFTarget(), REGISTRY, profile=SELECTION.profile)
    finally:
        nn.backend = real
    assert {r.status for r in with_fault.records} == {"fail"}


class _OtherEpsilon:
    """Keras's backend module as the loss sees it, but clipping with 1e-6 while config.epsilon() says 1e-7."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def epsilon(self):
        return 1e-6



# -- replay: files that are not cases -------------------------------------------------------------------

GOOD = _case(id="fuzz/abc").as_dict()


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != key}


MALFORMED = [
    pytest.param("{", ("not valid JSON", "line 1"), id="not JSON"),
    pytest.param("[1, 2]", ("JSON list, not an object",), id="a list"),
    pytest.param(json.dumps(_without("y_pred")), ("'y_pred' is missing",), id="missing y_pred"),
    pytest.param(json.dumps({**GOOD, "code": "__import__('os')"}), ("unknown field 'code'",), id="unknown field"),
    pytest.param(json.dumps({**GOOD, "id": 3}), ("id=3",), id="id not a string"),
    pytest.param(json.dumps({**GOOD, "tags": ["x"]}), ("tags=['x'] is not an object",), id="tags not an object"),
    pytest.param(json.dumps({**GOOD, "tags": {"shape": 1}}), ("tags.shape",), id="tag not a string"),
    pytest.param(json.dumps({**GOOD, "y_true": {"shape": [1], "data": ["x"]}}), ("y_true.data[0]",), id="bad number"),
    pytest.param(
        json.dumps({**GOOD, "options": {**GOOD["options"], "label_smoothing": "a"}}),
        ("label_smoothing",),
        id="bad option",
    ),
    pytest.param(
        json.dumps(GOOD).replace('"weight_dtype": "float32"', '"weight_dtype": 5'),
        ("weight_dtype",),
        id="dtype not a string",
    ),
    pytest.param(json.dumps({**GOOD, "finding": 1}), ("finding=1 is not an object",), id="finding not an object"),
    pytest.param(
        json.dumps(GOOD).replace('"data": [0.25', '"data": [NaN'), ("bare NaN", '"nan"'), id="bare NaN constant"
    ),
]


@pytest.mark.parametrize("text, fragments", MALFORMED)
def test_malformed_case_file_is_one_line_naming_file_and_field(
    tmp_path: Path, text: str, fragments: tuple[str, ...]
) -> None:
    path = tmp_path / "case.json"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_case(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message, message


def test_a_good_case_file_round_trips_with_non_finite_numbers(tmp_path: Path) -> None:
    case = _case(y_pred=np.array([[np.nan, np.inf], [-np.inf, 0.5]]), options=Options(from_logits=True))
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case.as_dict()))
    assert '"nan"' in path.read_text()
    assert load_case(path).as_dict() == case.as_dict()


@pytest.mark.parametrize(
    "argv",
    [
        ["fuzz", "--examples", "0"],
        ["fuzz", "--seed", "-1"],
        ["fuzz", "--shard", "3/2"],
        ["fuzz", "--profile", "keras9"],
        ["fuzz", "--loss-factory", "nomodule"],
        ["replay"],
        ["replay", "/nonexistent/case.json"],
    ],
    ids=lambda a: "bce-harness " + " ".join(a),
)
def test_bad_fuzz_and_replay_arguments_are_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_fuzz_without_hypothesis_says_which_extra_to_install(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['hypothesis'] = None\n")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "fuzz"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2 and "bce-harness[fuzz]" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_replay_of_a_malformed_file_or_an_empty_folder_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_without("options")))
    assert main(["replay", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'options'" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["replay", str(empty)]) == 2
    assert "no case file" in capsys.readouterr().err


def test_finding_actual_text() -> None:
    exp = Expected(value=np.array(1.0), bound=np.array(0.0), dtype="float32")
    raised = Finding("f", _case(), exp, Outcome(error="ValueError: no"), Comparison("exception", "m"))
    returned = Finding("f", _case(), exp, Outcome(value=np.array([1.5]), dtype="float32"), Comparison("tolerance", "m"))
    assert raised.actual == "ValueError: no" and returned.actual == "[1.5] (float32)"


def test_the_search_judges_against_the_epsilon_and_floatx_the_targets_keras_has() -> None:
    """A configured epsilon (keras.json, or a call) is not a fault: fuzz reads it as run does, from the target
    itself or from the versions its workers sent."""
    from harness.fuzz import _Search

    class Pooled:  # as PooledTarget: no keras_settings, the worker's versions
        def versions(self):
            return {"keras_epsilon": 1e-5, "keras_floatx": "float64"}

    class InProcess:
        def keras_settings(self):
            return {"epsilon": 1e-6, "floatx": "float32"}

    assert _Search(Pooled(), REGISTRY, "keras3", expected)._settings() == {"epsilon": 1e-5, "floatx": "float64"}
    assert _Search(InProcess(), REGISTRY, "keras3", expected)._settings() == {"epsilon": 1e-6, "floatx": "float32"}
