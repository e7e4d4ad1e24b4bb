"""``bce-harness explain``: the steps Keras takes on *your* inputs, and where a hand-written BCE parts from them.

The reference's steps are the ones ``harness.oracle.expected`` records as it computes (``harness/oracle/steps.py``;
``keras3.py``, or ``keras2.py`` under that profile): input conversion, rank reconciliation, label smoothing, the
logits or probabilities, the clip, the elementwise terms, the mean over ``axis``, the weights and the reduction,
each with its values and its rule.  This module narrates them; it neither restates the math nor orders the steps.

A user's function (``--manual MODULE:FUNCTION`` or ``FILE.py:FUNCTION``) runs on the same inputs.  When its
result is not the reference's within the error bound, every variant of the catalogue
(``harness/data/manual_variants.toml``: the formulas people write, each with where it is commonly found) is
computed on the same inputs by the oracle's own sequence with the variant's steps replaced (``_Swapped``: a profile
whose step methods are the variant's, as Keras 2's profile is Keras 3's with some replaced), singly and then in pairs; the
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
from harness.jsonio import read_text
from harness.oracle import PROFILES, expected
from harness.oracle import tolerance as tol
from harness.oracle.keras3 import EPSILON
from harness.oracle.steps import STEPS, TITLES, Step
from harness.oracle.steps import json_value as _json_value
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

# The steps are the oracle's (harness.oracle.steps); a variant replaces some of them (manual_variants.toml).
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
class Trace:
    """The oracle's steps on a case as it took them, and its value and bound (or why the call must raise)."""

    steps: tuple[Step, ...]
    value: np.ndarray | None
    bound: np.ndarray | None
    raises: str | None
    dtype: str

    def step(self, key: str) -> Step | None:
        return next((s for s in self.steps if s.key == key), None)


def _traced(case: Case, run: Callable[[list[Step]], Expected]) -> tuple[Trace, Expected]:
    steps: list[Step] = []
    exp = run(steps)
    return Trace(tuple(steps), exp.value, exp.bound, exp.raises, exp.dtype or case.pred_dtype), exp


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x))).astype(WORK)


def _w(x: float) -> Any:
    return WORK(x)


class _Swapped:
    """A profile with some of its steps replaced by a catalogue variant's (``swap``, manual_variants.toml): the
    oracle's own ``expected`` takes its steps in its own order, and the replaced ones are these (as Keras2 is
    Keras3 with some steps replaced).  Mixed in before the profile's class (``_variant_profile``)."""

    swap: Mapping[str, Any] = {}
    name: str

    def reconcile_ranks(self, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None]:
        if self.swap.get("ranks") != "broadcast":
            return super().reconcile_ranks(y, p)  # type: ignore[misc]
        try:
            y, p = (a.astype(WORK) for a in np.broadcast_arrays(y, p))
        except ValueError:
            return y, p, f"y_true shape {y.shape} and y_pred shape {p.shape} do not broadcast"
        return y, p, None

    def smooth(self, y: np.ndarray, ls: float) -> np.ndarray:
        how = self.swap.get("smoothing")
        if how == "flip":
            return y * (1 - _w(ls)) + _w(ls) * (1 - y)
        return y if how == "ignored" else super().smooth(y, ls)  # type: ignore[misc]

    def prediction(self, p: np.ndarray, logits: bool) -> tuple[np.ndarray, bool]:
        how = self.swap.get("prediction")
        if how == "extra_sigmoid":
            return _sigmoid(p), logits
        if how in ("raw", "sigmoid_clip") and logits:
            return (_sigmoid(p) if how == "sigmoid_clip" else p), False
        return p, logits

    def clip(self, p: np.ndarray, dtype: str) -> np.ndarray:
        clip = self.swap.get("clip")
        if clip is None:
            return super().clip(p, dtype)  # type: ignore[misc]
        return p if clip == "none" else np.clip(p, _w(clip), _w(1.0 - clip))  # the bounds as Python floats hold them (float64)

    def _terms(self) -> str | None:
        return self.swap.get("terms") or ("eps_in_log" if self.name == "keras2" else None)

    def probability_terms(self, z: np.ndarray, dz: np.ndarray, p: np.ndarray, dtype: str, m: tol.ErrorModel) -> tuple[np.ndarray, np.ndarray]:
        if self.swap.get("clip") is None and self.swap.get("terms") is None:  # the profile's own terms
            return super().probability_terms(z, dz, p, dtype, m)  # type: ignore[misc]
        pc = self.clip(p, dtype)
        return _variant_terms(self._terms(), z, pc, self.epsilon), np.zeros(pc.shape, WORK)  # type: ignore[attr-defined]

    def mean_over_axis(self, elem: np.ndarray, err: np.ndarray, axis: int, m: tol.ErrorModel) -> tuple[np.ndarray, np.ndarray]:
        how = self.swap.get("axis")
        if how == "sum":
            total = np.sum(elem, axis=axis).astype(WORK)
            return total, np.zeros(total.shape, WORK)
        return (elem, err) if how == "all" else super().mean_over_axis(elem, err, axis, m)  # type: ignore[misc]

    def align_weights(self, case: Case, loss_shape: tuple[int, ...], dtype: str) -> tuple[np.ndarray | None, str | None]:
        how = self.swap.get("weights")
        if how == "ignored":
            return None, None
        if how == "broadcast" and case.sample_weight is not None:
            w = round_to(case.sample_weight, dtype).astype(WORK)
            try:
                return np.broadcast_to(w, np.broadcast_shapes(loss_shape, w.shape)), None
            except ValueError:
                return None, f"sample_weight shape {case.sample_weight.shape} does not broadcast to {loss_shape}"
        return super().align_weights(case, loss_shape, dtype)  # type: ignore[misc]

    def reduce(self, loss: np.ndarray, loss_err: np.ndarray, weights: np.ndarray | None, reduction: str | None,
               m: tol.ErrorModel, **kw: Any) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        reduce = super().reduce  # type: ignore[misc]
        if weights is not None and weights.shape != loss.shape:  # weights broadcast past the loss's shape
            loss, loss_err = (np.broadcast_to(a, weights.shape) for a in (loss, loss_err))
        how = self.swap.get("reduction")
        if self.swap.get("axis") == "all":
            return reduce(loss, loss_err, weights, "sum_over_batch_size", m, **kw)
        if how == "batch":
            total, bound = reduce(loss, loss_err, weights, "sum", m, **kw)
            return np.asarray(total / WORK(max(loss.shape[0] if loss.ndim else 1, 1)), dtype=WORK), bound
        if how == "nonzero" and weights is not None:
            total, bound = reduce(loss, loss_err, weights, "sum", m, **kw)
            count = int(np.count_nonzero(weights))
            return np.asarray(total / WORK(count) if count else WORK(0), dtype=WORK), bound
        return reduce(loss, loss_err, weights, how if how is not None else reduction, m, **kw)

    def rule(self, key: str, **facts: Any) -> str:
        swap, same = self.swap, super().rule  # type: ignore[misc]
        if key == "ranks" and swap.get("ranks") == "broadcast":
            return "y_true and y_pred broadcast against each other"
        if key == "clip" and swap.get("clip") is not None:
            clip = swap["clip"]
            return "no clip" if clip == "none" else f"p clipped to [{clip:g}, 1 - {clip:g}] in float64"
        if key == "terms" and not facts["logits"] and (swap.get("clip") is not None or swap.get("terms") is not None):
            eps = self.epsilon  # type: ignore[attr-defined]
            return {"eps_in_log": f"-(z * log(p + {eps:g}) + (1 - z) * log(1 - p + {eps:g}))",
                    "log_floor": "-(z * max(log(p), -100) + (1 - z) * max(log(1 - p), -100))",
                    None: "-(z * log(p) + (1 - z) * log(1 - p))"}[self._terms()]  # fmt: skip
        if key == "axis" and swap.get("axis") == "sum":
            return f"sum over axis {facts['axis']}"
        if key == "axis" and swap.get("axis") == "all":
            return "no mean over the axis: every element goes on to the weights and one mean"
        if key == "reduction":
            loss, weights = np.asarray(facts["loss"]), facts["weights"]
            how = swap.get("reduction")
            if swap.get("axis") == "all":
                return "the mean of every weighted element"
            if how == "batch":
                return f"the weighted sum divided by the batch size {loss.shape[0] if loss.ndim else 1}"
            if how == "nonzero" and weights is not None:
                return f"the weighted sum divided by the number of nonzero weights, {int(np.count_nonzero(weights))}"
            if how is not None:
                return same(key, **{**facts, "reduction": how})
        return same(key, **facts)


_VARIANT_PROFILES: dict[str, type] = {}


def _variant_profile(profile: str, swap: Mapping[str, Any], settings: Settings) -> Any:
    """``profile``'s semantics with ``swap``'s steps replaced (the class made once per profile)."""
    if profile not in _VARIANT_PROFILES:
        base = PROFILES[profile]
        _VARIANT_PROFILES[profile] = type(f"Swapped{base.__name__}", (_Swapped, base), {})
    sem = _VARIANT_PROFILES[profile](epsilon=settings.epsilon, floatx=settings.floatx)
    sem.swap = dict(swap)
    return sem


def _pipeline(case: Case, profile: str, swap: Mapping[str, Any], *, settings: Settings = DEFAULT_SETTINGS) -> Trace:
    """A catalogue variant's steps on ``case``: the oracle's own sequence with ``swap``'s steps replaced."""
    sem = _variant_profile(profile, swap, settings)
    return _traced(case, lambda steps: sem.expected(case, steps=steps))[0]


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


def _reference(case: Case, profile: str, settings: Settings) -> tuple[Trace, Expected]:
    """The oracle's steps on ``case`` as ``harness.oracle.expected`` takes them, and its expectation."""
    if case.api == "metrics.BinaryCrossentropy" or case.grad is not None or case.mask is not None or case.producer:
        raise UsageError("explain covers the losses' values, not metrics, gradients, masks or producers")
    if case.training is not None or case.config is not None or case.row_lengths is not None:
        raise UsageError("explain covers one call of a loss with Keras's default configuration on dense inputs, "
                         "not training loops, replicas, other configurations or ragged inputs")  # fmt: skip
    if case.api == "backend.binary_crossentropy":
        raise UsageError("explain covers the losses' documented pipeline, not tf.keras.backend.binary_crossentropy")
    if profile not in PROFILES:
        raise UsageError(f"profile={profile!r} is not one of {', '.join(PROFILES)}")
    trace, exp = _traced(case, lambda steps: expected(case, profile=profile, epsilon=settings.epsilon,
                                                       floatx=settings.floatx, steps=steps))  # fmt: skip
    if exp.outside is not None:
        raise UsageError(f"explain narrates the documented steps, and this call is outside the documented domain: {exp.outside}")
    if not trace.steps:
        raise UsageError(f"explain covers the losses' documented pipeline, not {case.api} on {case.pred_dtype} predictions")
    return trace, exp


def reference_steps(case: Case, profile: str = "keras3", *, settings: Settings = DEFAULT_SETTINGS) -> Trace:
    """Keras's steps on ``case``, as the oracle takes them: its last value is ``harness.oracle.expected``'s."""
    return _reference(case, profile, settings)[0]


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
    out: list[Candidate] = []
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
    extra: dict[str, Any] = {"output": ran.output, "output_bytes": ran.output_bytes}
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
    assert first.value is not None  # a call that did not raise returned a value (harness.run.sandbox)
    d = _judge(first.value, first.dtype, case, ref, profile, variants, settings)
    return replace(d, warnings=tuple(warnings) + d.warnings, **extra)


def _signature_warnings(ran: Ran, ref: Trace, case: Case) -> list[str]:
    out = []
    params = ran.params
    if len(params) >= 2 and params[0] in PRED_NAMES and params[1] in TRUE_NAMES:
        swapped = ran.results[1]
        agrees = (swapped is not None and swapped.value is not None and ref.raises is None
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
    base: dict[str, Any] = {"max_abs": diff, "max_ulp": ulp, "distance": far}
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
            s = _score(value, trace.value, ref.bound if _shape(trace.value) == _shape(ref.value) else None, dtype)
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


def _shape(a: Any) -> tuple[int, ...]:
    """``np.shape`` of a value that may be None (a trace that raises has none): () then, as ``np.shape`` gives."""
    return np.shape(a)


def _shape_finding(value: np.ndarray, ref: Trace, case: Case) -> str:
    got, want = np.shape(value), _shape(ref.value)
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
            if out is None or (out.shape == np.shape(value)) != exact or out.shape == _shape(ref.value):
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
        return f"not comparable: your result has shape {np.shape(u)}, the reference {_shape(v)}"
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
        assert best.departs_at is not None  # a result that stops early departs at the step after (_stopped_early)
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
    from harness.judge.matching import record_facets

    settings = installed_settings(target) if settings is None else settings
    trace, exp = _reference(case, profile, settings)
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
    for step in e.trace.steps:
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
        if e.outcome.value is not None and e.expected.value is not None:
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
        content = read_text(path, f"{name} file", max_bytes=_MAX_INPUT_BYTES)
        try:
            return _numbers(json.loads(content), name, text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}={text!r}: not JSON ({exc})") from None
        except RecursionError:
            raise InputError(f"{name}={text!r}: not JSON numbers (nested too deeply)") from None
    stripped = text.strip()
    try:
        if stripped.startswith("["):
            return _numbers(json.loads(stripped), name, text)
        parts = [t.strip() for t in stripped.split(",")]
        return _numbers([float(t) for t in parts], name, text) if len(parts) > 1 else _numbers(float(parts[0]), name, text)
    except (ValueError, json.JSONDecodeError, RecursionError):
        raise UsageError(f"{name}={text!r} is not a list of numbers (1,0,1 or [[1, 0]]) or a .npy/.json file") from None


_MAX_INPUT_BYTES = 1 << 28  # an input file of explain's: 256 MiB of text at most


def _numbers(data: Any, name: str, text: str) -> np.ndarray:
    if np.iscomplexobj(data):  # NumPy would drop the imaginary part with a warning only
        raise UsageError(f"{name}={text!r} holds complex numbers; the loss takes real ones")
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

