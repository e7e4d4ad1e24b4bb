"""Stage 2, the specification oracle: what each Keras line documents BinaryCrossentropy to compute.

``keras3`` and ``keras2`` are the two profiles, ``gradient`` their analytic derivatives, ``training`` what a
training loop and replicas report, ``tolerance`` the forward error bounds every expectation carries,
``profiles`` the choice of profile from the installed packages, ``steps`` the named steps of the computation
a profile records when asked (what ``explain`` shows).
This package's face chooses: ``PROFILES`` names the profiles and ``expected`` sends a case to its profile, or
to ``gradient`` for a gradient case, so no profile module imports the registry of profiles back.

May import: the ground floor only.  Never TensorFlow or Keras, and nothing of a later stage.
"""

from __future__ import annotations

from harness.case import Case, Expected
from harness.errors import UsageError
from harness.oracle.gradient import expected_gradient
from harness.oracle.keras2 import Keras2
from harness.oracle.keras3 import EPSILON, Keras3
from harness.oracle.steps import Step
from harness.oracle.training import expected_training, loop_training

__all__ = ["EPSILON", "PROFILES", "expected", "expected_loop"]

PROFILES: dict[str, type[Keras3]] = {"keras3": Keras3, "keras2": Keras2}


def expected(
    case: Case, *, profile: str = "keras3", epsilon: float = EPSILON, floatx: str = "float32", steps: list[Step] | None = None
) -> Expected:
    """What ``case`` must yield under ``profile``'s documented semantics, in a Keras whose
    ``keras.config.epsilon()`` is ``epsilon`` and ``floatx()`` is ``floatx`` (what the worker's Keras has,
    from ``keras.json`` or a call); the settings the case itself makes (``case.config``) take precedence.
    ``steps``, when given, receives the loss's named steps as the profile takes them (oracle.steps); a case
    outside the documented domain, a training or a gradient case records none."""
    if profile not in PROFILES:
        raise UsageError(f"profile={profile!r} is not one of {', '.join(PROFILES)}")
    cfg = case.config
    if cfg is not None:
        epsilon = epsilon if cfg.epsilon is None else cfg.epsilon
        floatx = floatx if cfg.floatx is None else cfg.floatx
    semantics = PROFILES[profile](epsilon=epsilon, floatx=floatx)
    outside = semantics.outside_domain(case)
    if outside is not None:  # no verdict: what the target does here is recorded, never expected
        return Expected(outside=outside)
    if case.training is not None:
        return expected_training(semantics, case)
    if case.grad is not None:
        return expected_gradient(semantics, case)
    return semantics.expected(case, steps=steps)


def expected_loop(case: Case, *, profile: str = "keras3", epsilon: float = EPSILON, floatx: str = "float32") -> Expected:
    """For a training-loop case: what the loop computes as its reported loss (the batch-size weighted mean of
    the per-batch losses), which is not the documented value where it depends on the batch size; the
    diagnosis of a model's evaluate names that dependence with it.  Any other case: ``expected``."""
    if case.training is None or profile not in PROFILES:
        return expected(case, profile=profile, epsilon=epsilon, floatx=floatx)
    cfg = case.config
    if cfg is not None:
        epsilon = epsilon if cfg.epsilon is None else cfg.epsilon
        floatx = floatx if cfg.floatx is None else cfg.floatx
    return loop_training(PROFILES[profile](epsilon=epsilon, floatx=floatx), case)
