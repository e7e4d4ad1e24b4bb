"""Standalone reproductions: a script that needs only ``tensorflow`` and ``numpy`` and shows a divergence.

The script prints TensorFlow's result beside the expected one and exits 1 when they still disagree beyond
the bound the harness used (0 when they agree), so a maintainer can run it as it is, and it keeps working
as a check after a fix.
"""

from __future__ import annotations

import numpy as np

from harness.case import (
    ACTIVATIONS,
    API_LOSS_CLASS,
    APIS,
    GRADS,
    METRIC_ARGS,
    MODES,
    PRODUCERS,
    REPLICA_ROUTES,
    TRAINING_ROUTES,
    Case,
    Expected,
    Options,
)  # fmt: skip
from harness.report.literal import py

__all__ = ["snippet"]


# the code each producer name stands for (a name from a record is looked up here, never pasted)
_PRODUCER_SOURCE = {
    "tf.sigmoid": "tf.sigmoid",
    "keras.activations.sigmoid": "tf.keras.activations.sigmoid",
    "keras.ops.sigmoid": "tf.keras.ops.sigmoid",
    "layers.Activation(sigmoid)": 'tf.keras.layers.Activation("sigmoid")',
    "layers.Softmax": "tf.keras.layers.Softmax(axis=-1)",
    "model(x)": 'tf.keras.Sequential([tf.keras.layers.Activation("sigmoid")])',
    "model.predict(x)": 'tf.keras.Sequential([tf.keras.layers.Activation("sigmoid")])',
}


def _config_source(case: Case) -> list[str]:
    """The settings the case makes, as calls (each value a literal); the loss's policy goes to its dtype."""
    cfg = case.config
    if cfg is None:
        return []
    lines = []
    if cfg.epsilon is not None:
        lines.append(f"tf.keras.backend.set_epsilon({py(cfg.epsilon)})")
    if cfg.floatx is not None:
        lines.append(f"tf.keras.backend.set_floatx({py(cfg.floatx)})")
    if cfg.policy is not None:
        lines.append(f"tf.keras.mixed_precision.set_global_policy({py(cfg.policy)})")
    return lines


def _num(x: float) -> str:
    return py(float(x))


def _literal(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return py(a.tolist())
    if a.ndim == 0:
        return _num(float(a))
    if a.size == 0:
        return f"np.zeros({py(tuple(int(n) for n in a.shape))})"
    values = py([float(v) for v in a.astype(np.float64).ravel()])
    return f"np.array({values}).reshape({py(tuple(int(n) for n in a.shape))})"


def _tensor(a: np.ndarray, dtype: str) -> str:
    if dtype == "bool":
        return f"tf.constant(np.asarray({_literal(a)}) != 0)"
    return f"tf.constant({_literal(a)}, dtype={py(dtype)})"


def _options(o: Options) -> str:
    """The keyword arguments of the loss's constructor; dtype only when set: Keras 2's has no such argument."""
    args = f"from_logits={py(o.from_logits)}, label_smoothing={py(o.label_smoothing)}, axis={py(o.axis)}, reduction={py(o.reduction)}"
    return args + ("" if o.dtype is None else f", dtype={py(o.dtype)}")


def snippet(
    case: Case, expected: Expected, *, actual: str = "", loss_factory: str | None = None, source: str | None = None,
    named_factory: str | None = None,
) -> str:
    """Python source of a reproduction of ``case`` against ``expected``; ``actual`` is what TF printed.

    ``loss_factory`` (``MODULE:FUNCTION``, the record's ``--loss-factory``) makes the script build the loss
    with that factory, as the run did, instead of Keras's constructor.  Every value from the record (id,
    texts, numbers, names) enters the script as a literal made by ``literal.py``, never as pasted text.
    ``source``: the file the record was read from (another job's, a download), which the script names.
    ``named_factory``: a factory that file names and the user did not name again: printed, never imported.
    """
    # these are code, not data: they must be the harness's own names (Case checks them when it is made)
    assert case.api in APIS and case.mode in MODES and case.producer in (None, *PRODUCERS) and case.grad in (None, *GRADS)
    factory = loss_factory is not None and case.api == API_LOSS_CLASS
    lines = []
    if loss_factory is not None:
        lines += [
            "# Made with --loss-factory (LOSS_FACTORY below): "
            + ("this script builds the loss with that factory, not Keras's constructor;" if factory
               else "the factory does not replace this entry point, which is called as it was;"),
            "# the factory's module and bce-harness (for the Options it takes) must be importable.",
        ]
    if source is not None:
        lines.append("# Made from a record read from a file (SOURCE below), not from a run here: its values are that file's.")
    if named_factory is not None:
        lines.append("# That file names a loss factory (NAMED_LOSS_FACTORY below), which this script prints and does not import.")
    lines += [
        "# Reproduction of the bce-harness case CASE_ID (path CASE_PATH) below.",
        ("# Needs only tensorflow and numpy." if not factory else "# Needs tensorflow, numpy, bce-harness and the factory's module.")
        + "  Exit status 1: the divergence reproduces; 0: it does not.",
        "import os",
        "import sys",
        "",
        f"CASE_ID = {py(case.id)}",
        f"CASE_PATH = {py(case.path)}",
    ]
    if loss_factory is not None:
        lines.append(f"LOSS_FACTORY = {py(loss_factory)}")
    if source is not None:
        lines.append(f"SOURCE = {py(source)}")
    if named_factory is not None:
        lines += [f"NAMED_LOSS_FACTORY = {py(named_factory)}",
                  'print("the file names the loss factory", NAMED_LOSS_FACTORY, "- not imported: this script calls Keras\'s loss")']
    if actual:
        lines.append(f"RETURNED_WHEN_WRITTEN = {py(actual)}  # what TensorFlow returned when this was written")
    lines += [
        "",
        'os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")',
        "import numpy as np",
        "import tensorflow as tf",
        "",
        *_devices_source(case),
        f"y_true = {_tensor(case.y_true, case.true_dtype)}",
        f"y_pred = {_tensor(case.y_pred, case.pred_dtype)}",
    ]
    if case.row_lengths is not None:
        lengths = py([int(n) for n in case.row_lengths])
        lines += [
            f"y_true = tf.RaggedTensor.from_tensor(y_true, lengths={lengths})",
            f"y_pred = tf.RaggedTensor.from_tensor(y_pred, lengths={lengths})",
        ]
    if case.sample_weight is None:
        lines.append("sample_weight = None")
    elif case.sample_weight.ndim == 0 and case.grad is None:
        lines.append(f"sample_weight = {_num(float(case.sample_weight))}")
    else:
        lines.append(f"sample_weight = {_tensor(case.sample_weight, case.weight_dtype)}")
    traced_before = case.config is not None and case.config.traced_before
    if case.config is not None and not traced_before:
        lines += ["", "# the configuration of the case, in force before the loss is built", *_config_source(case)]
    lines += _call_source(case, factory)
    if traced_before:
        lines += [
            "run(y_true, y_pred, sample_weight)  # built and traced under the configuration before the change",
            "# the configuration of the case, set after the trace",
            *_config_source(case),
        ]
    lines.append("")
    if expected.raises is not None:
        lines += [
            f"EXPECTED_ERROR = {py(expected.raises)}  # why the call must raise",
            "try:",
            "    actual = run(y_true, y_pred, sample_weight)",
            "except Exception as exc:",
            '    print("raised as expected:", type(exc).__name__, exc)',
            "    sys.exit(0)",
            'print("returned instead of raising:", tf.cast(actual, tf.float64).numpy(), "expected:", EXPECTED_ERROR)',
            "sys.exit(1)",
        ]
        return "\n".join(lines) + "\n"
    assert expected.value is not None and expected.bound is not None
    lines += [
        "# Expected from the documented Keras semantics, computed in extended precision; |error| allowed: bound.",
        f"expected = {_literal(np.asarray(expected.value, dtype=np.float64))}",
        f"bound = {_literal(np.asarray(expected.bound, dtype=np.float64))}",
        f"expected_dtype = {py(expected.dtype)}",
        "try:",
        "    actual = run(y_true, y_pred, sample_weight)",
        "except Exception as exc:",
        '    print("raised, but a value was expected:", type(exc).__name__, exc)',
        "    sys.exit(1)",
        "a = np.asarray(tf.cast(actual, tf.float64).numpy(), dtype=np.float64)",
        'print("actual (TF):", a.tolist(), actual.dtype.name)',
        'print("expected:   ", np.asarray(expected).tolist(), expected_dtype)',
        "same = a.shape == np.shape(expected) and actual.dtype.name == expected_dtype",
        "if same:",
        "    with np.errstate(invalid='ignore'):",
        "        close = np.isclose(a, expected, rtol=0, atol=0, equal_nan=True) | (np.abs(a - expected) <= bound)",
        "    same = bool(np.all(close))",
        'print("agrees" if same else "DIVERGES")',
        "sys.exit(0 if same else 1)",
    ]
    return "\n".join(lines) + "\n"


def _devices_source(case: Case) -> list[str]:
    """A replica case's two logical CPU devices, made before the first tensor initialises TensorFlow's devices."""
    if case.training is None or case.training.strategy is None:
        return []
    return [
        "# two logical CPU devices for MirroredStrategy: before the first op initialises TensorFlow's devices",
        'cpus = tf.config.list_physical_devices("CPU")',
        f"tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range({py(case.training.replicas)})])",
        f'strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")[:{py(case.training.replicas)}]])',
        "",
    ]


def _training_source(case: Case) -> list[str]:
    """Source of ``run(y_true, y_pred, sample_weight)`` for a training-loop or replica case, as
    harness/frameworks/training.py and distribute.py make the call (``loss`` is defined above it)."""
    t = case.training
    assert t is not None and t.route in TRAINING_ROUTES + REPLICA_ROUTES and t.activation in ACTIVATIONS
    assert t.metric in (None, *METRIC_ARGS)
    o = case.options
    lines = ["", "", "def run(y_true, y_pred, sample_weight):"]
    if t.route == "cross_replica":
        lines += [
            "    with strategy.scope():  # in the strategy's scope, outside strategy.run",
            "        return loss(y_true, y_pred) if sample_weight is None else loss(y_true, y_pred, sample_weight=sample_weight)",
        ]
        return lines
    if t.route in REPLICA_ROUTES:
        splits = list(t.splits) if t.splits is not None else None
        lines += [
            f"    splits = {py(splits)}  # samples per replica",
            "    offsets = np.concatenate([[0], np.cumsum(splits)]).astype(int)",
            "",
            "    def sliced(t):",
            "        return strategy.experimental_distribute_values_from_function(",
            "            lambda ctx: t[int(offsets[ctx.replica_id_in_sync_group]):int(offsets[ctx.replica_id_in_sync_group + 1])]",
            "        )",
            "",
        ]
        if t.route == "run:compute_average_loss":
            lines += [
                "    def step(y, p, w=None):  # per-example losses, weighted, divided by the global batch",
                "        return tf.nn.compute_average_loss(loss(y, p), sample_weight=w, global_batch_size=int(y_pred.shape[0]))",
            ]
        else:
            lines += [
                "    def step(y, p, w=None):",
                "        return loss(y, p) if w is None else loss(y, p, sample_weight=w)",
            ]
        lines += [
            "",
            "    args = (sliced(y_true), sliced(y_pred)) + (() if sample_weight is None else (sliced(sample_weight),))",
            '    return strategy.reduce("SUM", strategy.run(step, args=args), axis=None)',
        ]
        return lines
    width = int(case.y_pred.shape[-1]) if case.y_pred.ndim == 2 else 1
    scope = "strategy.scope()" if t.strategy is not None else "contextlib.nullcontext()"
    metric_arg = ""
    if t.metric is not None:
        metric_arg = (
            f", {t.metric}=[keras.metrics.BinaryCrossentropy(name='bce_metric', from_logits={py(o.from_logits)}, "
            f"label_smoothing={py(o.label_smoothing)})]"
        )
    batch = t.batch_size if t.batch_size is not None else int(case.y_pred.shape[0])
    class_weight = "None" if t.class_weight is None else f"dict({py([[k, w] for k, w in t.class_weight])})"
    lines += [
        "    import contextlib",
        "",
        "    keras = tf.keras",
        f"    with {scope}:",
        f"        # the output is the input (identity kernel, zero bias){', through a sigmoid' if t.activation == 'sigmoid' else ''}",
        "        model = keras.Sequential([",
        f"            keras.Input(({width},)),",
        f"            keras.layers.Dense({width}, activation={py(t.activation)}, kernel_initializer='identity', bias_initializer='zeros'),",
        "        ])",
        f"        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=loss{metric_arg})",
        "    x, y = y_pred.numpy(), y_true.numpy()",
        "    sw = None if sample_weight is None else sample_weight.numpy()",
        f"    class_weight = {class_weight}",
    ]
    if t.route == "evaluate":
        lines.append(f"    logs = model.evaluate(x, y, batch_size={py(batch)}, sample_weight=sw, verbose=0, return_dict=True)")
    elif t.route == "test_on_batch":
        lines.append("    logs = model.test_on_batch(x, y, sample_weight=sw, return_dict=True)")
    elif t.route == "fit":
        lines += [
            f"    history = model.fit(x, y, batch_size={py(batch)}, epochs=1, shuffle=False, sample_weight=sw,",
            "                        class_weight=class_weight, verbose=0)",
            "    logs = {k: v[-1] for k, v in history.history.items()}",
        ]
    else:
        lines.append("    logs = model.train_on_batch(x, y, sample_weight=sw, class_weight=class_weight, return_dict=True)")
    if t.metric is not None:
        lines.append('    return tf.constant([logs["loss"], logs["bce_metric"]], dtype=tf.float32)  # [loss, metric]')
    else:
        lines.append('    return tf.constant(logs["loss"], dtype=tf.float32)')
    return lines


def _call_source(case: Case, factory: bool) -> list[str]:
    """Source of ``run(y_true, y_pred, sample_weight)``: the case's entry point, producer, mask, gradient
    and mode, as harness/frameworks builds them; with ``factory``, the loss from LOSS_FACTORY."""
    o = case.options
    lines = [""]
    loss_policy = None if case.config is None else case.config.loss_policy
    if case.api == "metrics.BinaryCrossentropy":
        dtype = "" if o.dtype is None else f", dtype={py(o.dtype)}"
        if loss_policy is not None:
            dtype = f", dtype=tf.keras.DTypePolicy({py(loss_policy)})"
        lines.append(
            f"metric = tf.keras.metrics.BinaryCrossentropy(from_logits={py(o.from_logits)}, "
            f"label_smoothing={py(o.label_smoothing)}{dtype})"
        )
    elif factory:
        lines += [
            "import importlib",
            "",
            "from harness.case import Options",
            "",
            'factory_module, _, factory_name = LOSS_FACTORY.partition(":")',
            "factory = getattr(importlib.import_module(factory_module), factory_name)",
            f"loss = factory(Options({_options(o)}))",
        ]
    elif case.api == API_LOSS_CLASS:
        policy = "" if loss_policy is None else f", dtype=tf.keras.DTypePolicy({py(loss_policy)})"
        lines.append(f"loss = tf.keras.losses.BinaryCrossentropy({_options(o)}{policy})")
    if case.training is not None:
        return lines + _training_source(case)
    if case.producer is not None:
        lines.append(f"producer = {_PRODUCER_SOURCE[case.producer]}")
    lines += ["", "", "def call(y_true, y_pred, sample_weight):"]
    if case.producer == "model.predict(x)":
        lines.append("    y_pred = tf.constant(producer.predict(y_pred, verbose=0))")
    elif case.producer is not None:
        lines.append("    y_pred = producer(y_pred)")
    if case.mask is not None:
        lines += [
            "    try:  # the mask a Masking layer attaches (Keras 3.16 moved the helper)",
            "        from keras.src.backend import set_keras_mask",
            "    except ImportError:",
            "        from keras.src.backend.common.masking import set_keras_mask",
        ]
        if case.producer is None:
            lines.append("    y_pred = tf.identity(y_pred)")
        lines.append(f"    set_keras_mask(y_pred, tf.constant({py(case.mask.tolist())}))")
    if case.api == "BinaryCrossentropy":
        lines.append("    return loss(y_true, y_pred) if sample_weight is None else loss(y_true, y_pred, sample_weight=sample_weight)")
    elif case.api == "binary_crossentropy":
        lines.append(
            f"    return tf.keras.losses.binary_crossentropy(y_true, y_pred, from_logits={py(o.from_logits)}, "
            f"label_smoothing={py(o.label_smoothing)}, axis={py(o.axis)})"
        )
    elif case.api == "ops.binary_crossentropy":
        lines.append(f"    return tf.keras.ops.binary_crossentropy(y_true, y_pred, from_logits={py(o.from_logits)})")
    elif case.api == "nn.sigmoid_cross_entropy_with_logits":
        lines.append("    return tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)")
    elif case.api == "backend.binary_crossentropy":
        lines.append(f"    return tf.keras.backend.binary_crossentropy(y_true, y_pred, from_logits={py(o.from_logits)})")
    else:
        if case.row_lengths is not None:
            lines += ["    metric.update_state(y_true, y_pred)  # ragged rows: one update with the whole batch", "    return metric.result()"]
        lines += [
            "    for u in range(y_pred.shape[0]):  # one update_state per leading slice",
            "        metric.update_state(y_true[u], y_pred[u], sample_weight=None if sample_weight is None else sample_weight[u])",
            "    return metric.result()",
        ]
    lines += ["", ""]
    if case.grad is None:
        lines.append("run = call")
    else:
        source = "y_pred" if case.grad == "y_pred" else "sample_weight"
        lines += [
            "def run(y_true, y_pred, sample_weight):",
            f"    # the gradient of the result's sum with respect to {source}",
            "    with tf.GradientTape() as tape:",
            f"        tape.watch({source})",
            "        result = call(y_true, y_pred, sample_weight)",
            f"    return tape.gradient(result, {source})",
            "",
        ]
    if case.mode == "function":
        lines.append("run = tf.function(run)")
    elif case.mode == "xla":
        lines.append("run = tf.function(run, jit_compile=True)")
    if case.row_lengths is not None:
        lines += [
            "_run = run",
            "",
            "",
            "def run(y_true, y_pred, sample_weight):  # a ragged result: its rows' values concatenated",
            "    out = _run(y_true, y_pred, sample_weight)",
            "    return out.flat_values if isinstance(out, tf.RaggedTensor) else out",
        ]
    return lines
