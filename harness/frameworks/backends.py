"""Keras 3 under a backend other than TensorFlow: the same entry points, called through ``keras`` alone.

``KerasTarget(backend)`` has ``TFTarget``'s interface (``run``, ``run_many``, ``versions``).  It builds the
inputs as the backend's tensors (``keras.ops.convert_to_tensor``), calls ``keras.losses.BinaryCrossentropy``,
``keras.losses.binary_crossentropy``, ``keras.ops.binary_crossentropy`` or ``keras.metrics.BinaryCrossentropy``
with the case's options, and returns an ``Outcome``.  Keras reads ``KERAS_BACKEND`` once, when it is first
imported: the worker process sets it before anything imports Keras, and the constructor refuses a Keras
already bound to another backend.  Gradients: ``jax.vjp`` under JAX, ``torch.autograd.grad`` under PyTorch,
each with a cotangent of ones (what ``tf.GradientTape.gradient`` takes for a non-scalar result: the gradient
of the sum).  The ``function`` and ``xla`` modes run under ``jax.jit`` on JAX; what a backend cannot
express never reaches this class (``harness.backends.unsupported``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from harness.backends import BACKENDS, unsupported
from harness.case import Case, Options, Outcome
from harness.errors import TargetUnavailable, UsageError
from harness.frameworks.keras_calls import keras_call, weight_argument
from harness.stacking import MAX_STACK, map_stacked, split_stacked, trace_key

__all__ = ["KerasTarget", "import_keras"]

_PACKAGES = {"jax": ("jax", "jaxlib"), "torch": ("torch",), "numpy": ("scipy",)}


def import_keras(backend: str, *, threads: int | None = None) -> Any:
    """Keras bound to ``backend``, or TargetUnavailable (the backend's package is missing) / UsageError (Keras
    is already bound to another backend in this process)."""
    if backend not in BACKENDS or backend == "tensorflow":
        raise UsageError(f"backend={backend!r} is not one of {', '.join(b for b in BACKENDS if b != 'tensorflow')}")
    for package in _PACKAGES[backend]:
        if importlib.util.find_spec(package) is None:
            raise TargetUnavailable(
                f"the {backend} backend needs {package}, which is not installed; install the extra: "
                f"pip install 'bce-harness[{backend}]'"
            )
    import sys

    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
    try:
        import keras
    except ImportError as exc:
        raise TargetUnavailable(f"Keras cannot be imported under the {backend} backend ({exc})") from None
    bound = keras.backend.backend()
    if bound != backend:
        raise UsageError(f"Keras in this process already runs the {bound} backend; {backend} needs a fresh process")
    if backend == "torch" and threads is not None:
        import torch

        torch.set_num_threads(threads)
    return keras


class KerasTarget:
    """Runs cases through Keras 3 under ``backend`` (jax, torch or numpy).  ``loss_factory`` replaces the loss
    constructor (fault injection), as for ``TFTarget``."""

    def __init__(
        self, backend: str, *, loss_factory: Callable[[Options], Callable[..., Any]] | None = None, threads: int | None = None
    ) -> None:
        self.keras = import_keras(backend, threads=threads)
        self.name = self.backend = backend
        self._factory = loss_factory or self._default_factory
        self._losses: dict[Options, Any] = {}
        self._metrics: dict[Options, Any] = {}
        self._compiled_cache: dict[tuple[Any, ...], Callable[..., Any]] = {}

    def _default_factory(self, options: Options) -> Callable[..., Any]:
        dtype = {} if options.dtype is None else {"dtype": options.dtype}
        return self.keras.losses.BinaryCrossentropy(
            from_logits=options.from_logits,
            label_smoothing=options.label_smoothing,
            axis=options.axis,
            reduction=options.reduction,
            **dtype,
        )

    def versions(self) -> dict[str, str | None]:
        keras = self.keras
        found: dict[str, str | None] = {
            "tensorflow": None,
            "keras": keras.__version__,
            "keras_package": "keras",
            "backend": self.backend,
            "backend_version": None,
            "platform": platform.platform(),
            "machine": platform.machine(),
        }
        module = {"jax": "jax", "torch": "torch", "numpy": "numpy"}[self.backend]
        found["backend_version"] = importlib.import_module(module).__version__
        if self.backend == "jax":
            import jax

            found["jaxlib"] = importlib.import_module("jaxlib").__version__
            found["jax_enable_x64"] = str(bool(jax.config.read("jax_enable_x64")))
        return found

    # -- tensors -------------------------------------------------------------------------------------------

    def _tensor(self, values: np.ndarray, dtype: str) -> Any:
        ops = self.keras.ops
        if dtype == "bool":
            return ops.convert_to_tensor(np.asarray(values) != 0)
        if dtype in ("int32", "int64"):
            return ops.convert_to_tensor(np.asarray(values).astype(dtype))
        # values are exactly representable in dtype (and so in float32 for the half formats): the conversion to
        # the backend's float64 or float32, then the cast, are exact
        wide = "float64" if dtype == "float64" else "float32"
        return ops.cast(ops.convert_to_tensor(np.asarray(values, dtype=wide)), dtype)

    def _numpy(self, result: Any) -> tuple[np.ndarray, str]:
        ops = self.keras.ops
        dtype = self.keras.backend.standardize_dtype(result.dtype)
        wide = "float32" if dtype in ("float16", "bfloat16") else dtype
        return np.asarray(ops.convert_to_numpy(ops.cast(result, wide)), dtype=np.float64), dtype

    def _loss(self, options: Options) -> Any:
        loss = self._losses.get(options)
        if loss is None:
            loss = self._losses[options] = self._factory(options)
        return loss

    # -- one case ------------------------------------------------------------------------------------------

    def run(self, case: Case) -> Outcome:
        start = time.perf_counter()
        reason = unsupported(case, self.backend)
        if reason is not None:  # the run skips such cases; a direct call says why instead of guessing
            return Outcome(error=f"NotSupported: {reason}", seconds=time.perf_counter() - start)
        try:
            fn = self._compiled(case)
            y_true = self._tensor(case.y_true, case.true_dtype)
            y_pred = self._tensor(case.y_pred, case.pred_dtype)
            weight = weight_argument(case, self._tensor)
            if case.api == "metrics.BinaryCrossentropy":
                self._metrics[case.options].reset_state()
            with np.errstate(all="ignore"):  # the NumPy backend's log(0) and the like are results, not warnings
                value, dtype = self._numpy(fn(y_true, y_pred, weight))
        except Exception as exc:  # noqa: BLE001 - an exception from the library is an outcome
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Outcome(error=f"{type(exc).__name__}: {message}"[:500], seconds=time.perf_counter() - start)
        return Outcome(value=value, dtype=dtype, seconds=time.perf_counter() - start)

    def _entry(self, case: Case) -> Callable[..., Any]:
        keras = self.keras
        call = self._api_call(case)
        producer = None if case.producer is None else {
            "keras.activations.sigmoid": keras.activations.sigmoid,
            "keras.ops.sigmoid": keras.ops.sigmoid,
        }[case.producer]
        mask = None if case.mask is None else np.asarray(case.mask)

        def entry(y_true, y_pred, weight):
            if producer is not None:
                y_pred = producer(y_pred)
            if mask is not None:
                from keras.src.backend.common.masking import set_keras_mask

                y_pred = keras.ops.copy(y_pred) if producer is None else y_pred
                set_keras_mask(y_pred, keras.ops.convert_to_tensor(mask))
            return call(y_true, y_pred, weight)

        return entry

    def _api_call(self, case: Case) -> Callable[..., Any]:
        keras, o, api = self.keras, case.options, case.api
        call = keras_call(keras, api, o, self._loss)
        if call is not None:  # one of Keras's own entry points, the same on every backend
            return call
        if api == "metrics.BinaryCrossentropy":
            if o not in self._metrics:
                self._metrics[o] = keras.metrics.BinaryCrossentropy(
                    from_logits=o.from_logits, label_smoothing=o.label_smoothing, dtype=o.dtype
                )
            metric = self._metrics[o]

            def call(y_true, y_pred, weight):
                for u in range(y_pred.shape[0]):
                    metric.update_state(y_true[u], y_pred[u], sample_weight=None if weight is None else weight[u])
                return metric.result()

        else:
            raise UsageError(f"api={api!r} is not supported under the {self.backend} backend")
        return call

    def _compiled(self, case: Case) -> Callable[..., Any]:
        key = trace_key(case)
        fn = self._compiled_cache.get(key)
        if fn is not None:
            return fn
        entry = self._entry(case)
        run = entry if case.grad is None else self._gradient(entry, case.grad)
        if case.mode in ("function", "xla"):  # only JAX gets here (harness.backends.MODES_OF)
            import jax

            run = jax.jit(run)
        self._compiled_cache[key] = run
        return run

    def _gradient(self, entry: Callable[..., Any], source: str) -> Callable[..., Any]:
        """The gradient of the result's sum with respect to y_pred or the weight (a cotangent of ones)."""
        if self.backend == "jax":
            import jax
            import jax.numpy as jnp

            def run(y_true, y_pred, weight):
                if source == "y_pred":
                    out, pull = jax.vjp(lambda p: entry(y_true, p, weight), y_pred)
                else:
                    out, pull = jax.vjp(lambda w: entry(y_true, y_pred, w), weight)
                return pull(jnp.ones_like(out))[0]

            return run
        if self.backend == "torch":
            import torch

            def run(y_true, y_pred, weight):
                if source == "y_pred":
                    y_pred = y_pred.detach().clone().requires_grad_(True)
                    wrt = y_pred
                else:
                    weight = weight.detach().clone().requires_grad_(True)
                    wrt = weight
                out = entry(y_true, y_pred, weight)
                if not out.requires_grad:
                    raise ValueError("no gradient: the result does not depend on " + source)
                (grad,) = torch.autograd.grad(out, wrt, grad_outputs=torch.ones_like(out), allow_unused=True)
                if grad is None:
                    raise ValueError("no gradient: the result does not depend on " + source)
                return grad

            return run
        raise UsageError(f"gradients are not supported under the {self.backend} backend")

    # -- many cases ----------------------------------------------------------------------------------------

    def run_many(self, cases: Sequence[Case], *, max_stack: int = MAX_STACK) -> list[Outcome]:
        """As ``TFTarget.run_many``: compatible unreduced cases stacked into one call, the rest one by one."""
        return map_stacked(cases, self.run, self._run_stacked, max_stack=max_stack)

    def _run_stacked(self, cases: Sequence[Case]) -> list[Outcome] | None:
        start = time.perf_counter()
        first = cases[0]
        if unsupported(first, self.backend) is not None:
            return None
        try:
            loss = self._loss(first.options)
            y_true = self._tensor(np.stack([c.y_true for c in cases]), first.true_dtype)
            y_pred = self._tensor(np.stack([c.y_pred for c in cases]), first.pred_dtype)
            with np.errstate(all="ignore"):
                values, dtype = self._numpy(loss(y_true, y_pred))
        except Exception:  # noqa: BLE001 - let the cases raise one by one, each against its own record
            return None
        return split_stacked(values, dtype, len(cases), start)
