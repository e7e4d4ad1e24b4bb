"""A user's compiled model, read the ways people read its loss: ``evaluate``, the compiled loss on
``model(x)`` and on ``model.predict(x)``, and the compiled ``BinaryCrossentropy`` metrics.

Imported by ``harness.modelcheck`` (lazily, for TensorFlow's sake) and ``harness.keras``.  Nothing here
judges: it returns the values, the model's own outputs (and the logits Keras attached to them, which its
loss may take instead), and the compiled configuration, as a ``ModelRun``; the oracle's comparison is the
commands floor's.  The model is never trained or changed: ``evaluate`` and ``predict`` leave the weights as
they are, and a float32 twin (for a mixed-precision model) is a new model built from the config.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UsageError

__all__ = ["LossConfig", "MetricRead", "ModelRun", "load_model", "run_model"]

DEFAULT_BATCH_SIZE = 32  # Model.evaluate: "If unspecified, batch_size will default to 32"
BCE_NAMES = ("binary_crossentropy", "BinaryCrossentropy", "bce")


@dataclass(frozen=True)
class LossConfig:
    """The compiled BCE's options (``BinaryCrossentropy.get_config``, or the defaults of the string
    ``"binary_crossentropy"``, which ``compile`` wraps with ``reduction="sum_over_batch_size"``)."""

    from_logits: bool = False
    label_smoothing: float = 0.0
    axis: int = -1
    reduction: str | None = "sum_over_batch_size"
    dtype: str = "float32"


@dataclass(frozen=True)
class MetricRead:
    """A compiled ``BinaryCrossentropy`` metric and what ``evaluate`` reported for it."""

    name: str
    weighted: bool  # from compile(weighted_metrics=...): weighted by sample_weight
    from_logits: bool
    label_smoothing: float
    value: float


@dataclass(frozen=True)
class ModelRun:
    """What the model gives on (x, y): each route's loss and what it was computed from."""

    outputs: np.ndarray  # model.predict(x): NumPy, no attribute
    output_dtype: str
    called: np.ndarray  # model(x), as values
    logits: np.ndarray | None  # model(x)._keras_logits: what Keras's BCE takes instead of the output
    loss: LossConfig
    policy: str  # the model's dtype policy
    batch_size: int
    evaluate: float | None  # None: not run (inside a running loop, whose trackers it would reset)
    loss_on_call: float
    loss_on_predict: float
    metrics: tuple[MetricRead, ...] = ()
    twin_outputs: np.ndarray | None = None  # the same weights under the float32 policy (mixed models only)
    twin_note: str | None = None  # why there is no twin, when the model is mixed
    replicas: int = 1  # the strategy in scope's num_replicas_in_sync
    activation: str | None = None  # the last layer's activation, when the model has layers to read
    versions: dict[str, str] = field(default_factory=dict)


def _keras() -> Any:
    from harness.frameworks import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def load_model(path: str | Path) -> Any:
    """The model saved at ``path`` (``.keras`` or ``.h5``), compiled as it was saved.

    A ``.keras`` file is loaded without its optimizer (its state is not needed, and a mixed-precision
    model's loss-scale optimizer does not load back in Keras 3.15) and compiled from its saved compile
    config.  Any failure is the input's: a UsageError naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--model {str(path)!r}: no such file")
    keras = _keras()
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                config = json.loads(z.read("config.json"))
            model = keras.models.load_model(p, compile=False)
            compile_config = config.get("compile_config")
            if compile_config:
                model.compile_from_config(compile_config)
            return model
        return keras.models.load_model(p)
    except Exception as exc:  # noqa: BLE001 - whatever Keras raises on the user's file is the input's fault
        raise UsageError(f"--model {str(path)!r} cannot be loaded: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def _loss_object(keras: Any, model: Any) -> tuple[Any, LossConfig]:
    """The compiled loss as a loss object, and its options; a UsageError unless it is binary cross-entropy."""
    loss = getattr(model, "loss", None)
    if loss is None:
        raise UsageError("the model is not compiled with a loss: compile it with loss='binary_crossentropy' (or a BinaryCrossentropy)")
    if isinstance(loss, (list, tuple, dict)):
        raise UsageError(f"the model has {len(loss)} losses: explain --model reads one binary cross-entropy output")
    if isinstance(loss, str) or not isinstance(loss, keras.losses.Loss):
        fn = keras.losses.get(loss)
        if fn is not keras.losses.binary_crossentropy:
            raise UsageError(f"the model's loss {getattr(fn, '__name__', loss)!r} is not binary cross-entropy")
        loss = keras.losses.BinaryCrossentropy()  # what compile makes of the string: the function, default options
    if getattr(loss, "fn", None) is not keras.losses.binary_crossentropy:
        raise UsageError(f"the model's loss {type(loss).__name__} is not binary cross-entropy")
    kw = dict(getattr(loss, "_fn_kwargs", {}))
    dtype = getattr(loss, "dtype", None) or keras.config.floatx()
    dtype = getattr(dtype, "name", dtype)
    return loss, LossConfig(
        from_logits=bool(kw.get("from_logits", False)),
        label_smoothing=float(kw.get("label_smoothing", 0.0)),
        axis=int(kw.get("axis", -1)),
        reduction=loss.reduction,
        dtype=str(dtype),
    )


def _bce_metrics(model: Any) -> list[tuple[str, bool, bool, float]]:
    """(name, weighted, from_logits, label_smoothing) of each compiled BCE metric, from the compile config."""
    try:
        config = model.get_compile_config() or {}
    except Exception:  # noqa: BLE001 - a model compiled without a config: no metrics to read
        return []
    found = []
    for key, weighted in (("metrics", False), ("weighted_metrics", True)):
        entries = config.get(key) or []
        if isinstance(entries, dict):
            entries = list(entries.values())
        for entry in entries:
            if isinstance(entry, str) and entry in BCE_NAMES:
                found.append(("binary_crossentropy" if entry != "bce" else entry, weighted, False, 0.0))
            elif isinstance(entry, dict) and entry.get("class_name") == "BinaryCrossentropy":
                c = entry.get("config", {})
                found.append((str(c.get("name", "binary_crossentropy")), weighted, bool(c.get("from_logits", False)), float(c.get("label_smoothing", 0.0))))
    return found


def _policy_name(obj: Any) -> str:
    policy = getattr(obj, "dtype_policy", None)
    return str(getattr(policy, "name", policy or "float32"))


def _float32_twin(keras: Any, model: Any) -> tuple[Any | None, str | None]:
    """The model rebuilt from its config with every mixed policy made float32, holding the same weights; or
    (None, why) for a model that cannot be rebuilt from its config (a subclassed one, usually)."""

    def unmix(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and str(node.get("config", {}).get("name", "")).startswith("mixed_"):
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {k: unmix(v) for k, v in node.items()}
        if isinstance(node, list):
            return [unmix(v) for v in node]
        if isinstance(node, str) and node.startswith("mixed_"):
            return "float32"
        return node

    try:
        twin = type(model).from_config(unmix(model.get_config()))
        twin.set_weights(model.get_weights())
    except Exception as exc:  # noqa: BLE001 - a model that cannot be rebuilt: say so, do not guess
        return None, f"the model cannot be rebuilt from its config under float32 ({type(exc).__name__})"
    return twin, None


def run_model(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    batch_size: int | None = None,
    evaluate: bool = True,
) -> ModelRun:
    """Every route's loss of ``model`` on (x, y).  Nothing is trained: evaluate and predict only.
    ``evaluate=False`` leaves out evaluate and the compiled metrics (a callback's check, inside fit or
    evaluate: a nested evaluate would reset the running loop's loss tracker and metrics)."""
    keras = _keras()
    import tensorflow as tf

    loss, config = _loss_object(keras, model)
    bs = batch_size or DEFAULT_BATCH_SIZE
    called = model(x, training=False)
    if isinstance(called, (list, tuple, dict)):
        raise UsageError("the model has several outputs: explain --model reads one binary cross-entropy output")
    logits = getattr(called, "_keras_logits", None)
    outputs = model.predict(x, batch_size=bs, verbose=0)
    out = np.asarray(outputs)
    if str(out.dtype) not in ("float16", "bfloat16", "float32", "float64") or out.ndim == 0 or out.shape[0] != len(y):
        raise UsageError(f"the model's output has shape {out.shape} and dtype {out.dtype}: not BCE-shaped for {len(y)} labels")
    if np.shape(y)[1:] != out.shape[1:] and not (np.ndim(y) == 1 and out.shape[1:] == (1,)):
        raise UsageError(f"--y has shape {np.shape(y)} and the model's output {out.shape}: not BCE-shaped")
    sw = None if sample_weight is None else tf.constant(sample_weight, dtype=tf.float32)

    def on(pred: Any) -> float:
        return float(loss(y, pred) if sw is None else loss(y, pred, sample_weight=sw))

    loss_on_call = on(called)
    loss_on_predict = on(outputs)
    logs = model.evaluate(x, y, batch_size=bs, sample_weight=sample_weight, verbose=0, return_dict=True) if evaluate else {}
    metrics = tuple(
        MetricRead(name=name, weighted=weighted, from_logits=fl, label_smoothing=ls, value=float(logs[name]))
        for name, weighted, fl, ls in _bce_metrics(model)
        if name in logs
    )
    policy = _policy_name(model)
    layers = getattr(model, "layers", None) or []
    last = layers[-1] if layers else None
    if last is not None and _policy_name(last).startswith("mixed_"):
        policy = _policy_name(last)
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    twin_outputs, twin_note = None, None
    if str(out.dtype) != "float32" or policy.startswith("mixed_"):
        twin, twin_note = _float32_twin(keras, model)
        if twin is not None:
            twin_outputs = np.asarray(twin.predict(x, batch_size=bs, verbose=0))
    return ModelRun(
        outputs=out,
        output_dtype=str(out.dtype),
        called=np.asarray(called),
        logits=None if logits is None else np.asarray(logits),
        loss=config,
        policy=policy,
        batch_size=bs,
        evaluate=float(logs["loss"]) if evaluate else None,
        loss_on_call=loss_on_call,
        loss_on_predict=loss_on_predict,
        metrics=metrics,
        twin_outputs=twin_outputs,
        twin_note=twin_note,
        replicas=int(tf.distribute.get_strategy().num_replicas_in_sync),
        activation=activation,
        versions={"tensorflow": tf.__version__, "keras": keras.__version__},
    )
