"""The library under test: the one package of the harness that imports a framework (TensorFlow, Keras, and in
``backends`` JAX and PyTorch).

``TFTarget.run(case)`` (this module) builds tensors of the case's dtypes, calls the case's entry point
(``tf.keras.losses.BinaryCrossentropy`` and the others) with the case's options in the case's mode (eager,
``tf.function`` or XLA) and returns an ``Outcome``.  Beside it: ``keras_calls`` the calls of Keras's own entry
points, shared by every backend; ``backends`` ``KerasTarget``, Keras 3 on JAX, PyTorch or NumPy; ``training``
the training-loop paths; ``distribute`` the loss under replicas; ``model`` a user's saved model read the ways
people read its loss; ``callback`` the Keras side of ``harness.keras.BCECheck``.  An exception raised by TensorFlow is an
outcome (the reference may expect it), never a crash of the run.  TensorFlow is imported on first use,
so importing this module is cheap and works without TensorFlow installed.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeGuard

import numpy as np

from harness.case import API_LOSS_CLASS, REPLICA_ROUTES, Case, Config, Options, Outcome
from harness.errors import TargetUnavailable, UsageError
from harness.frameworks.distribute import ReplicaRunner, configure_logical_cpus
from harness.frameworks.keras_calls import keras_call, weight_argument
from harness.frameworks.training import TrainingRunner
from harness.stacking import MAX_STACK, map_stacked, split_stacked, trace_key

__all__ = [
    "LossFactory",
    "TFTarget",
    "bind_backend",
    "environment_flags",
    "import_tensorflow",
    "load_factory",
    "make_target",
]

LossFactory = Callable[[Options], Callable[..., Any]]


class _PolicyLossFactory(Protocol):
    """A LossFactory that also takes a ``policy=`` argument: the loss's dtype policy when a case sets one."""

    def __call__(self, options: Options, *, policy: Any) -> Callable[..., Any]: ...


def _takes_policy(factory: LossFactory) -> TypeGuard[_PolicyLossFactory]:
    return "policy" in _parameters(factory)

# Environment variables that change what TensorFlow computes or how; recorded in every report.
NUMERIC_ENV = (
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_USE_LEGACY_KERAS",
    "KERAS_BACKEND",
    "TF_DETERMINISTIC_OPS",
    "TF_XLA_FLAGS",
    "TF_CPP_MIN_LOG_LEVEL",
    "OMP_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
)


def environment_flags() -> dict[str, str | None]:
    return {k: os.environ.get(k) for k in NUMERIC_ENV}


def import_tensorflow() -> Any:
    """Import TensorFlow quietly, or raise TargetUnavailable with a one-line hint."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow's C++ runtime writes a few lines to file descriptor 2 before its log level is read;
    # hold them back, and show them only if the import fails.
    with tempfile.TemporaryFile(mode="w+b") as held:
        saved = _redirect_fd(2, held.fileno())
        try:
            import tensorflow as tf
        except ImportError as exc:
            _restore_fd(2, saved)
            raise TargetUnavailable(
                f"TensorFlow is not installed ({exc}); install the extra: pip install 'bce-harness[tf]'"
            ) from None
        except BaseException:
            _restore_fd(2, saved)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        _restore_fd(2, saved)
    tf.get_logger().setLevel("ERROR")  # retracing notices and the like are not results
    return tf


def _redirect_fd(fd: int, to: int) -> int | None:
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
        os.dup2(to, fd)
        return saved
    except OSError:  # no real descriptor 2 (embedded interpreters): nothing to hold back
        return None


def _restore_fd(fd: int, saved: int | None) -> None:
    if saved is not None:
        os.dup2(saved, fd)
        os.close(saved)


def load_factory(spec: str | None) -> LossFactory | None:
    """The loss factory named ``module:function`` (a function of ``Options`` returning a loss), or None.

    This is how another implementation, or a deliberately broken one, is put under test, also in the
    worker processes, which import it by name.
    """
    if spec is None:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"loss_factory={spec!r} is not of the form 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the user's module raises while it imports is theirs
        raise UsageError(f"--loss-factory={spec!r}: module {module_name!r} cannot be imported ({type(exc).__name__}: {exc})") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise UsageError(f"--loss-factory={spec!r}: module {module_name!r} has no {attr!r}")
    if not callable(factory):
        raise UsageError(f"--loss-factory={spec!r}: {attr!r} is a {type(factory).__name__}, not a function of the loss options")
    return factory


def error_text(exc: BaseException) -> str:
    """An exception as an outcome: its type and first line, at most 500 characters.  A traced function's
    error (TensorFlow's "in user code:" then the trace) is its last line, the error the code raised, marked
    "(in user code)": the same cause reads alike in every mode."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    name = type(exc).__name__
    if lines[:1] == ["in user code:"] and len(lines) > 1:
        inner = lines[-1] if lines[-1].startswith(f"{name}: ") else f"{name}: {lines[-1]}"
        return f"{inner[:480]} (in user code)"
    return f"{name}: {lines[0] if lines else ''}"[:500]


_DEFAULT_FACTORY: dict[int, LossFactory] = {}  # id(tf) -> the default factory made for it


def _default_factory(tf: Any) -> LossFactory:
    def make(options: Options, policy: Any = None) -> Callable[..., Any]:
        # dtype only when set: Keras 2's constructor has no such argument (a TypeError even for None)
        dtype = {} if options.dtype is None else {"dtype": options.dtype}
        if policy is not None:  # a case's loss policy (Config.loss_policy), as a DTypePolicy object
            dtype = {"dtype": policy}
        return tf.keras.losses.BinaryCrossentropy(
            from_logits=options.from_logits,
            label_smoothing=options.label_smoothing,
            axis=options.axis,
            reduction=options.reduction,
            **dtype,
        )

    _DEFAULT_FACTORY[id(tf)] = make
    return make


def _parameters(fn: Callable[..., Any]) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()


def _predict(tf: Any, model: Any) -> Callable[[Any], Any]:
    """``model.predict`` as a producer: NumPy out, made a tensor of the same dtype again for the loss."""

    def produce(x: Any) -> Any:
        return tf.constant(model.predict(x, verbose=0))

    return produce

def bind_backend(backend: str, *, threads: int | None = None) -> None:
    """Name ``backend`` in ``KERAS_BACKEND`` for the Keras this process will import (Keras reads it once, on
    its first import; a Keras already imported keeps its backend, which ``make_target`` then checks).  With
    ``threads``, JAX's CPU client gets one intra-op thread per worker, as TensorFlow's pools do."""
    if "keras" in sys.modules:
        return
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax" and threads is not None:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


def make_target(backend: str = "tensorflow", *, loss_factory: LossFactory | None = None, threads: int | None = None) -> Any:
    """The target for ``backend``: ``TFTarget`` for TensorFlow (every entry point through ``tf.keras``), else
    ``backends.KerasTarget`` (Keras 3 under JAX, PyTorch or NumPy).  Call it before anything imports Keras in
    this process: Keras reads ``KERAS_BACKEND`` once."""
    bind_backend(backend, threads=threads)
    if backend == "tensorflow":
        return TFTarget(loss_factory=loss_factory, threads=threads)
    from harness.frameworks.backends import KerasTarget

    return KerasTarget(backend, loss_factory=loss_factory, threads=threads)


class TFTarget:
    """Runs cases through TensorFlow.  ``loss_factory`` replaces the loss constructor (fault injection)."""

    name = "tensorflow"

    def __init__(self, *, loss_factory: LossFactory | None = None, threads: int | None = None) -> None:
        self.tf = import_tensorflow()
        # Before the first op too: the replica cases need two logical CPU devices (harness.frameworks.distribute).
        # False when TensorFlow initialised its devices before this target was made (in a process that used
        # it already): replica cases then raise, saying so.
        self.replica_devices = configure_logical_cpus(self.tf)
        if threads is not None:
            # Before the first op runs.  A worker is one core's worth of work: with N workers on N cores,
            # TensorFlow's own thread pools would only fight over the same cores.
            self.tf.config.threading.set_intra_op_parallelism_threads(threads)
            self.tf.config.threading.set_inter_op_parallelism_threads(threads)
        factory = loss_factory or _default_factory(self.tf)
        self._factory = factory
        self._policy_factory: _PolicyLossFactory | None = factory if _takes_policy(factory) else None
        self._losses: dict[tuple[Any, ...], Any] = {}
        self._metrics: dict[tuple[Any, ...], Any] = {}
        self._config: Config | None = None  # the case's configuration while it is in force
        self._compiled_cache: dict[tuple[Any, ...], Callable[..., Any]] = {}
        self._replicas = ReplicaRunner(self.tf, self._loss)
        self._training = TrainingRunner(self.tf, self._factory)

    def versions(self) -> dict[str, str | None]:
        tf = self.tf
        keras_module = tf.keras
        module_name = getattr(keras_module, "__name__", "")
        # The package behind tf.keras: tf_keras on the legacy line (TF_USE_LEGACY_KERAS=1), where a Keras 3
        # package may be installed beside it and is not the one under test; keras otherwise.
        package = "tf_keras" if module_name.startswith("tf_keras") else "keras"
        keras_version = getattr(keras_module, "__version__", None)
        if keras_version is None:
            try:
                keras_version = importlib.import_module(package).__version__
            except (ImportError, AttributeError):
                keras_version = None
        return {
            "tensorflow": tf.__version__,
            "keras": keras_version,
            **{f"keras_{k}": v for k, v in self.keras_settings().items()},
            "tf_keras_module": module_name or type(keras_module).__name__,
            "keras_package": package,
            "backend": "tensorflow",
            "backend_version": tf.__version__,
            "tf_git_version": getattr(tf, "__git_version__", None) or tf.version.GIT_VERSION,
            "platform": platform.platform(),
            "machine": platform.machine(),
        }

    @functools.cached_property
    def _lacks(self) -> dict[str, str]:
        """What the installed Keras cannot express, probed once through its public API: each absent feature
        by name, with what it lacks (Keras 3 gained the loss's ``dtype=`` in 3.4, DTypePolicy objects as a
        loss or metric dtype in 3.5, the 'mean' reductions in 3.7).  A probe that raises anything else
        claims nothing: the case then runs, and its outcome is judged."""
        keras = self.tf.keras
        lacks: dict[str, str] = {}
        if self._factory is not _DEFAULT_FACTORY.get(id(self.tf)):
            return lacks  # a planted or user factory: it says itself what it takes
        losses = keras.losses.BinaryCrossentropy
        try:
            losses(dtype="float32")
        except TypeError:
            lacks["loss_dtype"] = "the Keras loss takes no dtype= argument (Keras 3.4 and later do)"
        for reduction in ("mean", "mean_with_sample_weight"):
            try:
                losses(reduction=reduction)
            except ValueError:
                lacks[f"reduction_{reduction}"] = f"the Keras loss has no reduction={reduction!r} (Keras 3.7 and later do)"
        make = getattr(keras, "DTypePolicy", None)
        if make is None:
            lacks["policy_object"] = "this Keras has no keras.DTypePolicy"
        elif "loss_dtype" not in lacks:
            y, p = self.tf.constant([[1.0]]), self.tf.constant([[0.5]])
            for what, build in (("loss", losses), ("metric", keras.metrics.BinaryCrossentropy)):
                try:  # built and called: Keras 3.4 builds a loss with a policy and fails at the call
                    made = build(dtype=make("mixed_float16"))
                    (made.update_state if what == "metric" else made)(y, p)
                except (TypeError, ValueError):
                    lacks[f"{what}_policy"] = f"the Keras {what} takes no DTypePolicy as its dtype (Keras 3.5 and later do)"
        return lacks

    def unsupported(self, case: Case) -> str | None:
        """Why the installed Keras cannot express ``case`` (an argument, a reduction or a dtype policy it
        lacks), or None: such a case is recorded as not expressible, never as a failure.  A probe that
        itself fails otherwise claims nothing: every case then runs and is judged."""
        try:
            lacks = self._lacks
        except Exception:  # noqa: BLE001 - the probe's own failure must not take the run down
            return None
        if not lacks or self.tf.keras.__name__.startswith("tf_keras"):
            return None
        loss_class = case.api == API_LOSS_CLASS or case.training is not None
        o = case.options
        cfg = case.config
        if loss_class and o.dtype is not None and "loss_dtype" in lacks:
            return lacks["loss_dtype"]
        if loss_class and f"reduction_{o.reduction}" in lacks:
            return lacks[f"reduction_{o.reduction}"]
        if cfg is not None and cfg.loss_policy is not None:
            for key in ("policy_object", "loss_dtype", "loss_policy" if loss_class else "metric_policy"):
                if key in lacks:
                    return lacks[key]
        return None

    def keras_settings(self) -> dict[str, Any]:
        """The epsilon and floatx this process's Keras has (from keras.json under KERAS_HOME, or a call):
        what the reference must judge against, and what a run's ``meta`` records."""
        backend = self.tf.keras.backend
        return {"epsilon": float(backend.epsilon()), "floatx": str(backend.floatx())}

    # -- configuration a case sets -------------------------------------------------------------------------

    def _policy_state(self) -> Any:
        """The global dtype policy as set (None when never set, so restoring it leaves it to follow floatx)."""
        try:
            from keras.src.backend.common import global_state
        except ImportError:
            global_state = None
        if global_state is not None and not self.tf.keras.__name__.startswith("tf_keras"):
            return global_state.get_global_attribute("dtype_policy", None)
        from tf_keras.src.mixed_precision import policy as policy_module

        return policy_module._global_policy

    def _set_policy_state(self, state: Any) -> None:
        if self.tf.keras.__name__.startswith("tf_keras"):
            self.tf.keras.mixed_precision.set_global_policy(state)
            return
        from keras.src.backend.common import global_state

        global_state.set_global_attribute("dtype_policy", state)

    def _apply(self, config: Config) -> tuple[Any, ...]:
        """Put ``config`` in force; returns what restores the settings it changed."""
        backend = self.tf.keras.backend
        saved = (backend.epsilon(), backend.floatx(), self._policy_state())
        if config.epsilon is not None:
            backend.set_epsilon(config.epsilon)
        if config.floatx is not None:
            backend.set_floatx(config.floatx)
        if config.policy is not None:
            self.tf.keras.mixed_precision.set_global_policy(config.policy)
        self._config = config
        return saved

    def _restore(self, saved: tuple[Any, ...]) -> None:
        backend = self.tf.keras.backend
        epsilon, floatx, policy = saved
        backend.set_epsilon(epsilon)
        backend.set_floatx(floatx)
        self._set_policy_state(policy)
        self._config = None

    def _loss_policy(self) -> Any:
        """The case's loss policy as the line's policy object (keras.DTypePolicy; Keras 2's Policy)."""
        name = None if self._config is None else self._config.loss_policy
        if name is None:
            return None
        keras = self.tf.keras
        make = getattr(keras, "DTypePolicy", None) or keras.mixed_precision.Policy
        return make(name)

    def _tensor(self, values: np.ndarray, dtype: str) -> Any:
        if dtype == "bool":
            return self.tf.constant(np.asarray(values) != 0)
        if dtype in ("int32", "int64"):
            return self.tf.constant(np.asarray(values).astype(dtype))
        # values are exactly representable in dtype, so this conversion is exact for every dtype
        return self.tf.constant(np.asarray(values, dtype=np.float64), dtype=getattr(self.tf, dtype))

    def _loss(self, options: Options) -> Any:
        # a loss reads floatx and its policy when it is built: one per configuration
        key = (options, None if self._config is None else tuple(self._config.as_dict().items()))
        loss = self._losses.get(key)
        if loss is None:
            policy = self._loss_policy()
            if policy is None:
                loss = self._factory(options)
            elif self._policy_factory is not None:
                loss = self._policy_factory(options, policy=policy)
            else:
                raise UsageError("the loss factory takes no 'policy' argument, and this case sets the loss's dtype policy")
            self._losses[key] = loss
        return loss

    def run(self, case: Case) -> Outcome:
        if case.config is None:
            return self._run(case)
        saved = None
        try:
            if case.config.traced_before:
                # build and trace under the configuration before the change, then change it and call again
                self._before_change(case)
            saved = self._apply(case.config)
            return self._run(case)
        except Exception as exc:  # noqa: BLE001 - a setting Keras rejects is an outcome too
            return Outcome(error=f"{type(exc).__name__}: {str(exc).strip()[:400]}")
        finally:
            if saved is not None:
                self._restore(saved)

    def _before_change(self, case: Case) -> None:
        """Build and trace ``case`` under settings its configuration then changes: each setting it makes holds
        another value first (Keras's default, float32 or 1e-7, or where the case sets that, float64 or 1e-6),
        so the change is a change whatever keras.json holds."""
        cfg = case.config
        assert cfg is not None
        epsilon = None if cfg.epsilon is None else (1e-7 if cfg.epsilon != 1e-7 else 1e-6)
        floatx = None if cfg.floatx is None else ("float32" if cfg.floatx != "float32" else "float64")
        saved = self._apply(dataclasses.replace(cfg, epsilon=epsilon, floatx=floatx, policy=None))  # its own loss
        try:
            self._run(case)
        finally:
            self._restore(saved)

    def _run(self, case: Case) -> Outcome:
        start = time.perf_counter()
        if case.training is not None:
            return self._run_training(case, start)
        try:
            fn = self._compiled(case)
            y_true = self._tensor(case.y_true, case.true_dtype)
            y_pred = self._tensor(case.y_pred, case.pred_dtype)
            if case.row_lengths is not None:  # rows of the given lengths, as tf.ragged.constant would make them
                ragged = self.tf.RaggedTensor.from_tensor
                y_true, y_pred = ragged(y_true, lengths=case.row_lengths), ragged(y_pred, lengths=case.row_lengths)
            weight = weight_argument(case, self._tensor)
            if case.api == "metrics.BinaryCrossentropy":
                self._metrics[self._metric_key(case.options)].reset_state()
            result = fn(y_true, y_pred, weight)
            if isinstance(result, self.tf.RaggedTensor):
                result = result.flat_values  # the rows' values concatenated, as the reference gives them
            dtype = result.dtype.name
            # NumPy cannot hold bfloat16 without ml_dtypes' help at every rank: widen exactly first
            value = np.asarray(self.tf.cast(result, self.tf.float64).numpy(), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - an exception from the library is an outcome
            return Outcome(error=error_text(exc), seconds=time.perf_counter() - start)
        return Outcome(value=value, dtype=dtype, seconds=time.perf_counter() - start)

    def _run_training(self, case: Case, start: float) -> Outcome:
        """A training-loop or replica case (harness.frameworks.training, harness.frameworks.distribute)."""
        spec = case.training
        assert spec is not None
        try:
            if spec.route in REPLICA_ROUTES:
                value, dtype = self._replicas.run(case)
            else:
                strategy = None if spec.strategy is None else self._replicas.strategy()
                value, dtype = self._training.run(case, strategy)
        except Exception as exc:  # noqa: BLE001 - an exception from the library is an outcome
            return Outcome(error=error_text(exc), seconds=time.perf_counter() - start)
        return Outcome(value=value, dtype=dtype, seconds=time.perf_counter() - start)

    # -- entry points and modes --------------------------------------------------------------------------

    def _entry(self, case: Case) -> Callable[..., Any]:
        """The call of ``case.api`` on (y_true, y_pred, sample_weight), with its producer and mask."""
        tf, keras = self.tf, self.tf.keras
        call = self._api_call(case)
        # looked up only when asked for: the Keras 2 line has no keras.ops
        producer = None if case.producer is None else {
            "tf.sigmoid": lambda: tf.sigmoid,
            "keras.activations.sigmoid": lambda: keras.activations.sigmoid,
            "keras.ops.sigmoid": lambda: keras.ops.sigmoid,
            "layers.Activation(sigmoid)": lambda: keras.layers.Activation("sigmoid"),
            "layers.Softmax": lambda: keras.layers.Softmax(axis=-1),
            "model(x)": lambda: keras.Sequential([keras.layers.Activation("sigmoid")]),
            "model.predict(x)": lambda: _predict(tf, keras.Sequential([keras.layers.Activation("sigmoid")])),
        }[case.producer]()
        mask = None if case.mask is None else np.asarray(case.mask)

        def entry(y_true, y_pred, weight):
            if producer is not None:
                y_pred = producer(y_pred)
            if mask is not None:
                # the mask a Masking layer would attach.  No public API sets one: Keras 3.6+ has the helper
                # in backend.common.masking (re-exported from keras.src.backend until 3.15); before 3.6 a mask
                # is the tensor's _keras_mask attribute, which Loss.__call__ reads
                y_pred = tf.identity(y_pred) if producer is None else y_pred
                try:
                    from keras.src.backend.common.masking import set_keras_mask
                except ImportError:
                    y_pred._keras_mask = tf.constant(mask)
                else:
                    set_keras_mask(y_pred, tf.constant(mask))
            return call(y_true, y_pred, weight)

        return entry

    def _api_call(self, case: Case) -> Callable[..., Any]:
        """The bare call of ``case.api`` with the case's options on (y_true, y_pred, sample_weight)."""
        tf, o = self.tf, case.options
        keras = tf.keras
        api = case.api
        call = keras_call(keras, api, o, self._loss)
        if call is not None:  # one of Keras's own entry points, the same on every backend
            return call
        if api == "nn.sigmoid_cross_entropy_with_logits":

            def call(y_true, y_pred, weight):
                return tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)

        elif api == "backend.binary_crossentropy":

            def call(y_true, y_pred, weight):
                return keras.backend.binary_crossentropy(y_true, y_pred, from_logits=o.from_logits)

        elif api == "metrics.BinaryCrossentropy":
            key = self._metric_key(o)
            if key not in self._metrics:
                self._metrics[key] = keras.metrics.BinaryCrossentropy(
                    from_logits=o.from_logits, label_smoothing=o.label_smoothing, dtype=self._loss_policy() or o.dtype
                )
            metric = self._metrics[key]

            def call(y_true, y_pred, weight):
                if isinstance(y_pred, tf.RaggedTensor):  # ragged rows: one update_state with the whole batch
                    metric.update_state(y_true, y_pred)
                    return metric.result()
                for u in range(y_pred.shape[0]):  # one update_state per leading slice
                    metric.update_state(y_true[u], y_pred[u], sample_weight=None if weight is None else weight[u])
                return metric.result()

        else:  # pragma: no cover - Case validates api
            raise UsageError(f"api={api!r} is not supported by the target")
        return call

    def _metric_key(self, options: Options) -> tuple[Any, ...]:
        return (options, None if self._config is None else tuple(self._config.as_dict().items()))

    def _compiled(self, case: Case) -> Callable[..., Any]:
        """The entry point in the case's mode, asking for a gradient where the case does; cached."""
        key = trace_key(case)
        fn = self._compiled_cache.get(key)
        if fn is not None:
            return fn
        tf = self.tf
        entry = self._entry(case)
        if case.grad is None:
            run = entry
        else:
            source = case.grad

            def run(y_true, y_pred, weight):
                with tf.GradientTape() as tape:
                    tape.watch(y_pred if source == "y_pred" else weight)
                    result = entry(y_true, y_pred, weight)
                grad = tape.gradient(result, y_pred if source == "y_pred" else weight)
                if grad is None:
                    raise ValueError("no gradient: the result does not depend on " + source)
                return grad

        if case.mode == "function":
            run = tf.function(run)
        elif case.mode == "xla":
            run = tf.function(run, jit_compile=True)
        self._compiled_cache[key] = run
        return run

    def run_many(self, cases: Sequence[Case], *, max_stack: int = MAX_STACK) -> list[Outcome]:
        """Outcomes of ``cases`` in order, stacking compatible unreduced cases into one call.

        Cases with the same ``batch_key`` differ only in their values; for those, one call on the inputs
        stacked along a new leading axis computes each case's elementwise losses and their means over the
        (negative) axis exactly as separate calls would, and the result splits back into per-case outcomes.
        Everything else, reductions above all, gets its own real call.  If a stacked call raises, its cases
        are run one by one, so an exception is still attributed to its own case.
        """
        return map_stacked(cases, self.run, self._run_stacked, max_stack=max_stack)

    def _run_stacked(self, cases: Sequence[Case]) -> list[Outcome] | None:
        start = time.perf_counter()
        first = cases[0]
        try:
            loss = self._loss(first.options)
            y_true = self._tensor(np.stack([c.y_true for c in cases]), first.true_dtype)
            y_pred = self._tensor(np.stack([c.y_pred for c in cases]), first.pred_dtype)
            result = loss(y_true, y_pred)
            values = np.asarray(result.numpy()).astype(np.float64)
            dtype = result.dtype.name
        except Exception:  # noqa: BLE001 - let the cases raise one by one, each against its own record
            return None
        return split_stacked(values, dtype, len(cases), start)
