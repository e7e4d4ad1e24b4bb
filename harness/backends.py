"""The Keras backends a run can target, and what each can express of a case.

Keras 3 runs one ``keras.losses.BinaryCrossentropy`` on TensorFlow, JAX, PyTorch or NumPy, chosen by the
``KERAS_BACKEND`` environment variable before Keras is imported, and documents the same numbers on each up
to float precision.  ``bce-harness run --backend B`` runs the suite under backend B against the same
reference.  A case that names something only TensorFlow has (``tf.nn.sigmoid_cross_entropy_with_logits``,
the ``tf.sigmoid`` producer) cannot be expressed under another backend, nor can a traced mode where the
backend has no tracer the harness uses (PyTorch: ``torch.compile`` costs minutes per signature; NumPy: none),
nor a gradient where the backend has no automatic differentiation (NumPy); the training and replica families
(model.fit and evaluate, tf.distribute strategies) are built by the TensorFlow target only.  Such cases are skipped by
construction (``split``), counted with their reason in the run's ``meta.backend``.  Under JAX the
``function`` and ``xla`` modes map to ``jax.jit`` (the only tracer JAX has; it always compiles with XLA).

Ground floor: no framework, no other stage.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.case import Case

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "TF_ONLY_APIS", "backend_of", "split", "unsupported"]

BACKENDS: tuple[str, ...] = ("tensorflow", "jax", "torch", "numpy")
DEFAULT_BACKEND = "tensorflow"
TF_ONLY_APIS = frozenset({"nn.sigmoid_cross_entropy_with_logits", "backend.binary_crossentropy"})
TF_ONLY_PRODUCERS = frozenset({"tf.sigmoid"})
# built by the TensorFlow target only (harness/frameworks/__init__.py): the layer and model producers
TF_TARGET_PRODUCERS = frozenset({"layers.Activation(sigmoid)", "layers.Softmax", "model(x)", "model.predict(x)"})
# the modes each backend can run a case in: JAX maps both traced modes to jax.jit
MODES_OF = {
    "tensorflow": ("eager", "function", "xla"),
    "jax": ("eager", "function", "xla"),
    "torch": ("eager",),
    "numpy": ("eager",),
}
GRADIENTS_OF = {"tensorflow": True, "jax": True, "torch": True, "numpy": False}


def backend_of(case: Case) -> str:
    """The backend a case is (to be) run under: its ``backend`` tag, else TensorFlow."""
    return case.tags.get("backend", DEFAULT_BACKEND)


def unsupported(case: Case, backend: str) -> str | None:
    """Why ``case`` cannot be expressed under ``backend``, or None when it can."""
    if backend == DEFAULT_BACKEND:
        return None
    if getattr(case, "training", None) is not None:
        return "training and replica routes (model.fit, evaluate, strategies) run on the TensorFlow target only"
    if getattr(case, "config", None) is not None:
        return "Keras configuration cases (policies, set_epsilon, set_floatx) are set by the TensorFlow target only"
    if getattr(case, "row_lengths", None) is not None:
        return "ragged inputs are TensorFlow's (tf.RaggedTensor)"
    if case.api in TF_ONLY_APIS:
        return f"{case.api} is TensorFlow's own entry point"
    if case.producer in TF_ONLY_PRODUCERS:
        return f"the producer {case.producer} is TensorFlow's own op"
    if case.producer in TF_TARGET_PRODUCERS:
        return "layer and model producers are built by the TensorFlow target only"
    if case.mode not in MODES_OF[backend]:
        return {
            "torch": "traced modes: torch.compile takes minutes per signature, not used",
            "numpy": "traced modes: the NumPy backend has no tracer",
        }[backend]
    if case.api == "metrics.BinaryCrossentropy" and case.mode != "eager":
        return "a metric's state lives outside a jax.jit function"
    if case.grad is not None and not GRADIENTS_OF[backend]:
        return "gradients: the NumPy backend has no automatic differentiation"
    return None


def split(cases: Iterable[Case], backend: str) -> tuple[list[Case], dict[str, int]]:
    """The cases ``backend`` can express, each tagged with the backend (so the registry and the reports see
    it), and the count of the others by reason.  Under TensorFlow every case is kept unchanged."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    kept: list[Case] = []
    skipped: dict[str, int] = {}
    for case in cases:
        reason = unsupported(case, backend)
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
        elif backend == DEFAULT_BACKEND:
            kept.append(case)
        else:
            kept.append(_tagged(case, backend))
    return kept, skipped


def _tagged(case: Case, backend: str) -> Case:
    from dataclasses import replace

    return replace(case, tags={**case.tags, "backend": backend})
