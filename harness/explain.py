"""``bce-harness explain``: the steps Keras takes on *your* inputs, and where a hand-written BCE parts from them.

The reference's steps are the oracle's own functions called one at a time (``harness/oracle/keras3.py``, or
``keras2.py`` under that profile): input conversion, rank reconciliation, label smoothing, the logits or
probabilities, the clip, the elementwise terms, the mean over ``axis``, the weights and the reduction.  Nothing
here restates that math; the last step's value is checked against ``harness.oracle.expected`` itself.

A user's function (``--manual MODULE:FUNCTION`` or ``FILE.py:FUNCTION``) runs on the same inputs.  When its
result is not the reference's within the error bound, every variant of the catalogue
(``harness/data/manual_variants.toml``: the formulas people write, each with where it is commonly found) is
computed on the same inputs by the same pipeline with its steps replaced, singly and then in pairs; the
variants the user's result reproduces are the diagnosis, and the first step where such a variant's values
leave the reference's is where the user's code departs.  A result no variant reproduces is said to have no
catalogued cause, with how far it is from the reference.

May import: every floor below the commands (the target for TensorFlow's own result, lazily).
"""

from __future__ import annotations

import itertools
import json
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.case import API_LOSS_CLASS, Case, Expected, Options, Outcome
from harness.dtypes import INPUT_DTYPES, WORK, float_format, round_to, ulp_distance
from harness.errors import InputError, UsageError
from harness.jsonio import encode_array
from harness.oracle import PROFILES
from harness.oracle import expected as oracle_expected
from harness.oracle import tolerance as tol
from harness.oracle.keras3 import EPSILON
from harness.packagedata import data_path
from harness.run.sandbox import Call, Ran, load_function, run_calls, run_isolated

__all__ = [
    "DEFAULT_TIMEOUT",
    "STEPS",
    "Diagnosis",
    "Explanation",
    "Settings",
    "Step",
    "Variant",
    "build_case",
    "diagnose",
    "explain",
    "installed_settings",
    "load_manual",
    "load_variants",
    "parse_array",
    "reference_steps",
    "render_text",
]

# The steps, in the order Keras takes them; a variant replaces some of them (manual_variants.toml).
STEPS: tuple[tuple[str, str], ...] = (
    ("inputs", "input conversion"),
    ("ranks", "rank reconciliation"),
    ("smoothing", "label smoothing"),
    ("prediction", "logits or probabilities"),
    ("clip", "clip"),
    ("terms", "elementwise terms"),
    ("axis", "mean over axis"),
    ("weights", "weights and mask"),
    ("reduction", "reduction"),
)
TITLES = dict(STEPS)
ORDER = {key: i for i, (key, _) in enumerate(STEPS)}
# What a catalogue variant may put in place of a step (see the header of manual_variants.toml).
STEP_CHOICES: dict[str, tuple[str, ...]] = {
    "ranks": ("broadcast",),
    "smoothing": ("flip", "ignored"),
    "prediction": ("raw", "sigmoid_clip", "extra_sigmoid"),
    "clip": ("none",),  # or a number: the epsilon of the clip
    "terms": ("eps_in_log", "log_floor"),
    "axis": ("sum", "all"),
    "weights": ("broadcast", "ignored"),
    "reduction": ("sum", "sum_over_batch_size", "mean_with_sample_weight", "batch", "nonzero"),
}
WHEN_KEYS = ("from_logits", "reduction", "weighted", "smoothed")
# torch.nn.BCELoss: "our solution is that BCELoss clamps its log function outputs to be greater than or equal
# to -100" (PyTorch 2.x docs).
LOG_FLOOR = -100.0


# -- the catalogue ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way people write BCE by hand: its formula, where it is found, and the steps it replaces."""

    id: str
    title: str
    formula: str
    found_in: tuple[str, ...]
    cause: str
    steps: Mapping[str, Any]
    when: Mapping[str, Any] = field(default_factory=dict)
    f64_clip: bool = False  # tried with the clip's bounds in float64, as hand-written NumPy holds them


    def applies(self, case: Case) -> bool:
        """Whether the variant can depart from Keras on a call with these options."""
        o = case.options
        have = {
            "from_logits": o.from_logits,
            "reduction": o.reduction if o.reduction is not None else "none",
            "weighted": case.sample_weight is not None,
            "smoothed": float(o.label_smoothing) > 0,
        }
        for key, want in self.when.items():
            wants = want if isinstance(want, list) else [want]
            if have[key] not in wants:
                return False
        return True

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "formula": self.formula, "found_in": list(self.found_in),
                "cause": self.cause, "steps": dict(self.steps)}  # fmt: skip


def _variant(raw: Any, where: str) -> list[Variant]:
    if not isinstance(raw, dict):
        raise InputError(f"{where} is not a table")
    unknown = set(raw) - {"id", "title", "formula", "found_in", "cause", "steps", "when"}
    if unknown:
        raise InputError(f"{where} has unknown field {min(unknown)!r}")
    for key in ("id", "title", "formula", "cause"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise InputError(f"{where}.{key} is missing or empty")
    found = raw.get("found_in")
    if not isinstance(found, list) or not found or not all(isinstance(f, str) for f in found):
        raise InputError(f"{where}.found_in must be a non-empty list of strings")
    steps, when = raw.get("steps"), raw.get("when", {})
    if not isinstance(steps, dict) or not steps:
        raise InputError(f"{where}.steps must be a non-empty table")
    if not isinstance(when, dict) or set(when) - set(WHEN_KEYS):
        raise InputError(f"{where}.when must be a table of {', '.join(WHEN_KEYS)}")
    lists = {k: v for k, v in steps.items() if isinstance(v, list)}
    for key, value in steps.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if key not in STEP_CHOICES or not (v in STEP_CHOICES[key] or (key == "clip" and _is_eps(v))):
                raise InputError(f"{where}.steps.{key}={v!r} is not a known replacement (manual_variants.toml header)")
    if len(lists) > 1:
        raise InputError(f"{where}.steps: only one step may list alternatives")
    base = {"id": raw["id"], "title": raw["title"], "formula": raw["formula"], "found_in": tuple(found),
            "cause": " ".join(raw["cause"].split()), "when": dict(when)}  # fmt: skip
    if not lists:
        return [Variant(steps=dict(steps), **base)]
    (key, values), = lists.items()
    out = []
    for v in values:  # one variant per alternative, named by it: clip-other-epsilon(1e-15)
        named = {**base, "id": f"{raw['id']}({v:g})" if isinstance(v, float) else f"{raw['id']}({v})"}
        out.append(Variant(steps={**steps, key: v}, **named))
    return out


def _is_eps(v: Any) -> bool:
    return isinstance(v, float) and 0 < v < 0.5


def load_variants(path: str | Path | None = None) -> tuple[Variant, ...]:
    """The catalogue: package data by default (harness.packagedata, so a wheel has it)."""
    path = data_path("manual_variants.toml") if path is None else path
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the catalogue ({exc.strerror or exc})") from None
    where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not valid TOML ({exc})") from None
    variants: list[Variant] = []
    for i, raw in enumerate(data.get("variant", [])):
        variants.extend(_variant(raw, f"{where}: variant[{i}]"))
    ids = [v.id for v in variants]
    if len(set(ids)) != len(ids):
        raise InputError(f"{where}: a variant id is used twice")
    return tuple(variants)


# -- Keras's settings -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The Keras configuration the reference is judged under: keras.config.epsilon() and floatx()."""

    epsilon: float = EPSILON
    floatx: str = "float32"
    source: str = "Keras's defaults"


DEFAULT_SETTINGS = Settings()


def installed_settings(target: Any = None) -> Settings:
    """The installed Keras's epsilon and floatx, as ``run`` and ``fuzz`` judge under them: the target's Keras
    when one is loaded, else keras.json as Keras reads it at import ($KERAS_HOME, else ~/.keras;
    keras/src/backend/config.py), else the defaults."""
    if target is not None and hasattr(target, "keras_settings"):
        got = target.keras_settings()
        return Settings(float(got["epsilon"]), str(got["floatx"]), "the installed Keras")
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = Path(home) / "keras.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_SETTINGS
    if not isinstance(data, dict):
        return DEFAULT_SETTINGS
    eps, floatx = data.get("epsilon", EPSILON), data.get("floatx", "float32")
    if not isinstance(eps, (int, float)) or not 0 < eps < 0.5 or floatx not in ("float16", "bfloat16", "float32", "float64"):
        raise InputError(f"{path}: epsilon={eps!r} or floatx={floatx!r} is not a setting Keras accepts")
    return Settings(float(eps), str(floatx), str(path))


# -- the steps ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Step:
    """One step Keras takes: what the documentation says it does, and the values it produces.

    ``main`` names the value a departure is judged on (the step's output)."""

    key: str
    rule: str
    values: Mapping[str, Any]
    main: str | None = None

    @property
    def title(self) -> str:
        return TITLES[self.key]

    def output(self) -> np.ndarray | None:
        return None if self.main is None else np.asarray(self.values[self.main])

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.key, "title": self.title, "rule": self.rule, "main": self.main,
                "values": {k: _json_value(v) for k, v in self.values.items()}}  # fmt: skip


def _json_value(v: Any) -> Any:
    if isinstance(v, (np.ndarray, np.generic)):
        return encode_array(np.asarray(v, dtype=np.float64))
    return v


@dataclass(frozen=True, eq=False)
class Trace:
    """A pipeline run: its steps, and its value and bound (or why the call must raise)."""

    steps: tuple[Step, ...]
    value: np.ndarray | None
    bound: np.ndarray | None
    raises: str | None
    dtype: str

    def step(self, key: str) -> Step | None:
        return next((s for s in self.steps if s.key == key), None)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x))).astype(WORK)


def _w(x: float) -> Any:
    return WORK(x)


def _pipeline(case: Case, profile: str, swap: Mapping[str, Any] | None = None, *, settings: Settings = DEFAULT_SETTINGS) -> Trace:
    """Keras's steps on ``case`` under ``profile``, each step the oracle's function; ``swap`` replaces steps
    with a catalogue variant's (the reference is ``swap=None``)."""
    swap = swap or {}
    sem = PROFILES[profile](epsilon=settings.epsilon, floatx=settings.floatx)
    eps = sem.epsilon
    api = case.api
    loss_class = api == API_LOSS_CLASS
    o = case.options
    c = sem.compute_dtype(case) if loss_class else case.pred_dtype
    m = tol.error_model(c)
    steps: list[Step] = []

    def done(raises: str | None = None, value: Any = None, bound: Any = None) -> Trace:
        return Trace(tuple(steps), value, bound, raises, c)

    y = round_to(case.y_true, c).astype(WORK)
    p, dp = sem.predictions(case, c, m)
    eps_lo = round_to(eps, c)
    eps_hi = round_to(1.0 - eps, c)
    steps.append(Step("inputs", (
        f"Loss.__call__ converts y_true and y_pred to the compute dtype {c} "
        + ("(the loss's dtype option, else keras.config.floatx())" if loss_class and profile == "keras3"
           else "(y_pred's dtype; y_true is cast to it)")
        + f"; epsilon = keras.config.epsilon() = {eps:g} is {float(eps_lo):.9g} and 1 - epsilon is {float(eps_hi):.9g} in {c}"
    ), {"y_true": case.y_true, "y_pred": case.y_pred, f"y_true as {c}": y, f"y_pred as {c}": p}, f"y_pred as {c}"))  # fmt: skip
    raises = sem.option_error(case) if loss_class else None
    if raises:
        return done(raises)
    if not loss_class:
        if api != "binary_crossentropy" and case.true_dtype != case.pred_dtype:
            return done(f"{api} takes labels and predictions of one dtype")
        if case.y_true.shape != case.y_pred.shape:
            return done(f"{api}: y_true shape {case.y_true.shape} is not y_pred shape {case.y_pred.shape}")
    elif swap.get("ranks") == "broadcast":
        try:
            y, p = (a.astype(WORK) for a in np.broadcast_arrays(y, p))
        except ValueError:
            return done(f"y_true shape {y.shape} and y_pred shape {p.shape} do not broadcast")
        steps.append(Step("ranks", "y_true and y_pred broadcast against each other",
                          {"y_true shape": str(y.shape), "y_pred shape": str(p.shape)}))
    else:
        y, p, raises = sem.reconcile_ranks(y, p)
        rule = ("squeeze_or_expand_to_same_rank: ranks that differ by one trailing size-1 axis are made equal "
                "(Keras 3 expands a rank-1 side, Keras 2 only squeezes); then the shapes must match")  # fmt: skip
        steps.append(Step("ranks", rule, {"y_true shape": str(y.shape), "y_pred shape": str(p.shape)}))
        if raises:
            return done(raises)

    # label smoothing
    ls = float(o.label_smoothing) if api in (API_LOSS_CLASS, "binary_crossentropy") else 0.0
    how = swap.get("smoothing")
    if how == "flip":
        z = y * (1 - _w(ls)) + _w(ls) * (1 - y)
    elif how == "ignored":
        z = y
    else:
        z = sem.smooth(y, ls)
    dz = tol.smoothing_error(y, ls, m)
    steps.append(Step("smoothing", f"z = y * (1 - ls) + 0.5 * ls with ls = {ls:g} (binary_crossentropy docstring)"
                      + ("" if ls else ": nothing to smooth"), {"z": z}, "z"))  # fmt: skip

    # logits or probabilities
    logits = o.from_logits or api == "nn.sigmoid_cross_entropy_with_logits"
    how = swap.get("prediction")
    if how == "extra_sigmoid":
        p = _sigmoid(p)
    elif how in ("raw", "sigmoid_clip") and logits:
        p = _sigmoid(p) if how == "sigmoid_clip" else p
        logits = False
    if logits:
        rule = ("from_logits=True: y_pred are logits, used as they are in the stable form "
                "max(x, 0) - x * z + log(1 + exp(-|x|)) (tf.nn.sigmoid_cross_entropy_with_logits); no clip")  # fmt: skip
        steps.append(Step("prediction", rule, {"logits": p}, "logits"))
    else:
        if profile == "keras3":
            rule = ("from_logits=False: y_pred are probabilities.  Keras 3 recovers logits only from the output of a "
                    "sigmoid op (backend nn.binary_crossentropy reads output._keras_logits or a Sigmoid op); a plain "
                    "tensor, as here, is used as it is")  # fmt: skip
        else:
            rule = ("from_logits=False: y_pred are probabilities.  Keras 2 (tf_keras backend.binary_crossentropy) "
                    "recovers logits from output._keras_logits, or in a graph from the input of a Sigmoid op; an "
                    "eager tensor, as here, is used as it is")  # fmt: skip
        steps.append(Step("prediction", rule, {"p": p}, "p"))

    # the clip and the elementwise terms
    if logits:
        elem, err = sem.logit_loss(z, p), tol.logit_error(z, dz, p, m)
        steps.append(Step("terms", "z * softplus(-x) + (1 - z) * softplus(x), the limit for an infinite logit",
                          {"terms": elem}, "terms"))  # fmt: skip
    else:
        clip, terms = swap.get("clip"), swap.get("terms")
        if clip is None:
            pc = sem.clip(p, c)
            clip_rule = (f"p clipped to [epsilon, 1 - epsilon] = [{float(eps_lo):.9g}, {float(eps_hi):.9g}], the bounds "
                         f"as {c} holds them (backend nn.binary_crossentropy: clip_by_value(output, epsilon(), 1 - epsilon()))")  # fmt: skip
        elif clip == "none":
            pc, clip_rule = p, "no clip"
        else:
            pc = np.clip(p, _w(clip), _w(1.0 - clip))  # the bounds as Python floats hold them (float64)
            clip_rule = f"p clipped to [{clip:g}, 1 - {clip:g}] in float64"
        steps.append(Step("clip", clip_rule, {"p clipped": pc}, "p clipped"))
        if clip is None and terms is None:  # the reference: the profile's own terms, from the unclipped p
            elem, err = sem.probability_terms(z, dz, p, c, m)
            if dp is not None:
                err = err + tol.input_error(z, sem.clip(p, c), np.reshape(dp, p.shape), m)
            term_rule = ("-(z * log(p) + (1 - z) * log(1 - p)) on the clipped p, 0 * log(0) = 0" if profile == "keras3"
                         else "-(z * log(p + epsilon) + (1 - z) * log(1 - p + epsilon)) on the clipped p (Keras 2 backend.py)")  # fmt: skip
        else:
            elem, err = _variant_terms(terms or ("eps_in_log" if profile == "keras2" else None), z, pc, eps), np.zeros(pc.shape, WORK)
            term_rule = {"eps_in_log": f"-(z * log(p + {eps:g}) + (1 - z) * log(1 - p + {eps:g}))",
                         "log_floor": "-(z * max(log(p), -100) + (1 - z) * max(log(1 - p), -100))",
                         None: "-(z * log(p) + (1 - z) * log(1 - p))"}[terms]  # fmt: skip
        steps.append(Step("terms", term_rule, {"terms": elem}, "terms"))

    if api in ("ops.binary_crossentropy", "nn.sigmoid_cross_entropy_with_logits"):
        return done(value=elem, bound=err)

    # the mean over axis
    ndim = elem.ndim
    if ndim == 0 or not -ndim <= o.axis < ndim:
        return done(f"axis={o.axis} is out of range for rank {ndim}")
    how = swap.get("axis")
    if how == "sum":
        loss, loss_err = np.sum(elem, axis=o.axis).astype(WORK), np.zeros(np.sum(elem, axis=o.axis).shape, WORK)
        axis_rule = f"sum over axis {o.axis}"
    elif how == "all":
        loss, loss_err = elem, err
        axis_rule = "no mean over the axis: every element goes on to the weights and one mean"
    else:
        loss, loss_err = sem.mean_over_axis(elem, err, o.axis, m)
        axis_rule = (f"mean over axis={o.axis} ({elem.shape[o.axis]} terms): the per-sample loss, shape "
                     f"{loss.shape} (\"Returns: ... shape = [batch_size, d0, .. dN-1]\")")  # fmt: skip
    steps.append(Step("axis", axis_rule, {"per-sample loss": loss}, "per-sample loss"))
    if not loss_class:
        return done(value=loss, bound=loss_err)

    # weights (the explain command sets no Keras mask: one comes from a Masking or Embedding layer)
    if swap.get("weights") == "ignored":
        weights, raises = None, None
    elif swap.get("weights") == "broadcast" and case.sample_weight is not None:
        try:
            loss, loss_err, weights = np.broadcast_arrays(loss, loss_err, round_to(case.sample_weight, c).astype(WORK))
        except ValueError:
            return done(f"sample_weight shape {case.sample_weight.shape} does not broadcast to {loss.shape}")
        raises = None
    else:
        weights, raises = sem.align_weights(case, loss.shape, c)
    if raises:
        return done(raises)
    wrule = ("no sample_weight" if weights is None else
             "sample_weight broadcast to the per-sample loss: a scalar scales, [batch_size] scales each sample, "
             "a broadcastable shape each element (Loss docs); converted to the compute dtype")  # fmt: skip
    wvals: dict[str, Any] = {} if weights is None else {"weights": weights}
    steps.append(Step("weights", wrule + "; no Keras mask", wvals, None if weights is None else "weights"))

    # the reduction
    red = o.reduction
    how = swap.get("reduction")
    if how == "all" or swap.get("axis") == "all":
        value, bound = sem.reduce(loss, loss_err, weights, "sum_over_batch_size", m)
        red_rule = "the mean of every weighted element"
    elif how == "batch":
        total, bound = sem.reduce(loss, loss_err, weights, "sum", m)
        batch = loss.shape[0] if loss.ndim else 1
        value = np.asarray(total / WORK(max(batch, 1)), dtype=WORK)
        red_rule = f"the weighted sum divided by the batch size {batch}"
    elif how == "nonzero" and weights is not None:
        total, bound = sem.reduce(loss, loss_err, weights, "sum", m)
        count = int(np.count_nonzero(np.broadcast_to(weights, loss.shape)))
        value = np.asarray(total / WORK(count) if count else WORK(0), dtype=WORK)
        red_rule = f"the weighted sum divided by the number of nonzero weights, {count}"
    else:
        used = how if how is not None else red
        value, bound = sem.reduce(loss, loss_err, weights, used, m)
        red_rule = _reduction_rule(used, loss, weights)
    steps.append(Step("reduction", red_rule, {"result": value}, "result"))
    return done(value=value, bound=bound)


def _variant_terms(terms: str | None, z: np.ndarray, pc: np.ndarray, eps: float) -> np.ndarray:
    """The elementwise terms of a catalogue variant on already-clipped (or unclipped) probabilities, as
    hand-written code computes them: plain IEEE products, so an unclipped 0 * log(0) is NaN, not Keras's 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if terms == "eps_in_log":
            e = _w(eps)
            t1, t2 = z * np.log(pc + e), (1 - z) * np.log(1 - pc + e)
        elif terms == "log_floor":
            t1 = z * np.maximum(np.log(pc), _w(LOG_FLOOR))
            t2 = (1 - z) * np.maximum(np.log1p(-pc), _w(LOG_FLOOR))
        else:
            t1, t2 = z * np.log(pc), (1 - z) * np.log1p(-pc)
        return (-(t1 + t2)).astype(WORK)


def _reduction_rule(red: str | None, loss: np.ndarray, weights: np.ndarray | None) -> str:
    if red in (None, "none"):
        return "reduction='none': the per-sample loss (times the weights) as it is"
    if red == "sum":
        return "reduction='sum': the sum of the weighted per-sample losses"
    if red == "mean_with_sample_weight" and weights is not None:
        return f"reduction='mean_with_sample_weight': the weighted sum divided by the weights' sum {float(np.sum(weights)):.9g}"
    return (f"reduction={red!r}: the weighted sum divided by the number of elements of the per-sample loss, "
            f"{loss.size} (reduce_values: ops.prod(ops.shape(values))), 0 for a zero divisor")  # fmt: skip


def reference_steps(case: Case, profile: str = "keras3", *, settings: Settings = DEFAULT_SETTINGS) -> Trace:
    """Keras's steps on ``case``; its last value is ``harness.oracle.expected``'s, or an internal error says why not."""
    if case.api == "metrics.BinaryCrossentropy" or case.grad is not None or case.mask is not None or case.producer:
        raise UsageError("explain covers the losses' values, not metrics, gradients, masks or producers")
    if case.training is not None or case.config is not None or case.row_lengths is not None:
        raise UsageError("explain covers one call of a loss with Keras's default configuration on dense inputs, "
                         "not training loops, replicas, other configurations or ragged inputs")  # fmt: skip
    if case.api == "backend.binary_crossentropy":
        raise UsageError("explain covers the losses' documented pipeline, not tf.keras.backend.binary_crossentropy")
    if profile not in PROFILES:
        raise UsageError(f"profile={profile!r} is not one of {', '.join(PROFILES)}")
    trace = _pipeline(case, profile, settings=settings)
    exp = oracle_expected(case, profile=profile, epsilon=settings.epsilon, floatx=settings.floatx)
    same = (exp.raises is None) == (trace.raises is None)
    if same and exp.raises is None:
        same = np.array_equal(np.asarray(exp.value), np.asarray(trace.value), equal_nan=True)
    if not same:
        raise RuntimeError(f"explain's steps ended at {trace.value!r}/{trace.raises!r}, the oracle at {exp.value!r}/{exp.raises!r}")
    return trace


# -- the user's own implementation --------------------------------------------------------------------------

MANUAL_KWARGS = ("from_logits", "label_smoothing", "axis", "reduction", "sample_weight")
# The names a prediction and a label go by in the signatures people write.  A function whose first parameter
# has a prediction's name and whose second has a label's takes them in the other order than Keras's losses
# (torch.nn.functional.binary_cross_entropy(input, target), sklearn's log_loss(y_true, y_pred) the same as Keras).
PRED_NAMES = frozenset({"y_pred", "pred", "preds", "prediction", "predictions", "output", "outputs", "logits", "logit",
                        "p", "y_hat", "yhat", "probs", "probabilities", "input", "inputs", "x", "scores", "a"})  # fmt: skip
TRUE_NAMES = frozenset({"y_true", "true", "target", "targets", "label", "labels", "y", "gt", "ground_truth", "truth"})
DEFAULT_TIMEOUT = 60.0  # seconds a --manual function gets, its import included (--manual-timeout)


def load_manual(spec: str) -> Callable[..., Any]:
    """The function named ``MODULE:FUNCTION`` or ``path/to/file.py:FUNCTION``, imported into this process (the
    command itself runs a ``--manual`` function in a child process: ``diagnose`` with the name)."""
    return load_function(spec)


def _numpy_input(a: np.ndarray, dtype: str) -> np.ndarray:
    """An input as the user's code receives it: a NumPy array of its dtype (bfloat16 as float32)."""
    return np.asarray(a).astype({"bfloat16": "float32", "bool": "bool"}.get(dtype, dtype))


def _calls(case: Case) -> list[Call]:
    """The calls a diagnosis makes: the function as Keras's losses are called (y_true, y_pred, and the options its
    signature names); the two arrays the other way round if its parameters are named so; and, if it raises on
    inputs of a narrower dtype, the same values as float64."""
    o = case.options

    def inputs(dt: str | None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        w = None if case.sample_weight is None else _numpy_input(case.sample_weight, dt or case.weight_dtype)
        offered = {"from_logits": o.from_logits, "label_smoothing": o.label_smoothing, "axis": o.axis,
                   "reduction": o.reduction, "sample_weight": w}  # fmt: skip
        return _numpy_input(case.y_true, dt or case.true_dtype), _numpy_input(case.y_pred, dt or case.pred_dtype), offered

    y, p, offered = inputs(None)
    calls = [Call((y, p), offered), Call((p, y), offered, "if_names", (PRED_NAMES, TRUE_NAMES))]
    if "float64" not in (case.true_dtype, case.pred_dtype) or case.true_dtype != case.pred_dtype:
        y64, p64, offered64 = inputs("float64")
        calls.append(Call((y64, p64), offered64, "if_first_raised"))
    return calls


def run_manual(fn: Callable[..., Any], case: Case) -> tuple[np.ndarray | None, str, str | None]:
    """The user's result as float64, its dtype name, or the error it raised (in this process).  The function gets
    y_true and y_pred, and those of from_logits, label_smoothing, axis, reduction and sample_weight its signature
    names."""
    (r,) = run_calls(fn, _calls(case)[:1]).results
    assert r is not None
    return r.value, r.dtype, r.error


@dataclass(frozen=True)
class Match:
    """A pipeline (the reference or a variant's) whose step output the user's result reproduces."""

    variants: tuple[Variant, ...]  # () for the reference itself
    step: str  # the step whose output it is: "reduction" for the final result
    departs_at: str | None  # the first step where the variant's values leave the reference's
    score: float  # the largest |user - candidate| / tolerance; <= 1 reproduces

    def as_dict(self) -> dict[str, Any]:
        return {"variants": [v.as_dict() for v in self.variants], "step": self.step, "departs_at": self.departs_at,
                "score": self.score}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Diagnosis:
    """What the user's function returned, and why it differs from the reference if it does.

    ``verdict``: "agrees"; "departs" (a catalogued cause); "shape" (a result of another shape, no catalogued
    cause); "uncatalogued"; "raised"; "ended" (the function hung, exited or crashed its process)."""

    verdict: str
    message: str
    value: np.ndarray | None = None
    dtype: str = ""
    matches: tuple[Match, ...] = ()
    max_abs: float | None = None
    max_ulp: int | None = None
    distance: str = ""  # |manual - reference| in words: a number of ULP, or NaN/inf/shape where they differ
    warnings: tuple[str, ...] = ()
    output: str = ""  # what the function printed (the first bytes of it)
    output_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "message": self.message, "value": _json_value(self.value) if self.value is not None else None,
                "dtype": self.dtype, "matches": [m.as_dict() for m in self.matches],
                "max_abs": None if self.max_abs is None or not np.isfinite(self.max_abs) else self.max_abs,
                "distance": self.distance, "max_ulp": self.max_ulp, "warnings": list(self.warnings),
                "output": self.output, "output_bytes": self.output_bytes}  # fmt: skip


def _score(u: np.ndarray, v: np.ndarray | None, bound: np.ndarray | None, dtype: str) -> float:
    """max |u - v| / (bound + 4 ULP of the user's dtype at v); inf where NaN/inf places or shapes differ.
    Shapes that differ only by size-1 axes are compared squeezed: a (3, 1) answer to a (3,) loss is its value."""
    if v is None:
        return float("inf")
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=WORK)
    b = np.zeros(v.shape, dtype=WORK) if bound is None else np.broadcast_to(np.asarray(bound, dtype=WORK), v.shape)
    if u.shape != v.shape:
        if u.size != v.size or np.squeeze(u).shape != np.squeeze(v).shape:
            return float("inf")
        u, v, b = np.squeeze(u), np.squeeze(v), np.squeeze(b)
    if u.size == 0:
        return 0.0
    nan_u, nan_v = np.isnan(u), np.isnan(v)
    if (nan_u != nan_v).any():
        return float("inf")
    inf_u, inf_v = np.isinf(u), np.isinf(v)
    if (inf_u != inf_v).any() or (np.sign(u[inf_u]) != np.sign(v[inf_v].astype(np.float64))).any():
        return float("inf")
    keep = ~(nan_u | inf_u)
    if not keep.any():
        return 0.0
    fmt = float_format(dtype)
    spacing = np.maximum(np.abs(v[keep]).astype(np.float64) * 2 * fmt.unit_roundoff, fmt.smallest_subnormal)
    tol_ = np.where(np.isfinite(b[keep]), b[keep], 0).astype(np.float64) + 4 * spacing
    diff = np.abs(u[keep] - v[keep].astype(np.float64))
    return float(np.max(diff / tol_))


def _labels(step: Step) -> dict[str, str]:
    return {k: v for k, v in step.values.items() if isinstance(v, str)}


def _departure(trace: Trace, ref: Trace) -> str | None:
    """The first step whose output (or, for rank reconciliation, whose shapes) differs between a variant's trace
    and the reference's: where the variant's departure starts."""
    for step in trace.steps:
        other = ref.step(step.key)
        if other is None:
            return step.key
        if step.key == "ranks" and _labels(step) != _labels(other):
            return step.key
        a, b = step.output(), other.output()
        if a is None and b is None:
            continue
        if a is None or b is None or a.size != b.size or step.main != other.main:  # (logits read as probabilities)
            return step.key
        a, b = a.reshape(-1), b.reshape(-1)  # (B, 1) terms not yet averaged hold the (B,) means' numbers
        with np.errstate(invalid="ignore"):
            if not np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-12, atol=0, equal_nan=True):
                return step.key
    return None


def _twin(v: Variant, eps: float) -> Variant:
    """Hand-written code clips at eps and 1 - eps in float64, Keras at those bounds as the compute dtype holds
    them (1 - 1e-7 is 0.99999988 in float32): each variant that keeps Keras's clip is also tried with float64's."""
    return replace(v, steps={**v.steps, "clip": eps}, f64_clip=True)


Candidate = tuple[tuple[Variant, ...], Trace]
EXACT = 1e-3  # a score this small: the result is the candidate's to its last digits, not merely within the bound


def _candidates(case: Case, profile: str, variants: Sequence[Variant], settings: Settings) -> list[Candidate]:
    singles = [v for v in variants if v.applies(case)]
    twins = [_twin(v, settings.epsilon) for v in singles
             if "clip" not in v.steps and not (case.options.from_logits and "prediction" not in v.steps)]  # fmt: skip
    return [((v,), _pipeline(case, profile, v.steps, settings=settings)) for v in singles + twins]


def _pairs(case: Case, profile: str, variants: Sequence[Variant], settings: Settings) -> list[Candidate]:
    singles = [v for v in variants if v.applies(case)]
    out = []
    for a, b in itertools.combinations(singles, 2):
        if set(a.steps) & set(b.steps):
            continue
        out.append(((a, b), _pipeline(case, profile, {**a.steps, **b.steps}, settings=settings)))
    return out


def diagnose(
    fn: Callable[..., Any] | str, case: Case, *, profile: str = "keras3", variants: Sequence[Variant] | None = None,
    settings: Settings = DEFAULT_SETTINGS, timeout: float = DEFAULT_TIMEOUT,
) -> Diagnosis:  # fmt: skip
    """Run the user's ``fn`` on ``case``'s inputs and say whether, where and why it parts from the reference.

    ``fn`` named by a string (``MODULE:FUNCTION`` or ``FILE.py:FUNCTION``) runs in a child process with
    ``timeout`` seconds (harness.run.sandbox): a hang, an exit or a crash of it is a verdict, "ended"; a
    function object runs here."""
    ref = reference_steps(case, profile, settings=settings)
    variants = load_variants() if variants is None else variants
    calls = _calls(case)
    ran = run_isolated(fn, calls, timeout=timeout) if isinstance(fn, str) else run_calls(fn, calls)
    warnings = list(_signature_warnings(ran, ref, case))
    first = ran.results[0]
    if first is not None and ran.ended:
        warnings.append(f"after its first call your function {ran.ended}")
    extra = {"output": ran.output, "output_bytes": ran.output_bytes}
    if first is None:
        msg = f"your function {ran.ended or 'gave no result'}: no result to judge"
        return Diagnosis("ended", msg, warnings=tuple(warnings), **extra)
    if first.error is not None:
        retry = ran.results[2] if len(ran.results) > 2 else None
        if retry is not None and retry.error is None:
            warnings.append(f"on the same values as float64 it returns {_fmt(retry.value)}: judge that with --true-dtype "
                            "float64 --pred-dtype float64 (and --weight-dtype float64); Keras's inputs are "
                            f"{case.pred_dtype}, so pure-Python or float64-only code must convert them first")  # fmt: skip
        if ref.raises is not None:
            return Diagnosis("agrees", f"raised, as Keras must ({ref.raises}): {first.error}", warnings=tuple(warnings), **extra)
        return Diagnosis("raised", f"your function raised {first.error}; Keras returns a value", warnings=tuple(warnings), **extra)
    d = _judge(first.value, first.dtype, case, ref, profile, variants, settings)
    return replace(d, warnings=tuple(warnings) + d.warnings, **extra)


def _signature_warnings(ran: Ran, ref: Trace, case: Case) -> list[str]:
    out = []
    params = ran.params
    if len(params) >= 2 and params[0] in PRED_NAMES and params[1] in TRUE_NAMES:
        swapped = ran.results[1]
        agrees = (swapped is not None and swapped.error is None and ref.raises is None
                  and _score(swapped.value, ref.value, ref.bound, swapped.dtype) <= 1)  # fmt: skip
        out.append(f"your function's first two parameters are ({params[0]}, {params[1]}): explain passes y_true first "
                   "and y_pred second, positionally, as Keras's losses take them"
                   + ("; called the other way round, it agrees with the reference" if agrees else ""))  # fmt: skip
    elif 0 < len(params) < 2:
        out.append(f"your function takes ({', '.join(params)}): explain passes two arrays, y_true and y_pred")
    return out


def _judge(
    value: np.ndarray, dtype: str, case: Case, ref: Trace, profile: str, variants: Sequence[Variant], settings: Settings
) -> Diagnosis:
    """The diagnosis of a result: the reference's within its bound, a catalogued variant's, a step's output the
    function stops at, another shape, or none of these."""
    if ref.raises is not None:
        return Diagnosis("departs", f"your function returned a value; Keras must raise ({ref.raises})", value, dtype)
    # A result that is all NaN is weak evidence: a single variant may name it, a pair of them (which can make
    # NaN of almost anything) may not.
    only_nan = bool(value.size) and bool(np.isnan(value).all())
    ref_score = _score(value, ref.value, ref.bound, dtype)
    diff, ulp = _distance(value, ref.value, ref.dtype)
    far = _how_far(value, ref.value, ref.dtype)
    base = {"max_abs": diff, "max_ulp": ulp, "distance": far}
    singles = _candidates(case, profile, variants, settings)
    if ref_score <= 1:
        named = _same_formula(value, dtype, ref, singles)
        if named:
            v = named[0]
            msg = (f"agrees with the reference within the error bound, but your result is {v.id} to its last digits "
                   f"({far} from the reference): {v.title}\n  formula: {v.formula}\n  {v.cause}\n  inside the bound on these "
                   "inputs, it parts further where p nears 0 or 1")  # fmt: skip
            return Diagnosis("agrees", msg, value, dtype, **base)
        return Diagnosis("agrees", "agrees with the reference within the error bound", value, dtype, **base)
    bases = {vs[0].id: trace for vs, trace in singles if not vs[0].f64_clip}

    def matches(cands: list[Candidate]) -> list[Match]:
        found = []
        for vs, trace in cands:
            if trace.raises is not None or trace.value is None:
                continue
            if _score(trace.value, ref.value, ref.bound, ref.dtype) <= 1:
                continue  # on these inputs the variant computes what Keras computes: it cannot be the cause
            s = _score(value, trace.value, ref.bound if np.shape(trace.value) == np.shape(ref.value) else None, dtype)
            if s <= 1:
                at = _departure(trace, ref)
                if vs[0].f64_clip and vs[0].id in bases:  # the float64 clip is a detail of the variant's own departure
                    at = _departure(bases[vs[0].id], ref) or at
                found.append(Match(vs, "reduction", at, s))
        best: dict[tuple[str, ...], Match] = {}  # a variant and its float64-clip twin: the variant, else the twin
        for m in sorted(found, key=lambda m: (any(v.f64_clip for v in m.variants), ORDER.get(m.departs_at or "", 99), m.score)):
            best.setdefault(tuple(v.id for v in m.variants), m)
        # where each departs; of those departing at one step, the closest, and of those the user's result is to its
        # last digits (Keras 2's formula and epsilon inside the logs, where nothing is clipped), the fewest changes
        def rank(m: Match) -> tuple[Any, ...]:
            exact = m.score <= EXACT
            return (ORDER.get(m.departs_at or "", 99), not exact, sum(len(v.steps) for v in m.variants) if exact else 0, m.score)

        return sorted(best.values(), key=rank)

    found = matches(singles)
    if not found:
        found = _stopped_early(value, ref, dtype)
    if not found and not only_nan:
        found = matches(_pairs(case, profile, variants, settings))
    if found:
        return Diagnosis("departs", _departure_message(found, ref, case, settings), value, dtype, tuple(found), **base)
    if _squeezed_shape(value) != _squeezed_shape(ref.value):
        return Diagnosis("shape", _shape_finding(value, ref, case), value, dtype, **base)
    if only_nan:
        msg = "your result is NaN where the reference is not, and no single catalogued variant gives NaN there"
        return Diagnosis("uncatalogued", msg, value, dtype, **base)
    msg = (f"no catalogued cause: your result is {far} from the reference, beyond the error bound, and none of the "
           f"{len(variants)} catalogued variants (nor a pair of them) reproduces it")  # fmt: skip
    return Diagnosis("uncatalogued", msg, value, dtype, **base)


def _same_formula(value: np.ndarray, dtype: str, ref: Trace, cands: list[Candidate]) -> list[Variant]:
    """The variants a result within the bound is to its last digits, when the reference is not: another formula
    that lands inside the bound on these inputs (Keras 2's is 6 float32 ULP from Keras 3's on ordinary ones)."""
    if ref.value is None or _score(value, ref.value, None, dtype) <= 1:
        return []
    out = []
    for vs, trace in cands:
        if trace.value is None or trace.raises is not None or _score(trace.value, ref.value, None, dtype) <= 1:
            continue  # (told apart in the user's dtype: a float64 result shows Keras 2's 6 float32 ULP)
        if _score(value, trace.value, None, dtype) <= 1:
            out.append(vs[0])
    return sorted(out, key=lambda v: (v.f64_clip, len(v.steps)))  # the fewest changes to Keras's steps first


def _squeezed_shape(a: Any) -> tuple[int, ...]:
    return tuple(n for n in np.shape(a) if n != 1)


def _shape_finding(value: np.ndarray, ref: Trace, case: Case) -> str:
    got, want = np.shape(value), np.shape(ref.value)
    red = case.options.reduction
    if want == ():
        keras = f"Keras reduces to a scalar (reduction={red!r})"
    else:
        keras = f"Keras returns shape {want}" + (f" (reduction={red!r}: the per-sample loss)" if red in (None, "none") else "")
    same = [TITLES[k] for k in ("terms", "axis") if (s := ref.step(k)) is not None and (o := s.output()) is not None
            and _squeezed_shape(o) == _squeezed_shape(value)]  # fmt: skip
    tail = (f"; {got} is the shape of Keras's {same[0]}, whose values yours are not either" if same else
            "; no step of Keras's has that shape")  # fmt: skip
    return f"your function returns shape {got}; {keras}{tail}, and no catalogued variant gives your result"


def _stopped_early(value: np.ndarray, ref: Trace, dtype: str) -> list[Match]:
    """A result that is one of the reference's intermediate outputs: the user's code stops before Keras does."""
    outputs = [(key, step.output()) for key in ("terms", "axis") if (step := ref.step(key)) is not None]
    # a result of exactly a step's shape first: (B, 1) terms and their (B,) means hold the same numbers
    for exact in (True, False):
        for key, out in outputs:
            if out is None or (out.shape == np.shape(value)) != exact or out.shape == np.shape(ref.value):
                continue  # (the per-sample loss is the result itself under reduction='none')
            score = _score(value, out, None, dtype)
            if score <= 1:
                return [Match((), key, STEPS[ORDER[key] + 1][0], score)]
    return []


def _comparable(u: Any, v: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if v is None:
        return None
    a, e = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if a.shape != e.shape:
        a, e = np.squeeze(a), np.squeeze(e)
        if a.shape != e.shape:
            return None
    return a, e


def _distance(u: np.ndarray, v: np.ndarray | None, dtype: str) -> tuple[float | None, int | None]:
    """The largest |u - v| and its ULP in ``dtype``; NaN (no ULP) where one is NaN and the other is not, inf where
    one is infinite and the other is not (or the other infinity); None where the shapes differ."""
    both = _comparable(u, v)
    if both is None:
        return None, None
    a, e = both
    with np.errstate(invalid="ignore"):
        d = np.abs(a - e)
    d = np.where((np.isnan(a) & np.isnan(e)) | (np.isinf(a) & (a == e)), 0.0, d)
    if np.isnan(d).any():
        return float("nan"), None
    if np.isinf(d).any():
        return float("inf"), None
    if not d.size:
        return 0.0, 0
    return float(np.max(d)), int(np.max(ulp_distance(a, e, dtype)))


def _how_far(u: np.ndarray, v: np.ndarray | None, dtype: str) -> str:
    """``_distance`` in words: where the two are not both numbers, what each is there."""
    both = _comparable(u, v)
    if both is None:
        return f"not comparable: your result has shape {np.shape(u)}, the reference {np.shape(v)}"
    diff, ulp = _distance(u, v, dtype)
    a, e = both
    if diff is not None and ulp is not None:
        return f"{diff:.3g} ({ulp} ULP in {dtype})"
    odd = np.flatnonzero((np.isnan(a.ravel()) != np.isnan(e.ravel())) | ((np.isinf(a.ravel()) | np.isinf(e.ravel())) & (a.ravel() != e.ravel())))
    i = int(odd[0])
    where = "" if a.size == 1 else f" at element {np.unravel_index(i, a.shape) if a.ndim > 1 else i}"
    kind = "NaN" if diff is not None and np.isnan(diff) else "infinite"
    return f"{kind}: your result is {a.ravel()[i]:.9g}{where} where the reference is {float(e.ravel()[i]):.9g}"


def _clip_note(found: Sequence[Match], case: Case, settings: Settings) -> str | None:
    """Why a clip in the user's dtype may not clip: 1 - eps rounds to 1 there for a small eps."""
    ids = {v.id.split("(")[0] for m in found[:1] for v in m.variants}
    dt = case.pred_dtype
    if not ids & {"no-clip", "clip-other-epsilon", "eps-inside-log", "log-clamped-at-100"} or dt not in ("float32", "float16", "bfloat16"):
        return None
    half = float_format(dt).unit_roundoff / 2
    eps = settings.epsilon
    return (f"your inputs are {dt}: a clip written on them (np.clip(p, eps, 1 - eps)) rounds its bounds to {dt}, where "
            f"1 - eps is 1.0 for every eps up to {half:.3g}; a clip at 1e-8, 1e-12 or 1e-15 then leaves p = 1 as it "
            f"is, log(1 - p) is -inf, and the result is the unclipped formula's.  Keras's bounds are {eps:g} and "
            f"1 - {eps:g} as {dt} holds them: {float(round_to(eps, dt)):.9g} and {float(round_to(1 - eps, dt)):.9g}")  # fmt: skip


def _departure_message(found: Sequence[Match], ref: Trace, case: Case, settings: Settings) -> str:
    best = found[0]
    if not best.variants:
        return (f"departs at step {ORDER[best.departs_at] + 1}, {TITLES[best.departs_at]}: your function returns Keras's "
                f"{TITLES[best.step]} (step {ORDER[best.step] + 1}) and stops there; Keras goes on with "
                + ", ".join(t for k, t in STEPS[ORDER[best.departs_at]:] if ref.step(k) is not None))  # fmt: skip
    at = best.departs_at or "reduction"
    names = " + ".join(v.id for v in best.variants)
    lines = [f"departs at step {ORDER[at] + 1}, {TITLES[at]}: your result is reproduced by {names}"]
    for v in best.variants:
        lines.append(f"  {v.id}: {v.title}")
        lines.append(f"    formula: {v.formula}")
        lines.append(f"    likely cause: {v.cause}")
        lines.append(f"    commonly found in: {'; '.join(v.found_in)}")
        if v.f64_clip:
            lines.append(f"    and your clip's bounds are {settings.epsilon:g} and 1 - {settings.epsilon:g} in float64; "
                         f"Keras's are those as {ref.dtype} holds them")  # fmt: skip
    note = _clip_note(found, case, settings)
    if note:
        lines.append("  " + note)
    others = [" + ".join(v.id for v in m.variants) for m in found[1:] if m.variants]
    if others:
        lines.append(f"  on these inputs also reproduced by: {', '.join(others)}")
    return "\n".join(lines)


# -- the whole explanation ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Explanation:
    case: Case
    profile: str
    trace: Trace
    expected: Expected
    outcome: Outcome | None = None
    verdict: str | None = None  # TensorFlow's: "pass", "fail (kind)", with a known divergence named
    known: str | None = None
    diagnosis: Diagnosis | None = None
    manual: str | None = None
    settings: Settings = DEFAULT_SETTINGS

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case.as_dict(),
            "profile": self.profile,
            "keras_settings": {"epsilon": self.settings.epsilon, "floatx": self.settings.floatx, "source": self.settings.source},
            "steps": [s.as_dict() for s in self.trace.steps],
            "expected": self.expected.as_dict(),
            "tensorflow": None if self.outcome is None else self.outcome.as_dict(),
            "verdict": self.verdict,
            "known_divergence": self.known,
            "manual": None if self.diagnosis is None else {"function": self.manual, **self.diagnosis.as_dict()},
        }


def explain(
    case: Case, *, profile: str = "keras3", target: Any = None, manual: str | None = None,
    registry: Any = None, variants: Sequence[Variant] | None = None, settings: Settings | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Explanation:  # fmt: skip
    """The reference's steps on ``case``, TensorFlow's result and verdict when a ``target`` is given, and the
    diagnosis of the ``manual`` function when one is named (run in a child process, ``timeout`` seconds).  The
    reference is judged under ``settings``, by default the installed Keras's (``installed_settings``)."""
    from harness.judge.compare import compare
    from harness.judge.facets import record_facets

    settings = installed_settings(target) if settings is None else settings
    trace = reference_steps(case, profile, settings=settings)
    exp = oracle_expected(case, profile=profile, epsilon=settings.epsilon, floatx=settings.floatx)
    outcome = verdict = known = None
    if target is not None:
        outcome = target.run(case)
        comparison = compare(case, exp, outcome)
        verdict = "pass" if comparison.agrees else f"fail ({comparison.kind})"
        entry = None if registry is None else registry.judge(record_facets(case, exp, profile), comparison.kinds)
        if entry is not None and not comparison.agrees and all(k in entry.kinds for k in comparison.kinds):
            verdict, known = f"xfail ({comparison.kind})", f"{entry.id}: {entry.title}"
        verdict = f"{verdict}\n{comparison.message}" if not comparison.agrees else verdict
    diagnosis = None
    if manual is not None:
        diagnosis = diagnose(manual, case, profile=profile, variants=variants, settings=settings, timeout=timeout)
    return Explanation(case, profile, trace, exp, outcome, verdict, known, diagnosis, manual, settings)


def _fmt(v: Any, limit: int = 8) -> str:
    if isinstance(v, str):
        return v
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return f"{float(a):.9g}"
    flat = [f"{x:.9g}" for x in a.ravel()[:limit]]
    more = f", ... ({a.size} values)" if a.size > limit else ""
    text = "[" + ", ".join(flat) + more + "]"
    return text + (f" shape {a.shape}" if a.ndim > 1 else "")


def render_text(e: Explanation) -> str:
    o = e.case.options
    lines = [
        (
            f"{e.case.api}(from_logits={o.from_logits}, label_smoothing={o.label_smoothing:g}, axis={o.axis}, "
            f"reduction={o.reduction!r}, dtype={o.dtype!r}), {e.case.mode}; profile {e.profile}; "
            f"epsilon() = {e.settings.epsilon:g}, floatx() = {e.settings.floatx} ({e.settings.source})"
        ),
        "",
    ]
    for i, step in enumerate(e.trace.steps):
        lines.append(f"{ORDER[step.key] + 1}. {step.title}: {step.rule}")
        for name, value in step.values.items():
            lines.append(f"     {name:<18} {_fmt(value)}")
    lines.append("")
    if e.expected.raises is not None:
        lines.append(f"reference: the call must raise ({e.expected.raises})")
    else:
        lines.append(f"reference: {_fmt(e.expected.value)} ({e.expected.dtype}), error bound {_fmt(e.expected.bound)}  [{e.expected.rule}]")
    if e.outcome is not None:
        got = e.outcome.error if e.outcome.error is not None else f"{_fmt(e.outcome.value)} ({e.outcome.dtype})"
        lines.append(f"TensorFlow: {got}")
        if e.outcome.error is None and e.expected.value is not None:
            d, u = _distance(e.outcome.value, e.expected.value, e.expected.dtype or "float64")
            if d is not None:
                lines.append(f"  |TensorFlow - reference| = {d:.3g} ({u} ULP in {e.expected.dtype})")
        lines.append(f"verdict: {e.verdict}")
        if e.known:
            lines.append(f"known divergence {e.known}")
    if e.diagnosis is not None:
        dg = e.diagnosis
        lines.append("")
        shown = "" if dg.value is None else f"{_fmt(dg.value)} ({dg.dtype})"
        lines.append(f"manual {e.manual}: {shown}")
        if dg.distance:
            lines.append(f"  |manual - reference| = {dg.distance}")
        lines.append(f"  verdict: {dg.verdict}")
        lines.append("  " + dg.message.replace("\n", "\n  "))
        lines.extend(f"  warning: {w}" for w in dg.warnings)
        if dg.output_bytes:
            cut = "" if dg.output_bytes <= len(dg.output.encode()) else f", the first {len(dg.output.encode())} shown"
            lines.append(f"  your function printed {dg.output_bytes} bytes{cut}:")
            lines.extend(f"    | {_terminal(line)}" for line in dg.output.splitlines()[:20])
    return "\n".join(lines)


def _terminal(text: str) -> str:
    """A line the user's code printed, with control characters shown escaped (it lands in a terminal or a CI log)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


# -- inputs from the command line ---------------------------------------------------------------------------


def parse_array(text: str, name: str) -> np.ndarray:
    """``1,0,1,0``, a JSON list (``[[1, 0], [0, 1]]``; NaN and Infinity allowed), or a ``.npy`` / ``.json`` file."""
    if text.endswith((".npy", ".json")):
        path = Path(text)
        if not path.is_file():
            raise UsageError(f"{name}={text!r}: no such file")
        if text.endswith(".npy"):
            try:
                data = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise InputError(f"{name}={text!r}: not a .npy array ({exc})") from None
            return _numbers(data, name, text)
        try:
            return _numbers(json.loads(path.read_text(encoding="utf-8")), name, text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}={text!r}: not JSON ({exc})") from None
    stripped = text.strip()
    try:
        if stripped.startswith("["):
            return _numbers(json.loads(stripped), name, text)
        parts = [t.strip() for t in stripped.split(",")]
        return _numbers([float(t) for t in parts], name, text) if len(parts) > 1 else _numbers(float(parts[0]), name, text)
    except (ValueError, json.JSONDecodeError):
        raise UsageError(f"{name}={text!r} is not a list of numbers (1,0,1 or [[1, 0]]) or a .npy/.json file") from None


def _numbers(data: Any, name: str, text: str) -> np.ndarray:
    try:
        a = np.array(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"{name}={text!r} is not a rectangular array of numbers") from None
    return a


def build_case(
    y_true: np.ndarray, y_pred: np.ndarray, *, options: Options, sample_weight: np.ndarray | None = None,
    true_dtype: str = "float32", pred_dtype: str = "float32", weight_dtype: str = "float32",
    api: str = API_LOSS_CLASS, mode: str = "eager",
) -> Case:  # fmt: skip
    """A case of the given values, each rounded to its dtype first (as the tensor conversion rounds it)."""
    for arg, dt in (("true_dtype", true_dtype), ("pred_dtype", pred_dtype), ("weight_dtype", weight_dtype)):
        if dt not in INPUT_DTYPES:
            raise UsageError(f"{arg}={dt!r} is not one of {', '.join(INPUT_DTYPES)}")
    with np.errstate(invalid="ignore", over="ignore"):
        yt = round_to(y_true, true_dtype)
        yp = round_to(y_pred, pred_dtype)
        sw = None if sample_weight is None else round_to(sample_weight, weight_dtype)
    return Case(
        id="explain", y_true=yt, y_pred=yp, true_dtype=true_dtype, pred_dtype=pred_dtype, options=options,
        sample_weight=sw, weight_dtype=weight_dtype, api=api, mode=mode,
    )  # fmt: skip

