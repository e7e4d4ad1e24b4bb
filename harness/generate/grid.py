"""The case generator: a deterministic, seeded grid over inputs and options, plus the curated special cases.

The default suite has four families, each a product over the axes that matter to it (a full product of
every axis would be millions of cases and mostly redundant):

``values``   every (label dtype, prediction dtype) pair we support x every loss ``dtype`` x from_logits x a
             value regime, with ``reduction="none"`` on a (12, 1) batch (each element checked on its own)
             and the default reduction on (4, 3).  "none", not None: both lines document that spelling
             (Keras 2's ReductionV2 rejects None), so the elementwise checks run on every line
``options``  every shape kind x axis x from_logits x label_smoothing x reduction x sample_weight form, on
             typical and soft values in float32
``dtype_reductions``  every compute dtype x every reduction x weights, so reductions are checked in each
             format
``errors``   the calls that must raise
``special``  the curated boundary cases of ``harness/data/special_cases.toml``

Array values are drawn from ``numpy.random.default_rng([seed, crc32(case id)])``, so a case's data depends
on the seed and its id only, never on which other cases are generated or in what order.
"""

from __future__ import annotations

import functools
import itertools
import math
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.case import MODES, PRODUCERS, REDUCTIONS, Case, Config, Deferred, Options
from harness.dtypes import FLOAT_DTYPES, INPUT_DTYPES, float_format, round_to
from harness.errors import InputError, UsageError
from harness.generate.space import covering_rows, loss_shape, realize, space_for, weights_of
from harness.generate.training import replicas_family, training_family
from harness.jsonio import read_toml
from harness.packagedata import data_path
from harness.schema import Bool, Int, Num, Obj, Str, Values

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_SPECIAL_CASES",
    "LOGIT_REGIMES",
    "PROB_REGIMES",
    "SUITES",
    "Suite",
    "SuiteIds",
    "default_suite",
    "load_special_cases",
    "parse_seeds",
    "select",
]

DEFAULT_SEED = 20261122
DEFAULT_SPECIAL_CASES = data_path("special_cases.toml")

PROB_REGIMES = ("typical", "near_bounds", "exact_bounds", "tiny", "soft_labels", "nan")
LOGIT_REGIMES = ("typical", "large_1e2", "large_1e4", "infinite", "tiny", "soft_labels", "nan")
LOSS_DTYPES: tuple[str | None, ...] = (None, "float16", "bfloat16", "float32", "float64")
DTYPE_PAIRS = (
    ("float16", "float16"),
    ("bfloat16", "bfloat16"),
    ("float32", "float32"),
    ("float64", "float64"),
    ("int32", "float32"),
    ("bool", "float32"),
)
SHORT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64", "int32": "i32", "bool": "bool", None: "default"}


def _rng(seed: int, case_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(case_id.encode())])


def _ulp_below_one(dtype: str) -> float:
    return 2.0 ** -(float_format(dtype).mant_bits + 1)


def _hard_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    y = rng.integers(0, 2, n).astype(np.float64)
    y[:2] = [0.0, 1.0]  # both classes always present
    return y


def _probabilities(regime: str, dtype: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of a probability regime, before rounding to the dtypes."""
    y = _hard_labels(rng, n)
    if regime in ("typical", "nan"):
        p = rng.uniform(0.02, 0.98, n)
        if regime == "nan":
            p[n // 2] = math.nan
    elif regime == "soft_labels":
        y = rng.uniform(0.0, 1.0, n)
        p = rng.uniform(0.02, 0.98, n)
    elif regime == "exact_bounds":
        # every (label, prediction) pair of {0, 1} x {0, 1}, the rest typical
        y[:4] = [0.0, 0.0, 1.0, 1.0]
        p = rng.uniform(0.02, 0.98, n)
        p[:4] = [0.0, 1.0, 0.0, 1.0]
    elif regime == "near_bounds":
        # each value with both labels: the largest value below 1, 1 - eps (1.0 in float16/bfloat16),
        # 1 - 1e-6, eps, eps / 2 and the smallest normal number
        fmt = float_format(dtype)
        near = [1.0 - _ulp_below_one(dtype), 1.0 - 1e-7, 1.0 - 1e-6, 1e-7, 0.5e-7, fmt.smallest_normal]
        p = np.resize(np.repeat(np.asarray(near), 2), n)
        y = np.resize(np.asarray([0.0, 1.0]), n)
    elif regime == "tiny":
        fmt = float_format(dtype)
        tiny = [fmt.smallest_subnormal, 3 * fmt.smallest_subnormal, fmt.smallest_normal / 2, fmt.smallest_normal]
        p = np.resize(np.asarray(tiny), n)
    else:
        raise UsageError(f"regime={regime!r} is not one of {', '.join(PROB_REGIMES)}")
    return y, p


def _logits(regime: str, dtype: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = _hard_labels(rng, n)
    sign = np.where(rng.integers(0, 2, n) == 0, -1.0, 1.0)
    if regime in ("typical", "nan"):
        x = rng.normal(0.0, 3.0, n)
        if regime == "nan":
            x[n // 2] = math.nan
    elif regime == "soft_labels":
        y = rng.uniform(0.0, 1.0, n)
        x = rng.normal(0.0, 3.0, n)
    elif regime == "large_1e2":
        x = sign * rng.uniform(50.0, 150.0, n)
    elif regime == "large_1e4":
        x = sign * rng.uniform(5e3, 2e4, n)
    elif regime == "infinite":
        y[:4] = [0.0, 0.0, 1.0, 1.0]
        x = rng.normal(0.0, 3.0, n)
        x[:4] = [-math.inf, math.inf, -math.inf, math.inf]
    elif regime == "tiny":
        fmt = float_format(dtype)
        x = sign * np.resize(np.asarray([fmt.smallest_subnormal, fmt.smallest_normal, 1e-3]), n)
    else:
        raise UsageError(f"regime={regime!r} is not one of {', '.join(LOGIT_REGIMES)}")
    return y, x


def _labels_for(dtype: str, y: np.ndarray) -> np.ndarray:
    """Labels as the label dtype holds them: integer and boolean labels are hard."""
    if dtype in ("int32", "int64", "bool"):
        return np.round(np.nan_to_num(y)).clip(0, 1)
    return round_to(y, dtype)


VALUE_SHAPES: tuple[tuple[str, tuple[int, ...]], ...] = (("none", (12, 1)), ("sum_over_batch_size", (4, 3)))


def _values_family(
    seed: int, *, shapes: tuple[tuple[str, tuple[int, ...]], ...] = VALUE_SHAPES, sweep: bool = False
) -> Iterator[Case]:
    """The value grid.  ``sweep``: one seed of a value sweep, whose ids end in the shape and the seed
    (``values/.../none/12x1/seed=S``): unique across seeds and stable, and still matched by the registry's
    ``values/...`` globs, since a sweep's case is the grid's case with other draws."""
    for spec in _value_specs(seed, shapes, sweep):
        yield _value_case(seed, spec)


_ValueSpec = tuple[str, str, str, "str | None", bool, str, str, tuple[int, ...]]


def _value_specs(seed: int, shapes: tuple[tuple[str, tuple[int, ...]], ...], sweep: bool) -> Iterator[_ValueSpec]:
    """The value grid's cases as (id, label dtype, prediction dtype, loss dtype, from_logits, regime,
    reduction, shape), without their arrays: cheap, so a sparse selection realises only what it takes."""
    for (tdt, pdt), loss_dtype, from_logits in itertools.product(DTYPE_PAIRS, LOSS_DTYPES, (False, True)):
        regimes = LOGIT_REGIMES if from_logits else PROB_REGIMES
        for regime in regimes:
            if tdt in ("int32", "bool") and regime in ("soft_labels",):
                continue
            for reduction, shape in shapes:
                kind = "logits" if from_logits else "probs"
                cid = f"values/{kind}/{regime}/{SHORT[tdt]}-{SHORT[pdt]}/dtype={SHORT[loss_dtype]}/{reduction or 'none'}"
                if sweep:
                    cid += "/" + "x".join(map(str, shape)) + f"/seed={seed}"
                yield cid, tdt, pdt, loss_dtype, from_logits, regime, reduction, shape


def _value_case(seed: int, spec: _ValueSpec) -> Case:
    cid, tdt, pdt, loss_dtype, from_logits, regime, reduction, shape = spec
    rng = _rng(seed, cid)
    make = _logits if from_logits else _probabilities
    y, p = make(regime, pdt, rng, math.prod(shape))
    return Case(
        id=cid,
        y_true=_labels_for(tdt, y).reshape(shape),
        y_pred=round_to(p, pdt).reshape(shape),
        true_dtype=tdt,
        pred_dtype=pdt,
        options=Options(from_logits=from_logits, reduction=reduction, dtype=loss_dtype),
        tags={"family": "values", "regime": regime, "shape": "B1" if shape[1] == 1 else "BC"},
    )


# shape kind -> (label shape, prediction shape, axes to try)
SHAPES: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    "rank1": ((5,), (5,), (-1,)),
    "B1": ((5, 1), (5, 1), (-1,)),
    "BC": ((4, 3), (4, 3), (-1, 0, 1)),
    "BTC": ((3, 2, 4), (3, 2, 4), (-1, 1, 0)),
    "labels_B_preds_B1": ((5,), (5, 1), (-1,)),
    "labels_B1_preds_B": ((5, 1), (5,), (-1,)),
    "empty": ((0, 3), (0, 3), (-1,)),
    "empty_BTC": ((0, 2, 3), (0, 2, 3), (-1,)),
}
WEIGHT_FORMS = ("none", "scalar", "per_sample", "column", "per_element", "zeros")
SMOOTHINGS = (0.0, 0.1, 1.0)


def _options_family(seed: int) -> Iterator[Case]:
    for shape_kind, (ys, ps, axes) in SHAPES.items():
        for axis, from_logits, ls, reduction, form in itertools.product(
            axes, (False, True), SMOOTHINGS, REDUCTIONS, WEIGHT_FORMS
        ):
            lshape = loss_shape(ys, ps, axis)
            if axis != -1 and form not in ("none", "scalar"):
                continue  # per-sample weights are defined against the batch axis of the default axis
            if form == "per_element" and len(lshape) < 2:
                continue  # the same as per_sample there
            if len(lshape) == 0 and form not in ("none", "scalar"):
                continue  # a rank-1 batch has a scalar loss: there is no sample to weight
            regime = "soft_labels" if ls == 0.1 else "typical"
            cid = (
                f"options/{shape_kind}/axis={axis}/{'logits' if from_logits else 'probs'}/ls={ls:g}"
                f"/{reduction or 'None'}/w={form}"
            )
            rng = _rng(seed, cid)
            n = math.prod(ps)
            make = _logits if from_logits else _probabilities
            y, p = make(regime, "float32", rng, max(n, 2))
            y, p = y[:n], p[:n]
            yield Case(
                id=cid,
                y_true=round_to(y, "float32").reshape(ys),
                y_pred=round_to(p, "float32").reshape(ps),
                true_dtype="float32",
                pred_dtype="float32",
                options=Options(from_logits=from_logits, label_smoothing=ls, axis=axis, reduction=reduction),
                sample_weight=weights_of(form, ys[0], lshape, rng),
                tags={"family": "options", "regime": regime, "shape": shape_kind, "weights": form},
            )


def _dtype_reductions_family(seed: int) -> Iterator[Case]:
    for loss_dtype, reduction, form, from_logits in itertools.product(
        LOSS_DTYPES, REDUCTIONS, ("none", "per_sample"), (False, True)
    ):
        cid = f"dtype_reductions/dtype={SHORT[loss_dtype]}/{reduction or 'None'}/w={form}/{'logits' if from_logits else 'probs'}"
        rng = _rng(seed, cid)
        make = _logits if from_logits else _probabilities
        y, p = make("typical", "float32", rng, 24)
        yield Case(
            id=cid,
            y_true=round_to(y, "float32").reshape(8, 3),
            y_pred=round_to(p, "float32").reshape(8, 3),
            true_dtype="float32",
            pred_dtype="float32",
            options=Options(from_logits=from_logits, reduction=reduction, dtype=loss_dtype),
            sample_weight=weights_of(form, 8, (8,), rng),
            tags={"family": "dtype_reductions", "regime": "typical", "shape": "BC", "weights": form},
        )


def _errors_family(seed: int) -> Iterator[Case]:
    rng = _rng(seed, "errors")
    y = _hard_labels(rng, 6).reshape(2, 3)
    p = round_to(rng.uniform(0.1, 0.9, 6), "float32").reshape(2, 3)
    base: dict[str, Any] = {"y_true": y, "y_pred": p, "true_dtype": "float32", "pred_dtype": "float32"}
    for bad in ("avg", "auto", "SUM", "sum_over_batch"):
        yield Case(
            id=f"errors/reduction={bad}",
            options=Options(reduction=bad),
            tags={"family": "errors", "regime": "typical", "shape": "BC"},
            **base,
        )
    yield Case(
        id="errors/shape_mismatch/(2,3)-vs-(2,2)",
        y_true=y,
        y_pred=p[:, :2],
        true_dtype="float32",
        pred_dtype="float32",
        tags={"family": "errors", "regime": "typical", "shape": "mismatch"},
    )
    yield Case(
        id="errors/shape_mismatch/(2,3)-vs-(3,)",
        y_true=y,
        y_pred=p[0],
        true_dtype="float32",
        pred_dtype="float32",
        tags={"family": "errors", "regime": "typical", "shape": "mismatch"},
    )
    yield Case(
        id="errors/sample_weight/(3,)-vs-loss(2,)",
        sample_weight=np.ones(3),
        tags={"family": "errors", "regime": "typical", "shape": "BC", "weights": "mismatch"},
        **base,
    )


# -- every way users reach BCE: entry points x modes, producers, masks, gradients ------------------------

PATH_APIS = (
    "BinaryCrossentropy",
    "binary_crossentropy",
    "ops.binary_crossentropy",
    "metrics.BinaryCrossentropy",
    "nn.sigmoid_cross_entropy_with_logits",
    "backend.binary_crossentropy",
)
# What the Keras 2 line (tf_keras) has of the paths: no keras.ops, no Keras 3 masks; its gradients are not
# modelled (oracle/gradient.py), and its reductions are ReductionV2's, so "none" stands for None.
KERAS2_MISSING_APIS = ("ops.binary_crossentropy",)
KERAS2_MISSING_PRODUCERS = ("keras.ops.sigmoid",)
PATH_PROB_REGIMES = ("typical", "near_bounds", "exact_bounds", "soft_labels", "nan")
PATH_LOGIT_REGIMES = ("typical", "large_1e2", "infinite", "soft_labels", "nan")


def _saturated_logits(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose float32 sigmoid is 0 or 1 or within a few ULP of them: where the clip decides."""
    y = np.resize(np.asarray([0.0, 1.0]), n)
    x = np.resize(np.asarray([20.0, -20.0, 100.0, -100.0, 16.0, -17.0, 5.0, -5.0]), n)
    return y, x


def _path_case(
    seed: int, api: str, mode: str, rest: str, y: np.ndarray, p: np.ndarray, shape: tuple[int, ...], *,
    options: Options, regime: str, dtype: str = "float32", weights: np.ndarray | None = None,
    weight_form: str = "none", **fields: Any,
) -> Case:  # fmt: skip
    return Case(
        id=f"paths/{api}/{mode}/{rest}",
        y_true=round_to(y, dtype).reshape(shape),
        y_pred=round_to(p, dtype).reshape(shape),
        true_dtype=dtype,
        pred_dtype=dtype,
        options=options,
        sample_weight=weights,
        api=api,
        mode=mode,
        tags={"family": "paths", "regime": regime, "shape": "x".join(map(str, shape)), "weights": weight_form},
        **fields,
    )


NEW_PATH_PRODUCERS = ("layers.Activation(sigmoid)", "layers.Softmax", "model(x)", "model.predict(x)")
DEFAULT_BACKEND_CASES = ("probs/typical/None", "logits/typical/None", "probs/exact_bounds/None")


def _in_default(case: Case) -> bool:
    """Whether a case of the paths family's newer paths (the legacy backend function, layer and model
    producers, configurations) is one of the few the default suite keeps; the nightly suite runs them all.
    Kept: one eager call of each, on the loss class where it takes one, and each traced-before case.

    Gradients under XLA are the nightly's too: the default suite checks every gradient eagerly and traced,
    where a fault in an op's gradient shows as well, and an XLA compile of a backward pass is the dearest call
    of the suite (37 of them were 3 s of a 31 s run on 2 cores)."""
    if case.grad is not None and case.mode == "xla":
        return False
    if case.tags.get("regime") in ("int_predictions", "ragged"):
        return True
    if case.config is not None:
        if case.config.traced_before:
            return case.mode == "function" and case.api == "BinaryCrossentropy"
        if case.tags.get("regime") == "saturated":  # the two routes that part there, loss class and function
            return case.mode == "eager"
        return case.mode == "eager" and case.api == "BinaryCrossentropy" and case.producer in (None, "layers.Activation(sigmoid)")
    if case.api == "backend.binary_crossentropy":
        return case.mode == "eager" and case.producer is None and case.id.endswith(DEFAULT_BACKEND_CASES)
    if case.producer in NEW_PATH_PRODUCERS:
        return case.mode == "eager" and case.api == "BinaryCrossentropy"
    return True


def _paths_family(seed: int, profile: str = "keras3", suite: str = "nightly") -> Iterator[Case]:
    """The paths of ``_all_paths``; in the default suite, of the newer paths only those ``_in_default`` keeps."""
    for case in _all_paths(seed, profile):
        if suite == "nightly" or _in_default(case):
            yield case


def _all_paths(seed: int, profile: str = "keras3") -> Iterator[Case]:
    """Each entry point in each mode on the value regimes, then producers, configurations, masks and
    gradients, as far as ``profile``'s line has them (the Keras 2 line: no keras.ops, masks or gradients).

    Ids are ``paths/<api>/<mode>/<rest>``: the same ``rest`` in two modes is the same call, which is how
    cross-mode differences are found (report.py).
    """
    keras2 = profile == "keras2"
    none = "none" if keras2 else None
    apis = tuple(a for a in PATH_APIS if not (keras2 and a in KERAS2_MISSING_APIS))
    producers = tuple(p for p in PRODUCERS if not (keras2 and p in KERAS2_MISSING_PRODUCERS))
    for api, mode in itertools.product(apis, MODES):
        logit_choices = (True,) if api == "nn.sigmoid_cross_entropy_with_logits" else (False, True)
        for from_logits in logit_choices:
            regimes = PATH_LOGIT_REGIMES if from_logits else PATH_PROB_REGIMES
            kind = "logits" if from_logits else "probs"
            reductions: tuple[str | None, ...] = (none, "sum_over_batch_size") if api == "BinaryCrossentropy" else (None,)
            for regime, reduction in itertools.product(regimes, reductions):
                rest = f"{kind}/{regime}/{reduction or 'None'}"
                rng = _rng(seed, f"paths/{api}/{rest}")
                shape = (2, 3, 2) if api == "metrics.BinaryCrossentropy" else (6, 2)
                n = math.prod(shape)
                make = _logits if from_logits else _probabilities
                y, p = make(regime, "float32", rng, n)
                ls = 0.1 if regime == "soft_labels" and api in ("BinaryCrossentropy", "binary_crossentropy", "metrics.BinaryCrossentropy") else 0.0
                yield _path_case(
                    seed, api, mode, rest, y, p, shape,
                    options=Options(from_logits=from_logits, label_smoothing=ls, reduction=reduction), regime=regime,
                )  # fmt: skip
            # weighted: the loss class's weighted mean and the metric's weighted running mean
            if api in ("BinaryCrossentropy", "metrics.BinaryCrossentropy"):
                rest = f"{kind}/typical/weighted"
                rng = _rng(seed, f"paths/{api}/{rest}")
                shape = (2, 3, 2) if api == "metrics.BinaryCrossentropy" else (6, 2)
                y, p = (_logits if from_logits else _probabilities)("typical", "float32", rng, math.prod(shape))
                w = round_to(rng.uniform(0.25, 2.0, shape[:-1]), "float32")
                red = "mean_with_sample_weight" if api == "BinaryCrossentropy" else None
                yield _path_case(
                    seed, api, mode, rest, y, p, shape, options=Options(from_logits=from_logits, reduction=red),
                    regime="typical", weights=w, weight_form="per_sample",
                )  # fmt: skip
                if api == "metrics.BinaryCrossentropy" and mode == "eager" and not from_logits:
                    # weights whose sum is below epsilon: the running mean is sum(w l) / sum(w) all the same
                    # (Mean's documented result; Keras 3.0.0 divided by max(count, epsilon()) instead)
                    tiny = round_to(w * 1e-9, "float32")
                    yield _path_case(
                        seed, api, mode, f"{kind}/typical/tiny_weights", y, p, shape, options=Options(from_logits=from_logits),
                        regime="typical", weights=tiny, weight_form="per_sample",
                    )  # fmt: skip
                    # one weight per row of a rank-3 input: each weight stands for the row's per-sample
                    # losses (Mean's "sample_weight: Optional weighting of each example", broadcast)
                    rows = round_to(rng.uniform(0.25, 2.0, shape[:1]), "float32")
                    yield _path_case(
                        seed, api, mode, f"{kind}/typical/row_weights", y, p, shape, options=Options(from_logits=from_logits),
                        regime="typical", weights=rows, weight_form="per_sample",
                    )  # fmt: skip
        if api == "nn.sigmoid_cross_entropy_with_logits":
            continue
        # sigmoid-produced (or softmax-produced) probabilities with from_logits=False
        for producer, regime in itertools.product(producers, ("typical", "saturated")):
            if producer == "model.predict(x)" and mode != "eager":
                continue  # predict is a NumPy-returning eager call: it has no graph mode
            if keras2 and regime == "typical" and producer != "layers.Softmax" and producer != "model.predict(x)":
                # Keras 2 recovers a sigmoid's logits (keras2-logits-recovered): on typical values that only
                # drops the eps shift, a difference near the bound that passes or not by the drawn values
                continue
            rest = f"producer={producer}/{regime}"
            rng = _rng(seed, f"paths/{api}/{rest}")
            shape = (2, 4, 2) if api == "metrics.BinaryCrossentropy" else (8, 2)
            n = math.prod(shape)
            y, x = _saturated_logits(rng, n) if regime == "saturated" else _logits("typical", "float32", rng, n)
            yield _path_case(
                seed, api, mode, rest, y, x, shape, options=Options(), regime=regime, producer=producer,
            )  # fmt: skip
    yield from _config_cases(seed, apis, keras2=keras2)
    yield from _input_kind_cases(seed, apis)
    if keras2:
        return
    yield from _mask_cases(seed)
    yield from _gradient_cases(seed)


def _input_kind_cases(seed: int, apis: Sequence[str]) -> Iterator[Case]:
    """Integer predictions (int32 zeros and ones) and ragged inputs (rows of 3 and 1 values) through each
    entry point, eagerly: which entry points take them, and what they compute (oracle special_inputs)."""
    for api in apis:
        rng = _rng(seed, f"paths/{api}/int_predictions")
        y = _hard_labels(rng, 12)
        p = np.resize(np.asarray([1.0, 0.0, 1.0, 1.0, 0.0]), 12)
        yield Case(
            id=f"paths/{api}/eager/int_predictions", y_true=y.reshape(6, 2), y_pred=p.reshape(6, 2),
            true_dtype="float32", pred_dtype="int32", api=api,
            tags={"family": "paths", "regime": "int_predictions", "shape": "6x2", "weights": "none"},
        )  # fmt: skip
        rng = _rng(seed, f"paths/{api}/ragged")
        y, p = _probabilities("typical", "float32", rng, 6)
        yield Case(
            id=f"paths/{api}/eager/ragged", y_true=round_to(y, "float32").reshape(2, 3),
            y_pred=round_to(p, "float32").reshape(2, 3), true_dtype="float32",
            pred_dtype="float32", api=api, row_lengths=(3, 1),
            tags={"family": "paths", "regime": "ragged", "shape": "2x(3,1)", "weights": "none"},
        )  # fmt: skip


# The configurations a case sets (case.Config), each with the regime where it changes the numbers: a policy
# where the 16-bit format rounds typical values, an epsilon where the clip binds, a floatx everywhere.
CONFIGS: tuple[tuple[Config, str], ...] = (
    (Config(policy="mixed_float16"), "typical"),
    (Config(policy="mixed_bfloat16"), "typical"),
    (Config(loss_policy="mixed_float16"), "typical"),
    (Config(loss_policy="mixed_bfloat16"), "typical"),
    (Config(loss_policy="mixed_float16"), "exact_bounds"),
    (Config(epsilon=1e-3), "exact_bounds"),
    (Config(epsilon=1e-3), "typical"),
    (Config(floatx="float64"), "typical"),
    (Config(floatx="float16"), "typical"),
    (Config(epsilon=1e-3, traced_before=True), "exact_bounds"),
    (Config(floatx="float64", traced_before=True), "typical"),
)
CONFIG_PRODUCERS = ("layers.Activation(sigmoid)", "model(x)", "model.predict(x)")


def _config_cases(seed: int, apis: Sequence[str], *, keras2: bool = False) -> Iterator[Case]:
    """Each configuration on the entry points it can change (the loss's and metric's dtype policy only on
    those two; traced_before only in graph modes), then layer and model producers under a global policy,
    whose layers compute in the 16-bit format before the loss sees their output.  Family ``config``, with
    the setting as the ``setting`` tag the summary groups by."""
    for (config, regime), api, mode in itertools.product(CONFIGS, apis, MODES):
        if config.loss_policy is not None and api not in ("BinaryCrossentropy", "metrics.BinaryCrossentropy"):
            continue
        if config.traced_before and (mode == "eager" or api == "metrics.BinaryCrossentropy"):
            continue
        if config.traced_before and config.floatx is not None and (api != "BinaryCrossentropy" or keras2):
            continue  # floatx reaches only the loss class (the functions compute in y_pred's dtype)
        from_logits = api == "nn.sigmoid_cross_entropy_with_logits"
        if from_logits and regime == "exact_bounds":
            continue
        rest = f"config={config.label}/{regime}"
        rng = _rng(seed, f"paths/{api}/{rest}")
        shape = (2, 3, 2) if api == "metrics.BinaryCrossentropy" else (6, 2)
        y, p = (_logits if from_logits else _probabilities)(regime, "float32", rng, math.prod(shape))
        case = _path_case(
            seed, api, mode, rest, y, p, shape, options=Options(from_logits=from_logits), regime=regime, config=config,
        )  # fmt: skip
        yield Case.from_dict({**case.as_dict(), "tags": {**case.tags, "family": "config", "setting": config.label}})
    for policy, producer, mode in itertools.product(("mixed_float16", "mixed_bfloat16"), CONFIG_PRODUCERS, MODES):
        if producer == "model.predict(x)" and mode != "eager":
            continue
        config = Config(policy=policy)
        rest = f"config={config.label}/producer={producer}/typical"
        rng = _rng(seed, f"paths/BinaryCrossentropy/{rest}")
        y, x = _logits("typical", "float32", rng, 16)
        case = _path_case(
            seed, "BinaryCrossentropy", mode, rest, y, x, (8, 2), options=Options(), regime="typical",
            producer=producer, config=config,
        )  # fmt: skip
        yield Case.from_dict({**case.as_dict(), "tags": {**case.tags, "family": "config", "setting": config.label}})
    # the saturated region under a global mixed policy, where two routes to one documented number part: the
    # layer's 16-bit sigmoid output reaches 0 and 1; the loss class converts it to its own dtype (the clip
    # applies), the function computes on the layer's own tensor (whose logits Keras recovers)
    for api, policy in itertools.product(("BinaryCrossentropy", "binary_crossentropy"), ("mixed_float16", "mixed_bfloat16")):
        config = Config(policy=policy)
        rest = f"config={config.label}/producer=layers.Activation(sigmoid)/saturated"
        rng = _rng(seed, f"paths/{api}/{rest}")
        y, x = _saturated_logits(rng, 16)
        case = _path_case(
            seed, api, "eager", rest, y, x, (8, 2), options=Options(), regime="saturated",
            producer="layers.Activation(sigmoid)", config=config,
        )  # fmt: skip
        yield Case.from_dict({**case.as_dict(), "tags": {**case.tags, "family": "config", "setting": config.label}})


MASK = np.asarray([[True, True, False, False], [True, True, True, False]])


def _mask_cases(seed: int) -> Iterator[Case]:
    """A (2, 4) mask on (2, 4, 3) predictions: every reduction, with and without (B, 1) weights.

    The metric is left out: the harness feeds it one update per slice of y_pred, and slicing drops a Keras
    mask, so such a case would not exercise the metric's masking at all.
    """
    for mode, reduction, weighted in itertools.product(MODES, REDUCTIONS, (False, True)):
        rest = f"mask/{reduction or 'None'}/w={'column' if weighted else 'none'}"
        rng = _rng(seed, f"paths/BinaryCrossentropy/{rest}")
        y, p = _probabilities("typical", "float32", rng, 24)
        w = round_to(rng.uniform(0.25, 2.0, (2, 1)), "float32") if weighted else None
        yield _path_case(
            seed, "BinaryCrossentropy", mode, rest, y, p, (2, 4, 3), options=Options(reduction=reduction),
            regime="typical", weights=w, weight_form="column" if weighted else "none", mask=MASK,
        )  # fmt: skip
    for mode in MODES:
        rng = _rng(seed, "paths/BinaryCrossentropy/mask/nan")
        y, p = _probabilities("typical", "float32", rng, 24)
        p[3 * 3] = math.nan  # element (0, 3, 0): its position (0, 3) is masked
        yield _path_case(
            seed, "BinaryCrossentropy", mode, "mask/masked_nan/sum_over_batch_size", y, p, (2, 4, 3),
            options=Options(), regime="masked_nan", mask=MASK,
        )  # fmt: skip


def _gradient_cases(seed: int) -> Iterator[Case]:
    """Gradients w.r.t. y_pred of every stateless entry point, and w.r.t. sample_weight of the loss."""
    grad_apis = ("BinaryCrossentropy", "binary_crossentropy", "ops.binary_crossentropy", "nn.sigmoid_cross_entropy_with_logits")
    for api, mode in itertools.product(grad_apis, MODES):
        logit_choices = (True,) if api == "nn.sigmoid_cross_entropy_with_logits" else (False, True)
        for from_logits in logit_choices:
            regimes = ("typical", "large_1e2", "infinite") if from_logits else ("typical", "near_bounds", "exact_bounds")
            reductions: tuple[str | None, ...] = (
                ("sum", "sum_over_batch_size", "mean_with_sample_weight") if api == "BinaryCrossentropy" else (None,)
            )
            for regime, reduction in itertools.product(regimes, reductions):
                kind = "logits" if from_logits else "probs"
                rest = f"grad=y_pred/{kind}/{regime}/{reduction or 'None'}"
                rng = _rng(seed, f"paths/{api}/{rest}")
                y, p = (_logits if from_logits else _probabilities)(regime, "float32", rng, 12)
                w = round_to(rng.uniform(0.25, 2.0, 6), "float32") if reduction == "mean_with_sample_weight" else None
                yield _path_case(
                    seed, api, mode, rest, y, p, (6, 2), options=Options(from_logits=from_logits, reduction=reduction),
                    regime=regime, weights=w, weight_form="none" if w is None else "per_sample", grad="y_pred",
                )  # fmt: skip
    # through the producers a model has (layers, a model's call): the gradient w.r.t. their logits
    for api, mode, producer in itertools.product(("BinaryCrossentropy", "binary_crossentropy"), MODES, ("layers.Activation(sigmoid)", "layers.Softmax", "model(x)")):
        rest = f"grad=y_pred/producer={producer}/typical"
        rng = _rng(seed, f"paths/{api}/{rest}")
        y, x = _logits("typical", "float32", rng, 16)
        yield _path_case(
            seed, api, mode, rest, y, x, (8, 2), options=Options(), regime="typical", producer=producer, grad="y_pred",
        )  # fmt: skip
    for mode, reduction in itertools.product(MODES, ("sum", "sum_over_batch_size", "mean_with_sample_weight", None)):
        rest = f"grad=sample_weight/{reduction or 'None'}"
        rng = _rng(seed, f"paths/BinaryCrossentropy/{rest}")
        y, p = _probabilities("typical", "float32", rng, 12)
        w = round_to(rng.uniform(0.25, 2.0, 6), "float32")
        yield _path_case(
            seed, "BinaryCrossentropy", mode, rest, y, p, (6, 2), options=Options(reduction=reduction),
            regime="typical", weights=w, weight_form="per_sample", grad="sample_weight",
        )  # fmt: skip


def load_special_cases(path: str | Path = DEFAULT_SPECIAL_CASES) -> list[Case]:
    """The curated boundary cases: a TOML array ``[[case]]`` of named inputs (see the file's header)."""
    path = Path(path)
    data = read_toml(path, "special-case")
    if "divergence" in data:
        raise InputError(f"{path}: this is a registry ([[divergence]]), not a special-case table ([[case]])")
    unknown = set(data) - {"case"}
    if unknown:
        raise InputError(f"{path}: unknown top-level key {min(unknown)!r} (a special-case table has [[case]] only)")
    if not isinstance(data.get("case"), list) or not data["case"]:
        raise InputError(f"{path}: no [[case]] table; a special-case table holds at least one")
    cases = []
    for i, raw in enumerate(data.get("case", [])):
        try:
            if not isinstance(raw, dict):
                raise UsageError("is not a table")
            cases.append(_special_case(raw))
        except (UsageError, KeyError, TypeError, ValueError) as exc:
            msg = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise InputError(f"{path}: case[{i}]: {msg}") from None
    return cases


SPECIAL_FIELDS = {
    "id", "y_true", "y_pred", "dtype", "true_dtype", "pred_dtype", "sample_weight",
    "from_logits", "label_smoothing", "axis", "reduction", "loss_dtype", "expect", "note",
}  # fmt: skip


def _number(v: Any) -> float:
    """A number of the table: a TOML integer or float, or one of the strings "nan", "inf", "-inf"."""
    if isinstance(v, str) and v in _NONFINITE:
        return _NONFINITE[v]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise UsageError(f'{v!r} is not a number (non-finite ones are the strings "nan", "inf", "-inf")')
    return float(v)


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _array(v: Any) -> np.ndarray:
    if isinstance(v, list):
        return np.asarray([_array(x) for x in v], dtype=np.float64)
    return np.asarray(_number(v), dtype=np.float64)


# One [[case]] of the table, every field of its type (the dtypes' and options' values are checked by name
# below and by Options).
SPECIAL_CASE = Obj(
    {
        "id": Str(nonempty=True), "y_true": Values(), "y_pred": Values(), "sample_weight": Values(), "dtype": Str(),
        "true_dtype": Str(), "pred_dtype": Str(), "from_logits": Bool(), "label_smoothing": Num(nonfinite=False),
        "axis": Int(-64, 63), "reduction": Str(), "loss_dtype": Str(), "expect": Values(), "note": Str(),
    },
    required=frozenset({"id", "y_true", "y_pred"}),
)  # fmt: skip
assert set(SPECIAL_CASE.fields) == SPECIAL_FIELDS


def _special_case(raw: dict[str, Any]) -> Case:
    unknown = set(raw) - SPECIAL_FIELDS
    if unknown:
        raise UsageError(f"unknown field {min(unknown)!r}")
    if not isinstance(raw.get("id"), str) or not raw["id"]:
        raise UsageError(f"id={raw.get('id')!r} is not a non-empty string")
    SPECIAL_CASE.check(raw, "")
    dtype = raw.get("dtype", "float32")
    tdt = raw.get("true_dtype", dtype)
    pdt = raw.get("pred_dtype", dtype)
    for key, value, allowed in (("true_dtype", tdt, INPUT_DTYPES), ("pred_dtype", pdt, FLOAT_DTYPES)):
        if value not in allowed:
            raise UsageError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    sw = raw.get("sample_weight")
    return Case(
        id=f"special/{raw['id']}",
        y_true=round_to(_array(raw["y_true"]), tdt),
        y_pred=round_to(_array(raw["y_pred"]), pdt),
        true_dtype=tdt,
        pred_dtype=pdt,
        options=Options(
            from_logits=raw.get("from_logits", False),
            label_smoothing=raw.get("label_smoothing", 0.0),
            axis=raw.get("axis", -1),
            reduction=raw.get("reduction", "none"),
            dtype=raw.get("loss_dtype"),
        ),
        sample_weight=None if sw is None else round_to(_array(sw), "float32"),
        tags={"family": "special", "regime": "special", "shape": "special"},
    )


def special_expectations(path: str | Path = DEFAULT_SPECIAL_CASES) -> dict[str, float | list[Any]]:
    """Hand-worked values stated in the special-case file (``expect``), by case id."""
    data = read_toml(path, "special-case")
    return {f"special/{raw['id']}": raw["expect"] for raw in data.get("case", []) if "expect" in raw}


SUITES = ("default", "nightly", "exhaustive")
# The value sweep: the value grid's unreduced cases (which share stacked calls) in two size buckets, one seed
# after another.  740 records a seed; the nightly's 1,350 seeds make it 999,000 records, about a million
# with the base suite.  ``exhaustive`` is the nightly and then the low-precision audit (harness/audit.py).
SWEEP_SHAPES: tuple[tuple[str, tuple[int, ...]], ...] = (("none", (12, 1)), ("none", (5, 7)))
NIGHTLY_SEEDS = (1, 1350)


def _pairs_family(seed: int, suite: str) -> Iterator[Case]:
    """A covering array over the case facets (generate/space.py): every feasible pair of facet values in
    some case, each case realised from its row with values drawn from the seed."""
    for i, row in enumerate(_covering_rows(suite)):
        yield realize(row, seed=seed, index=i)


@functools.cache
def _covering_rows(suite: str) -> tuple[dict[str, Any], ...]:
    return tuple(covering_rows(space_for(suite)))


def _check_suite(seed: int, suite: str) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed={seed!r} is not a non-negative integer")
    if suite not in SUITES:
        raise UsageError(f"suite={suite!r} is not one of {', '.join(SUITES)}")


def default_suite(
    *,
    seed: int = DEFAULT_SEED,
    special_cases: str | Path | None = DEFAULT_SPECIAL_CASES,
    paths: bool = True,
    suite: str = "default",
    profile: str = "keras3",
) -> list[Case]:
    """Every case of the suite's fixed part (the base: no value sweep), in a fixed order.  ``seed`` must be
    a non-negative int.

    ``paths=False`` leaves out the paths and pairs families (entry points, modes, producers, configurations,
    masks, gradients, the covering array).  ``profile="keras2"`` keeps the paths the Keras 2 line has (no
    keras.ops, masks or gradients) and leaves out the covering array, which combines Keras 3's options.  The
    training and replicas families are in both: each line documents its loops and its strategy rules
    (harness/oracle/training.py).  ``suite="nightly"`` (and ``"exhaustive"``, whose fixed part is the
    nightly's) adds the largest size bucket to the covering array, the full training and replicas families,
    and every mode and entry point of the newer paths; their value sweep is ``Suite``'s.
    """
    _check_suite(seed, suite)
    fixed = "default" if suite == "default" else "nightly"  # the exhaustive suite's fixed part is the nightly's
    cases: list[Case] = []
    if special_cases is not None:
        cases.extend(load_special_cases(special_cases))
    cases.extend(_errors_family(seed))
    cases.extend(_values_family(seed))
    cases.extend(_dtype_reductions_family(seed))
    cases.extend(_options_family(seed))
    if paths:
        cases.extend(_paths_family(seed, profile, fixed))
        if profile == "keras3":  # the covering array combines Keras 3's options (dtype, its reductions)
            cases.extend(_pairs_family(seed, fixed))
    cases.extend(training_family(seed, fixed))
    cases.extend(replicas_family(seed, fixed))
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"case id {dup!r} is generated twice")
    return cases


def sweep_family(seed: int) -> Iterator[Case]:
    """One seed of the value sweep: the value grid's unreduced cases in the sweep's size buckets."""
    return _values_family(seed, shapes=SWEEP_SHAPES, sweep=True)


def parse_seeds(text: str) -> tuple[int, int]:
    """``A..B`` (inclusive, 0 <= A <= B) or one seed ``A``; UsageError otherwise."""
    first, sep, last = text.partition("..")
    try:
        a, b = int(first), int(last if sep else first)
    except ValueError:
        raise UsageError(f"--seeds {text!r} is not of the form A..B (two non-negative integers)") from None
    if a < 0 or b < a:
        raise UsageError(f"--seeds {text!r}: needs 0 <= A <= B")
    return a, b


class Suite:
    """A named suite as a stream: the base (``default_suite``, a few thousand cases, built once) and then
    the value sweep over ``seeds``, generated seed by seed, so a million cases never sit in memory at once.

    ``ids()`` lists the ids without building any array (a sweep's ids are one seed's with the seed
    changed), which is how a run counts, fingerprints, selects and shards the suite before it starts."""

    def __init__(
        self, name: str = "default", *, seed: int = DEFAULT_SEED, special_cases: str | Path | None = DEFAULT_SPECIAL_CASES,
        paths: bool = True, seeds: tuple[int, int] | None = None,
    ) -> None:  # fmt: skip
        _check_suite(seed, name)
        self.name, self.seed, self.special_cases, self.paths = name, seed, special_cases, paths
        if seeds is None and name != "default":
            seeds = NIGHTLY_SEEDS
        self.seeds = range(0) if seeds is None else range(seeds[0], seeds[1] + 1)
        self._base: list[Case] | None = None

    @property
    def base(self) -> list[Case]:
        if self._base is None:
            self._base = default_suite(seed=self.seed, special_cases=self.special_cases, paths=self.paths, suite=self.name)
        return self._base

    @functools.cached_property
    def templates(self) -> tuple[Case, ...]:
        """One seed's sweep (seed 0): what every seed's case at that position is, but for its values."""
        return tuple(sweep_family(0))

    @functools.cached_property
    def _template(self) -> tuple[str, ...]:
        """One seed's sweep ids with the seed left out (each ends in ``/seed=``)."""
        return tuple(c.id[: c.id.rindex("=") + 1] for c in self.templates)

    @property
    def per_seed(self) -> int:
        return len(self._template)

    def __len__(self) -> int:
        return len(self.base) + len(self.seeds) * self.per_seed

    def ids(self) -> Iterator[str]:
        yield from (c.id for c in self.base)
        for s in self.seeds:
            yield from (t + str(s) for t in self._template)

    def id_at(self, position: int) -> str:
        """The id at ``position`` in ``ids()`` order, made when asked: a run holds a million ids this way
        in no memory (as a list they are about 110 MB in the run's own process, for its whole length)."""
        nb = len(self.base)
        if position < nb:
            return self.base[position].id
        k, at = divmod(position - nb, self.per_seed)
        return self._template[at] + str(self.seeds[k])

    def id_view(self) -> SuiteIds:
        """``ids()`` as a sequence: ``view[p]`` is ``id_at(p)``."""
        return SuiteIds(self)

    def __iter__(self) -> Iterator[Case]:
        yield from self.base
        for s in self.seeds:
            yield from sweep_family(s)

    def chosen(self, *, max_cases: int | None = None, pattern: str | None = None, shard: tuple[int, int] | None = None) -> Sequence[int]:
        """Positions (in ``ids()`` order) of the cases a run takes: ``select``'s rule (the ids matching
        ``pattern``, then at most ``max_cases`` spread evenly), then the ``shard``'s slice of those."""
        import fnmatch

        # without a pattern every position, as a range: a million positions as a list are about 36 MB
        picked: Sequence[int] = range(len(self)) if pattern is None else [i for i, cid in enumerate(self.ids()) if fnmatch.fnmatchcase(cid, pattern)]
        if max_cases is not None and len(picked) > max_cases:
            picked = [picked[k] for k in _spread(len(picked), max_cases)]
        if shard is not None:
            k, n = shard
            picked = picked[k - 1 :: n]
        return picked

    def cases_at(self, positions: Sequence[int], *, deferred: bool = False) -> Iterator[Case | Deferred]:
        """The cases at ``positions`` (ascending), generated seed by seed: a seed none of them needs is skipped.
        ``deferred``: the sweep's cases as ``case.Deferred`` (their recipe and their position's template), to
        be made by the worker that evaluates them."""
        wanted = iter(positions)
        nxt = next(wanted, None)
        nb, per = len(self.base), self.per_seed
        while nxt is not None and nxt < nb:
            yield self.base[nxt]
            nxt = next(wanted, None)
        while nxt is not None:
            k = (nxt - nb) // per
            start, seed = nb + k * per, self.seeds[k]
            specs = list(_value_specs(seed, SWEEP_SHAPES, True))
            while nxt is not None and nxt < start + per:  # only the cases taken are realised
                spec = specs[nxt - start]
                if deferred:
                    yield Deferred(spec[0], self.templates[nxt - start], _value_case, (seed, spec))
                else:
                    yield _value_case(seed, spec)
                nxt = next(wanted, None)


class SuiteIds(Sequence[str]):
    """A suite's ids in ``ids()`` order as a sequence, each made when read (``Suite.id_at``)."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite

    def __len__(self) -> int:
        return len(self.suite)

    def __getitem__(self, position: Any) -> Any:
        if isinstance(position, slice):
            return [self.suite.id_at(p) for p in range(len(self))[position]]
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(position)
        return self.suite.id_at(position)

    def __iter__(self) -> Iterator[str]:
        return self.suite.ids()

    def take(self, positions: Sequence[int]) -> Iterator[str]:
        """The ids at ``positions`` (ascending), in order: a range of them read off ``ids()`` (a million in
        a fifth of a second), other positions one by one."""
        if isinstance(positions, range) and positions.step > 0:
            return itertools.islice(self.suite.ids(), positions.start, positions.stop, positions.step)
        return map(self.suite.id_at, positions)


def _spread(n: int, max_cases: int | None) -> range | list[int]:
    if max_cases is None or n <= max_cases:
        return range(n)
    step = n / max_cases
    return [int(i * step) for i in range(max_cases)]


def select(cases: Sequence[Case], *, max_cases: int | None = None, pattern: str | None = None) -> list[Case]:
    """A subset: ids matching the glob ``pattern``, then at most ``max_cases`` spread evenly over the list."""
    import fnmatch

    if max_cases is not None and (isinstance(max_cases, bool) or not isinstance(max_cases, int) or max_cases < 1):
        raise UsageError(f"max_cases={max_cases!r} is not a positive integer")
    chosen = [c for c in cases if pattern is None or fnmatch.fnmatchcase(c.id, pattern)]
    return [chosen[k] for k in _spread(len(chosen), max_cases)]
