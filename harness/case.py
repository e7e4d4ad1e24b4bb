"""What flows through the pipeline: a ``Case`` in, an ``Expected`` and an ``Outcome`` out of the two sides.

Arrays are stored as float64 (or bool/int for labels) holding values exactly representable in the dtype
named beside them, so a case is the same on every side: the target builds tensors of that dtype, the
reference rounds from there into the loss's compute dtype as the loss does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.dtypes import FLOAT_DTYPES, INPUT_DTYPES, representable
from harness.errors import UsageError
from harness.jsonio import decode_array, decode_number, encode_array

__all__ = [
    "APIS",
    "API_LOSS_CLASS",
    "FLOATX",
    "GRADS",
    "MODES",
    "POLICIES",
    "PRED_DTYPES",
    "PRODUCERS",
    "REDUCTIONS",
    "REPLICA_ROUTES",
    "TRAINING_ROUTES",
    "Case",
    "Config",
    "Deferred",
    "Expected",
    "Options",
    "Outcome",
    "TrainingSpec",
    "policy_compute_dtype",
    "compute_dtype_of",
    "realize",
    "template_of",
]

API_LOSS_CLASS = "BinaryCrossentropy"
# The ways users reach binary cross-entropy (harness/frameworks calls each; the oracle says what each computes).
APIS: tuple[str, ...] = (
    API_LOSS_CLASS,  # tf.keras.losses.BinaryCrossentropy
    "binary_crossentropy",  # tf.keras.losses.binary_crossentropy
    "ops.binary_crossentropy",  # keras.ops.binary_crossentropy
    "metrics.BinaryCrossentropy",  # tf.keras.metrics.BinaryCrossentropy: update_state per leading slice
    "nn.sigmoid_cross_entropy_with_logits",  # tf.nn.sigmoid_cross_entropy_with_logits
    "backend.binary_crossentropy",  # tf.keras.backend.binary_crossentropy: the older, elementwise formula
)
MODES: tuple[str, ...] = ("eager", "function", "xla")  # xla: tf.function(jit_compile=True)
# What produced the probabilities when ``producer`` is set: y_pred then holds logits, and the target applies
# the producer to them (inside the traced function in graph modes) before the loss sees them.
PRODUCERS: tuple[str, ...] = (
    "tf.sigmoid",
    "keras.activations.sigmoid",
    "keras.ops.sigmoid",
    "layers.Activation(sigmoid)",  # a keras.layers.Activation("sigmoid") layer called on the logits
    "layers.Softmax",  # keras.layers.Softmax() over the last axis: probabilities that sum to 1 per row
    "model(x)",  # a Sequential model of that Activation layer, called
    "model.predict(x)",  # the same model's predict: NumPy out, so eager and without gradients
)
# y_pred's dtypes: the float formats, and int32 (integer predictions, which entry points treat differently)
PRED_DTYPES: tuple[str, ...] = (*FLOAT_DTYPES, "int32")
# Keras's dtype policies a case may set, globally or as a loss's ``dtype``; the mixed ones compute in the
# 16-bit format and keep float32 variables (keras/src/dtype_policies/dtype_policy.py, Keras 3.15).
POLICIES: tuple[str, ...] = ("float32", "mixed_float16", "mixed_bfloat16", "float16", "bfloat16", "float64")
# keras.config.set_floatx: "value: String; 'bfloat16', 'float16', 'float32', or 'float64'."
FLOATX: tuple[str, ...] = ("bfloat16", "float16", "float32", "float64")


def policy_compute_dtype(policy: str) -> str:
    """The compute dtype of a policy name: "mixed_float16" -> float16, a plain dtype name -> itself."""
    return {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(policy, policy)


def compute_dtype_of(
    api: str,
    pred_dtype: str,
    dtype: str | None = None,
    *,
    loss_policy: str | None = None,
    config_floatx: str | None = None,
    floatx: str = "float32",
) -> str:
    """The one rule for the dtype an entry point computes in under Keras 3 (every other reading calls it: a
    case's ``compute_dtype_under``, the oracle, the facets of a suite row, a drawn case).

    The loss and the metric compute in their ``dtype`` option, else the compute dtype of the loss's policy,
    else the floatx the case sets, else the worker's ``floatx`` (Loss docstring: "dtype: ... Defaults to None,
    which means using keras.backend.floatx() ... If a keras.DTypePolicy is provided, then the compute_dtype
    will be utilized", keras/src/losses/loss.py, Keras 3.15).  The functions compute in ``y_pred``'s dtype
    (binary_crossentropy casts y_true to it).  Keras 2's rule is its own profile's
    (``harness.oracle.keras2.Keras2.compute_dtype``).
    """
    if api in (API_LOSS_CLASS, "metrics.BinaryCrossentropy"):
        if dtype is not None:
            return dtype
        if loss_policy is not None:
            return policy_compute_dtype(loss_policy)
        if config_floatx is not None:
            return config_floatx
        return floatx
    return pred_dtype
GRADS: tuple[str, ...] = ("y_pred", "sample_weight")  # the gradient of the result's sum w.r.t. this input
# Keras 3.15 keras/src/losses/loss.py standardize_reduction: the accepted values.
REDUCTIONS: tuple[str | None, ...] = ("sum", "sum_over_batch_size", "mean", "mean_with_sample_weight", "none", None)
# How a training loop reaches the loss (the model's compiled loss is the loss class with the case's options):
TRAINING_ROUTES: tuple[str, ...] = ("evaluate", "test_on_batch", "fit", "train_on_batch")
# How a loss meets replicas under a strategy: called on each replica's slice inside ``strategy.run`` (the
# per-replica results summed by ``strategy.reduce("SUM")``), the same with ``reduction="none"`` and
# ``tf.nn.compute_average_loss(per_example, global_batch_size=N)``, or called on the whole batch in the
# strategy's scope but outside ``strategy.run`` (the cross-replica context).
REPLICA_ROUTES: tuple[str, ...] = ("run", "run:compute_average_loss", "cross_replica")
ACTIVATIONS: tuple[str, ...] = ("linear", "sigmoid")
# Where the metric BinaryCrossentropy is compiled: ``compile(metrics=...)`` (not weighted by sample_weight or
# class_weight) or ``compile(weighted_metrics=...)`` (weighted), as compile's docstring says.
METRIC_ARGS: tuple[str, ...] = ("metrics", "weighted_metrics")
STRATEGIES: tuple[str | None, ...] = (None, "mirrored")


@dataclass(frozen=True)
class TrainingSpec:
    """How a training-loop or replica case reaches the loss, instead of a direct call.

    ``route`` is one of TRAINING_ROUTES (a tiny compiled model whose output is the case's predictions: a
    ``Dense(C, kernel_initializer="identity")`` layer with ``activation``, on an input that is ``y_pred``;
    with ``"sigmoid"`` y_pred holds the logits) or REPLICA_ROUTES (the loss object under ``strategy``).
    ``batch_size`` splits the data for ``evaluate`` and ``fit`` (None: one batch); ``class_weight`` is a
    tuple of (class, weight) pairs; ``metric`` ("metrics" or "weighted_metrics") adds
    ``metrics.BinaryCrossentropy`` to that argument of ``compile``, and the result is then ``[loss, metric]``; ``splits`` are the replicas' slice sizes for the replica routes;
    ``strategy`` is None or ``"mirrored"`` (MirroredStrategy over two logical CPU devices).
    """

    route: str
    batch_size: int | None = None
    activation: str = "linear"
    class_weight: tuple[tuple[int, float], ...] | None = None
    metric: str | None = None
    strategy: str | None = None
    splits: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.route not in TRAINING_ROUTES + REPLICA_ROUTES:
            raise UsageError(f"training.route={self.route!r} is not one of {', '.join(TRAINING_ROUTES + REPLICA_ROUTES)}")
        bs = self.batch_size
        if bs is not None and (isinstance(bs, bool) or not isinstance(bs, int) or bs < 1):
            raise UsageError(f"training.batch_size={bs!r} is not None or a positive integer")
        if self.activation not in ACTIVATIONS:
            raise UsageError(f"training.activation={self.activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"training.strategy={self.strategy!r} is not None or 'mirrored'")
        if self.route in REPLICA_ROUTES and self.strategy is None:
            raise UsageError(f"training.route={self.route!r} needs a strategy")
        if self.metric is not None and self.metric not in METRIC_ARGS:
            raise UsageError(f"training.metric={self.metric!r} is not None or one of {', '.join(METRIC_ARGS)}")
        if self.class_weight is not None:
            try:
                pairs = tuple((int(k), float(w)) for k, w in self.class_weight)
            except (TypeError, ValueError):
                raise UsageError(f"training.class_weight={self.class_weight!r} is not (class, weight) pairs") from None
            object.__setattr__(self, "class_weight", pairs)
        if self.splits is not None:
            splits = tuple(self.splits)
            if not splits or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in splits):
                raise UsageError(f"training.splits={self.splits!r} is not a tuple of slice sizes")
            object.__setattr__(self, "splits", splits)

    @property
    def replicas(self) -> int:
        """How many replicas the strategy has: two logical CPU devices under ``"mirrored"``, else one."""
        return 2 if self.strategy == "mirrored" else 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "batch_size": self.batch_size,
            "activation": self.activation,
            "class_weight": None if self.class_weight is None else [[k, w] for k, w in self.class_weight],
            "metric": self.metric,
            "strategy": self.strategy,
            "splits": None if self.splits is None else list(self.splits),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainingSpec:
        if not isinstance(d, Mapping):
            raise UsageError(f"training={d!r} is not a table")
        fields = {"route", "batch_size", "activation", "class_weight", "metric", "strategy", "splits"}
        unknown = set(d) - fields
        if unknown:
            raise UsageError(f"training has unknown field(s) {sorted(unknown)}")
        if "route" not in d:
            raise UsageError("training field 'route' is missing")
        cw = d.get("class_weight")
        splits = d.get("splits")
        return cls(
            route=d["route"],
            batch_size=d.get("batch_size"),
            activation=d.get("activation", "linear"),
            class_weight=None if cw is None else tuple(tuple(pair) for pair in cw),
            metric=d.get("metric"),
            strategy=d.get("strategy"),
            splits=None if splits is None else tuple(splits),
        )


@dataclass(frozen=True)
class Options:
    """Constructor options of the loss.  ``reduction`` may be any string so that invalid calls are cases."""

    from_logits: bool = False
    label_smoothing: float = 0.0
    axis: int = -1
    reduction: str | None = "sum_over_batch_size"
    dtype: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.from_logits, bool):
            raise UsageError(f"from_logits={self.from_logits!r} is not a bool")
        ls = self.label_smoothing
        if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not math.isfinite(ls):
            raise UsageError(f"label_smoothing={ls!r} is not a finite number")
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise UsageError(f"axis={self.axis!r} is not an int")
        if self.reduction is not None and not isinstance(self.reduction, str):
            raise UsageError(f"reduction={self.reduction!r} is not a string or None")
        if self.dtype is not None and self.dtype not in FLOAT_DTYPES:
            raise UsageError(f"dtype={self.dtype!r} is not None or one of {', '.join(FLOAT_DTYPES)}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
            "reduction": self.reduction,
            "dtype": self.dtype,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Options:
        if not isinstance(d, Mapping):
            raise UsageError(f"options={d!r} is not a table of option names")
        unknown = set(d) - {"from_logits", "label_smoothing", "axis", "reduction", "dtype"}
        if unknown:
            raise UsageError(f"options has unknown field(s) {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class Config:
    """Keras's global configuration a case sets before its call and restores after it.

    ``policy`` is the global mixed-precision policy (``keras.mixed_precision.set_global_policy``),
    ``loss_policy`` a ``keras.DTypePolicy`` passed as the loss's (or metric's) ``dtype``, ``epsilon`` and
    ``floatx`` the values of ``keras.config.set_epsilon`` / ``set_floatx``.  ``traced_before``: the loss is
    built and its function traced under the configuration in force before the change, then called after
    it (graph modes only).  A field left None leaves that setting as the worker's Keras has it.
    """

    policy: str | None = None
    loss_policy: str | None = None
    epsilon: float | None = None
    floatx: str | None = None
    traced_before: bool = False

    def __post_init__(self) -> None:
        for name in ("policy", "loss_policy"):
            value = getattr(self, name)
            if value is not None and value not in POLICIES:
                raise UsageError(f"{name}={value!r} is not None or one of {', '.join(POLICIES)}")
        eps = self.epsilon
        if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 0.5):
            raise UsageError(f"epsilon={eps!r} is not a number in (0, 0.5)")
        if self.floatx is not None and self.floatx not in FLOATX:
            raise UsageError(f"floatx={self.floatx!r} is not None or one of {', '.join(FLOATX)}")
        if not isinstance(self.traced_before, bool):
            raise UsageError(f"traced_before={self.traced_before!r} is not a bool")

    @property
    def label(self) -> str:
        """The settings as one facet value, e.g. ``policy=mixed_float16,epsilon=0.001``."""
        parts = [f"{k}={v}" for k, v in self.as_dict().items() if v is not None and v is not False]
        return ",".join(parts) or "default"

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "loss_policy": self.loss_policy,
            "epsilon": self.epsilon,
            "floatx": self.floatx,
            "traced_before": self.traced_before,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Config:
        if not isinstance(d, Mapping):
            raise UsageError(f"config={d!r} is not a table of settings")
        unknown = set(d) - {"policy", "loss_policy", "epsilon", "floatx", "traced_before"}
        if unknown:
            raise UsageError(f"config has unknown field(s) {sorted(unknown)}")
        return cls(**d)


def _check_array(name: str, a: np.ndarray, dtype: str, dtype_arg: str) -> np.ndarray:
    if dtype not in INPUT_DTYPES:
        raise UsageError(f"{dtype_arg}={dtype!r} is not one of {', '.join(INPUT_DTYPES)}")
    try:
        a = np.array(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"{name}={a!r} is not an array of numbers") from None
    off = ~representable(a, dtype)
    if off.any():
        where = tuple(int(i) for i in np.argwhere(off)[0]) if a.ndim else ()
        raise UsageError(f"{name}{list(where)}={float(a[where])!r} is not representable in {dtype_arg}={dtype!r}")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Case:
    """One call of the loss: inputs with their dtypes, constructor options, and descriptive tags.

    ``sample_weight`` is None, a 0-d array (a Python scalar in the call) or an array of ``weight_dtype``.
    ``api`` and ``mode`` say which entry point is called and how (eager, traced, XLA).  ``producer`` makes
    y_pred logits that a sigmoid turns into the probabilities; ``mask`` is a Keras mask set on y_pred (one
    boolean per loss element); ``grad`` asks for the gradient of the result's sum with respect to y_pred
    (or the producer's logits) or sample_weight instead of the result.  For the metric, the leading axis of
    y_true, y_pred and sample_weight counts the ``update_state`` calls.  ``tags`` name where the case sits
    in the grid (family, regime, shape, weights); the registry and the summary group by them.
    """

    id: str
    y_true: np.ndarray
    y_pred: np.ndarray
    true_dtype: str
    pred_dtype: str
    options: Options = field(default_factory=Options)
    sample_weight: np.ndarray | None = None
    weight_dtype: str = "float32"
    api: str = API_LOSS_CLASS
    tags: Mapping[str, str] = field(default_factory=dict)
    mode: str = "eager"
    producer: str | None = None
    mask: np.ndarray | None = None
    grad: str | None = None
    training: TrainingSpec | None = None
    config: Config | None = None
    row_lengths: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise UsageError("id='' is empty")
        object.__setattr__(self, "y_true", _check_array("y_true", self.y_true, self.true_dtype, "true_dtype"))
        if self.pred_dtype not in PRED_DTYPES:
            raise UsageError(f"pred_dtype={self.pred_dtype!r} is not one of {', '.join(PRED_DTYPES)}")
        object.__setattr__(self, "y_pred", _check_array("y_pred", self.y_pred, self.pred_dtype, "pred_dtype"))
        if self.sample_weight is not None:
            if self.weight_dtype not in FLOAT_DTYPES:
                raise UsageError(f"weight_dtype={self.weight_dtype!r} is not one of {', '.join(FLOAT_DTYPES)}")
            sw = _check_array("sample_weight", self.sample_weight, self.weight_dtype, "weight_dtype")
            object.__setattr__(self, "sample_weight", sw)
        if self.api not in APIS:
            raise UsageError(f"api={self.api!r} is not one of {', '.join(APIS)}")
        if self.mode not in MODES:
            raise UsageError(f"mode={self.mode!r} is not one of {', '.join(MODES)}")
        if self.producer is not None and self.producer not in PRODUCERS:
            raise UsageError(f"producer={self.producer!r} is not None or one of {', '.join(PRODUCERS)}")
        if self.grad is not None and self.grad not in GRADS:
            raise UsageError(f"grad={self.grad!r} is not None or one of {', '.join(GRADS)}")
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.dtype != np.bool_:
                raise UsageError(f"mask dtype={mask.dtype} is not bool")
            mask = mask.copy()
            mask.setflags(write=False)
            object.__setattr__(self, "mask", mask)
        if self.training is not None:
            if not isinstance(self.training, TrainingSpec):
                raise UsageError(f"training={self.training!r} is not a TrainingSpec")
            if self.api != API_LOSS_CLASS or self.mode != "eager" or self.producer or self.grad or self.mask is not None:
                raise UsageError("a training case reaches the loss class through its route: api, mode, producer, grad and mask stay default")
            if self.training.splits is not None and sum(self.training.splits) != (self.y_pred.shape[0] if self.y_pred.ndim else 0):
                raise UsageError(f"training.splits={list(self.training.splits)} do not add up to the batch of y_pred {self.y_pred.shape}")
        if self.config is not None:
            if not isinstance(self.config, Config):
                raise UsageError(f"config={self.config!r} is not a Config")
            if self.config.traced_before and self.mode == "eager":
                raise UsageError("config.traced_before=True needs mode 'function' or 'xla': nothing is traced eagerly")
        if self.row_lengths is not None:
            lengths = self.row_lengths
            if not isinstance(lengths, (tuple, list)) or any(isinstance(n, bool) or not isinstance(n, int) for n in lengths):
                raise UsageError(f"row_lengths={lengths!r} is not a list of ints")
            lengths = tuple(lengths)
            shape = self.y_pred.shape
            if self.y_pred.ndim != 2 or self.y_true.shape != shape or len(lengths) != shape[0] or any(not 0 < n <= shape[1] for n in lengths):
                raise UsageError(f"row_lengths={list(lengths)!r} does not fit y_true and y_pred of shape {shape} (rows of 1 to {shape[-1] if shape else 0})")
            if self.sample_weight is not None or self.mask is not None or self.grad is not None or self.producer is not None:
                raise UsageError("row_lengths: a ragged case has no sample_weight, mask, grad or producer")
            object.__setattr__(self, "row_lengths", lengths)
        if self.producer == "model.predict(x)" and (self.mode != "eager" or self.grad is not None):
            raise UsageError(f"producer={self.producer!r} runs eagerly and returns NumPy: mode 'eager' and no grad only")
        object.__setattr__(self, "tags", dict(self.tags))

    @property
    def compute_dtype(self) -> str:
        """The dtype the entry point computes in under Keras's default floatx (see ``compute_dtype_under``)."""
        return self.compute_dtype_under("float32")

    def compute_dtype_under(self, floatx: str) -> str:
        """The dtype the entry point computes in when the worker's floatx is ``floatx``: the loss's and the
        metric's ``dtype`` option, else the case's loss policy's compute dtype, else the floatx the case sets,
        else ``floatx``; y_pred's dtype for the functions."""
        cfg = self.config
        return compute_dtype_of(
            self.api,
            self.pred_dtype,
            self.options.dtype,
            loss_policy=None if cfg is None else cfg.loss_policy,
            config_floatx=None if cfg is None else cfg.floatx,
            floatx=floatx,
        )

    @property
    def path(self) -> str:
        """The entry point and how it is reached, e.g. ``BinaryCrossentropy/xla`` or ``.../grad:y_pred``."""
        parts = [self.api, self.mode]
        if self.producer:
            parts.append(f"producer:{self.producer}")
        if self.mask is not None:
            parts.append("mask")
        if self.grad:
            parts.append(f"grad:{self.grad}")
        if self.training is not None:
            t = self.training
            parts = [part for part in (t.strategy, t.route, self.api) if part]  # e.g. mirrored/evaluate/BinaryCrossentropy
            if t.activation != "linear":
                parts.append(f"activation:{t.activation}")
        if self.config is not None:
            parts.append(f"config:{self.config.label}")
        if self.row_lengths is not None:
            parts.append("ragged")
        return "/".join(parts)

    @property
    def facets(self) -> dict[str, Any]:
        """Flat view used by registry matching and the summary: options, dtypes and tags."""
        return {
            "id": self.id,
            "api": self.api,
            "mode": self.mode,
            "producer": self.producer or "none",
            "mask": "none" if self.mask is None else "mask",
            "grad": self.grad or "none",
            "route": "none" if self.training is None else self.training.route,
            "strategy": "none" if self.training is None or self.training.strategy is None else self.training.strategy,
            "path": self.path,
            "config": "default" if self.config is None else self.config.label,
            "policy": (self.config and self.config.policy) or "none",
            "loss_policy": (self.config and self.config.loss_policy) or "none",
            "epsilon": "default" if self.config is None or self.config.epsilon is None else repr(self.config.epsilon),
            "floatx": (self.config and self.config.floatx) or "default",
            "traced_before": bool(self.config and self.config.traced_before),
            "ragged": self.row_lengths is not None,
            **self.options.as_dict(),
            "compute_dtype": self.compute_dtype,
            "true_dtype": self.true_dtype,
            "pred_dtype": self.pred_dtype,
            "weights": "none" if self.sample_weight is None else self.tags.get("weights", "array"),
            **self.tags,
        }

    def as_dict(self, *, encode: Callable[[np.ndarray], Any] = encode_array) -> dict[str, Any]:
        """The case as JSON-safe data; ``encode`` writes its arrays (``jsonio.pack_array`` for the stream)."""
        return {
            "id": self.id,
            "api": self.api,
            "options": self.options.as_dict(),
            "true_dtype": self.true_dtype,
            "pred_dtype": self.pred_dtype,
            "weight_dtype": self.weight_dtype,
            "y_true": encode(self.y_true),
            "y_pred": encode(self.y_pred),
            "sample_weight": None if self.sample_weight is None else encode(self.sample_weight),
            "tags": dict(self.tags),
            "mode": self.mode,
            "producer": self.producer,
            "mask": None if self.mask is None else encode(self.mask),
            "grad": self.grad,
            "training": None if self.training is None else self.training.as_dict(),
            "config": None if self.config is None else self.config.as_dict(),
            "row_lengths": None if self.row_lengths is None else list(self.row_lengths),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Case:
        """Inverse of ``as_dict``; raises UsageError naming the field that is wrong."""
        if not isinstance(d, Mapping):
            raise UsageError(f"case={type(d).__name__} is not a JSON object")
        required = ("id", "options", "true_dtype", "pred_dtype", "y_true", "y_pred")
        for key in required:
            if key not in d:
                raise UsageError(f"field {key!r} is missing")
        sw = d.get("sample_weight")
        y_true = decode_array(d["y_true"], "y_true")
        y_pred = decode_array(d["y_pred"], "y_pred")
        weight = None if sw is None else decode_array(sw, "sample_weight")
        # booleans only where the schema has them: labels of true_dtype "bool", and the mask
        for name, a, allowed in (("y_true", y_true, d["true_dtype"] == "bool"), ("y_pred", y_pred, False), ("sample_weight", weight, False)):
            if a is not None and a.dtype == np.bool_ and a.size and not allowed:
                raise UsageError(f"{name} holds booleans; only y_true of true_dtype 'bool' and mask may")
        return cls(
            id=str(d["id"]),
            y_true=y_true,
            y_pred=y_pred,
            true_dtype=d["true_dtype"],
            pred_dtype=d["pred_dtype"],
            options=Options.from_dict(d["options"]),
            sample_weight=weight,
            weight_dtype=d.get("weight_dtype", "float32"),
            api=d.get("api", API_LOSS_CLASS),
            tags=d.get("tags", {}),
            mode=d.get("mode", "eager"),
            producer=d.get("producer"),
            mask=None if d.get("mask") is None else decode_array(d["mask"], "mask"),
            grad=d.get("grad"),
            training=None if d.get("training") is None else TrainingSpec.from_dict(d["training"]),
            config=None if d.get("config") is None else Config.from_dict(d["config"]),
            row_lengths=None if d.get("row_lengths") is None else tuple(d["row_lengths"]) if isinstance(d["row_lengths"], list) else d["row_lengths"],
        )



# The attributes a Deferred's case may hold other values in than its template's: its id and its arrays.
_OWN = frozenset({"id", "y_true", "y_pred", "sample_weight", "mask"})
_SHARED = ("api", "mode", "options", "true_dtype", "pred_dtype", "weight_dtype", "tags", "producer", "grad", "training", "config", "row_lengths")


class Deferred:
    """A case named by how to make it, made where it is evaluated: ``make(*args)`` is a ``Case`` with this
    ``id`` that equals ``template`` in everything but its arrays' values (the same shapes; a value sweep's
    case at another seed).

    What plans, stacks and times a case (its api, mode, options, dtypes, shapes) reads the template, so the
    run's process never makes the arrays of a case a worker evaluates: the worker makes it (``realize``) and
    sends it back with its result.  Anything else asked of a deferred case (its arrays, on a rare path such
    as a crash's record) makes it here, once.  It pickles as its recipe, a few hundred bytes."""

    __slots__ = ("id", "template", "make", "args", "_made")

    def __init__(self, id: str, template: Case, make: Callable[..., Case], args: tuple[Any, ...]) -> None:
        self.id, self.template, self.make, self.args = id, template, make, args
        self._made: Case | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (Deferred, (self.id, self.template, self.make, self.args))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_made":  # (pickling and copying probe for dunders: none here)
            raise AttributeError(name)
        return getattr(realize(self) if name in _OWN else self.template, name)

    def __repr__(self) -> str:
        return f"Deferred({self.id!r})"


def realize(case: Case | Deferred) -> Case:
    """The case itself: a ``Deferred`` made (once) and checked against its promise, anything else as it is."""
    if not isinstance(case, Deferred):
        return case
    if case._made is None:
        made = case.make(*case.args)
        t = case.template
        if made.id != case.id or any(
            getattr(made, k) != getattr(t, k) for k in _SHARED
        ) or (made.y_true.shape, made.y_pred.shape) != (t.y_true.shape, t.y_pred.shape) or (
            made.sample_weight is None) != (t.sample_weight is None) or (made.mask is None) != (t.mask is None):  # fmt: skip
            raise ValueError(f"deferred case {case.id!r}: made {made.id!r}, which is not its template's kind of case")
        case._made = made
    return case._made


def template_of(case: Case | Deferred) -> Case:
    """What a case's plan reads: a ``Deferred``'s template (its arrays' shapes, not values), else the case."""
    return case.template if isinstance(case, Deferred) else case


@dataclass(frozen=True, eq=False)
class Expected:
    """What the specification says a case yields, and where that comes from (``basis``):

    - ``"value"``: a documented value with an error bound.  ``value`` and ``bound`` are in the reference's
      working precision; ``bound`` is the elementwise absolute error a correct implementation in ``dtype``
      may have (see tolerance.py);
    - ``"error"``: the documentation says the call raises; ``raises`` says why, citing it;
    - ``"outside"``: the case is outside the documented domain (``outside`` says which sentence excludes
      it): no verdict on what happens, which the record keeps; a change of it between two versions is a
      behaviour change, never a regression.
    """

    value: np.ndarray | None = None
    bound: np.ndarray | None = None
    dtype: str | None = None
    raises: str | None = None  # why the call must raise, when it must
    rule: str = ""  # the model's constants, for messages
    outside: str | None = None  # why the case is outside the documented domain, when it is

    @property
    def basis(self) -> str:
        """Where the expectation comes from: "outside", "error" or "value" (the class docstring)."""
        return "outside" if self.outside is not None else "error" if self.raises is not None else "value"

    @property
    def shape(self) -> tuple[int, ...] | None:
        return None if self.value is None else tuple(self.value.shape)

    def as_dict(self, *, encode: Callable[[np.ndarray], Any] = encode_array) -> dict[str, Any]:
        """JSON-safe data; the arrays as float64 through ``encode`` (``jsonio.pack_array`` for the stream)."""
        return {
            "value": _encoded(self.value, encode),
            "bound": _encoded(self.bound, encode),
            "dtype": self.dtype,
            "raises": self.raises,
            "rule": self.rule,
            "outside": self.outside,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Expected:
        """Inverse of ``as_dict``; raises UsageError naming the field that is wrong."""
        d = _fields("expected", d, ("value", "bound", "dtype", "raises"))
        return cls(
            value=_decoded(d["value"], "expected.value"),
            bound=_decoded(d["bound"], "expected.bound"),
            dtype=d["dtype"],
            raises=d["raises"],
            rule=d.get("rule", ""),
            outside=d.get("outside"),
        )


@dataclass(frozen=True, eq=False)
class Outcome:
    """What the target returned: a float64 array and its dtype name, or the exception it raised."""

    value: np.ndarray | None = None
    dtype: str | None = None
    error: str | None = None  # "TypeName: message"
    seconds: float = 0.0

    @property
    def shape(self) -> tuple[int, ...] | None:
        return None if self.value is None else tuple(self.value.shape)

    def as_dict(self, *, encode: Callable[[np.ndarray], Any] = encode_array) -> dict[str, Any]:
        """JSON-safe data; the value as float64 through ``encode`` (``jsonio.pack_array`` for the stream)."""
        return {"value": _encoded(self.value, encode), "dtype": self.dtype, "error": self.error, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Outcome:
        """Inverse of ``as_dict``; raises UsageError naming the field that is wrong."""
        d = _fields("outcome", d, ("value", "dtype", "error"))
        return cls(
            value=_decoded(d["value"], "outcome.value"),
            dtype=d["dtype"],
            error=d["error"],
            seconds=decode_number(d.get("seconds", 0.0), "outcome.seconds"),
        )


def _encoded(a: np.ndarray | None, encode: Callable[[np.ndarray], Any]) -> Any:
    return None if a is None else encode(np.asarray(a, dtype=np.float64))


def _decoded(x: Any, name: str) -> np.ndarray | None:
    return None if x is None else decode_array(x, name)


def _fields(what: str, d: Any, required: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise UsageError(f"{what}={type(d).__name__} is not a JSON object")
    missing = [k for k in required if k not in d]
    if missing:
        raise UsageError(f"{what} field {missing[0]!r} is missing")
    return d
