"""``bce-harness explain --model``: the loss a user reads off *their* model, route by route, against the
documented BCE of the model's own outputs, and the cause of each route that departs.

The routes are the ones people read (``harness.frameworks.model.run_model``): ``evaluate``, the compiled loss on
``model(x)`` and on ``model.predict(x)``, and the compiled ``BinaryCrossentropy`` metrics.  The reference is
the oracle's (``harness.oracle.expected``) on the outputs ``predict`` returns, with the compiled loss's
options: what a person computes by hand from those outputs.  A route agrees when it is within the oracle's
derived bound (plus the rounding of the reported float32); ``evaluate`` is also held against the loop's
documented aggregation (``harness.oracle.training``: per-batch losses averaged with the batch sizes as
weights).  A route that departs is explained by recomputing it under each known cause, with the oracle:

- the logits Keras attached to the output (``model(x)._keras_logits``) read as sigmoid logits: a softmax
  output (``softmax-output-read-as-sigmoid-logits``) or a saturated sigmoid (``saturated-sigmoid-logits-
  recovered``), both registered divergences;
- the loop's batch-size weighted mean of per-batch losses, which for ``reduction="sum"`` (or a weighted mean)
  is not the loss of the whole data and changes with ``batch_size`` (documented loop behaviour);
- a mixed-precision policy: the routes read float16/bfloat16 outputs, so the same weights in float32 give
  another loss (documented: a layer under a mixed policy computes in its compute dtype);
- a strategy in scope: a mean-reduced loss outside ``strategy.run`` divided by the number of replicas
  (``loss-halved-in-cross-replica-context``, registered).

Causes in the registry are named by their id with its evidence; documented behaviours that are not
divergences (the last three kinds above but the strategy) are named from ``DOCUMENTED`` here, with their
citation.  No cause is asserted unless the recomputation reproduces the route's value within the bound.

May import: every floor below the commands (the target lazily: importing this module needs no TensorFlow).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.case import Case, Expected, Options, TrainingSpec
from harness.errors import EXIT_DIVERGED, EXIT_OK, UsageError
from harness.judge.registry import Registry, load_registry
from harness.oracle import expected, expected_loop

__all__ = ["DOCUMENTED", "Cause", "ModelReport", "RouteCheck", "as_json", "check_model", "diagnose", "load_array", "render_text"]

F32_U = 2.0**-24

# Causes that are documented behaviour, not divergences: named so a reader can look them up, with the
# sentence that documents each.
DOCUMENTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "evaluate-batch-size-dependence": (
        "evaluate reports the mean of the per-batch losses weighted by the batch sizes, so a loss that is not a "
        "plain mean over samples (reduction='sum', or a weighted mean) depends on batch_size",
        (
            "keras/src/backend/tensorflow/trainer.py test_step: self._loss_tracker.update_state(loss, sample_weight=<batch size>); "
            "the tracker is metrics.Mean: sum(w * v) / sum(w) (Keras 3.15.1)",
            "Loss docstring: 'sum' sums the loss over the batch it is given: in evaluate, one batch at a time",
        ),
    ),
    "mixed-precision-outputs": (
        "under a mixed-precision policy the model computes, and outputs, float16/bfloat16: every route reads those "
        "outputs, so the loss is not the one of the same weights in float32",
        (
            "keras.io mixed precision guide: 'layers ... do computations in float16 ... the output of the layer is float16'",
            "keras/src/losses/loss.py Loss.__init__: dtype or backend.floatx(): the loss converts the float16 outputs to float32",
        ),
    ),
}


@dataclass(frozen=True)
class Cause:
    """Why a route departs: a registry id (``registered``) or a documented behaviour, with evidence."""

    id: str
    title: str
    registered: bool
    evidence: tuple[str, ...]
    measured: str  # what this model's numbers show

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "registered": self.registered, "evidence": list(self.evidence), "measured": self.measured}


@dataclass(frozen=True)
class RouteCheck:
    """One route: its value, the documented value it is held against, and the verdict."""

    route: str
    value: float
    expected: float
    bound: float
    agrees: bool
    causes: tuple[Cause, ...] = ()
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route, "value": self.value, "expected": self.expected, "bound": self.bound,
            "agrees": self.agrees, "causes": [c.as_dict() for c in self.causes], "note": self.note,
        }  # fmt: skip


@dataclass(frozen=True)
class ModelReport:
    """Every route of one model on one dataset, and the facts the diagnosis read."""

    routes: tuple[RouteCheck, ...]
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        return all(r.agrees for r in self.routes)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.agrees else EXIT_DIVERGED

    def as_dict(self) -> dict[str, Any]:
        return {"agrees": self.agrees, "facts": self.facts, "routes": [r.as_dict() for r in self.routes]}


def load_array(path: str | Path, flag: str) -> np.ndarray:
    """A ``.npy`` file as an array (no pickles: a file is data), or a UsageError naming the flag."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{flag} {str(path)!r}: no such file")
    try:
        a = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{flag} {str(path)!r} is not a .npy array: {exc}") from None
    if not isinstance(a, np.ndarray):  # an .npz archive
        a.close()
        raise UsageError(f"{flag} {str(path)!r} is not a .npy array (it holds several)")
    if a.dtype.kind not in "biuf" or a.ndim == 0:
        raise UsageError(f"{flag} {str(path)!r} holds {a.dtype} data of shape {a.shape}, not an array of numbers")
    return a


def _case(y: np.ndarray, pred: np.ndarray, pred_dtype: str, options: Options, sw: np.ndarray | None, **kw: Any) -> Case:
    return Case(
        id="model", y_true=np.asarray(y, dtype=np.float64), y_pred=np.asarray(pred, dtype=np.float64), true_dtype="float32",
        pred_dtype=pred_dtype, options=options, sample_weight=None if sw is None else np.asarray(sw, dtype=np.float64), **kw,
    )  # fmt: skip


def _scalar(e: Expected) -> tuple[float, float] | None:
    if e.raises is not None or e.value is None or e.bound is None or np.shape(e.value) != ():
        return None
    return float(e.value), float(e.bound)


def _near(value: float, want: tuple[float, float] | None) -> bool:
    if want is None:
        return False
    v, b = want
    if not (np.isfinite(value) and np.isfinite(v)):
        return bool(value == v or (np.isnan(value) and np.isnan(v)))
    return abs(value - v) <= b + 2 * F32_U * max(abs(v), abs(value))


class _Diagnosis:
    """The oracle's values for one ModelRun, computed once and shared by the routes."""

    def __init__(self, run: Any, y: np.ndarray, sw: np.ndarray | None, registry: Registry, profile: str) -> None:
        self.run, self.y, self.sw, self.registry, self.profile = run, np.asarray(y, dtype=np.float64), sw, registry, profile
        lc = run.loss
        self.options = Options(from_logits=lc.from_logits, label_smoothing=lc.label_smoothing, axis=lc.axis, reduction=lc.reduction, dtype=lc.dtype)
        self.reference = self.value(run.outputs, run.output_dtype)
        # model(x) runs eagerly and predict in a graph: in 16 bits the two may round an output apart (seen: a
        # sigmoid of 7.95 is 1.0 eagerly and 0.99951 in predict under mixed_float16), so each route is held
        # against the documented loss of the outputs it read
        called = np.asarray(run.called)
        same = called.shape == np.shape(run.outputs) and np.array_equal(called, np.asarray(run.outputs), equal_nan=True)
        self.reference_called = self.reference if same else self.value(called, run.output_dtype)
        self.logits_kind = self._logits_kind()
        self.recovered = None if self.logits_kind is None else self.value(run.logits, run.output_dtype, from_logits=True)

    def expect(self, case: Case) -> tuple[float, float] | None:
        return _scalar(expected(case, profile=self.profile))

    def value(self, pred: np.ndarray, dtype: str, *, from_logits: bool = False, batch_size: int | None = None) -> tuple[float, float] | None:
        options = self.options if not from_logits else Options(**{**self.options.__dict__, "from_logits": True})
        training = None if batch_size is None else TrainingSpec(route="evaluate", batch_size=batch_size)
        case = _case(self.y, pred, dtype, options, self.sw, training=training)
        # with batches: what the loop computes (its batch-size weighted mean), to name a dependence on them
        return self.expect(case) if training is None else _scalar(expected_loop(case, profile=self.profile))

    def metric(self, pred: np.ndarray, dtype: str, *, from_logits: bool, ls: float, weighted: bool) -> tuple[float, float] | None:
        options = Options(from_logits=from_logits, label_smoothing=ls)
        sw = self.sw if weighted else None
        return self.expect(_case(self.y, pred, dtype, options, sw, api="metrics.BinaryCrossentropy"))

    def _logits_kind(self) -> str | None:
        """Which activation made the outputs from the logits Keras attached: "softmax", "sigmoid" or None."""
        z = self.run.logits
        if z is None or self.run.loss.from_logits or np.shape(z) != np.shape(self.run.outputs):
            return None
        z = np.asarray(z, dtype=np.float64)
        p = np.asarray(self.run.called, dtype=np.float64)
        tol = 1e-2 if self.run.output_dtype in ("float16", "bfloat16") else 1e-5
        e = np.exp(z - np.max(z, axis=-1, keepdims=True))
        if z.shape[-1] > 1 and np.allclose(e / e.sum(axis=-1, keepdims=True), p, atol=tol):
            return "softmax"
        if np.allclose(1 / (1 + np.exp(-z)), p, atol=tol):
            return "sigmoid"
        return None

    def registered(self, rid: str, measured: str) -> Cause:
        entry = next((e for e in self.registry.entries if e.id == rid), None)
        if entry is None:  # a registry without it (--registry elsewhere): still say what was found
            return Cause(rid, "(not in the registry in use)", True, (), measured)
        return Cause(rid, entry.title, True, entry.evidence, measured)

    @staticmethod
    def documented(cid: str, measured: str) -> Cause:
        title, evidence = DOCUMENTED[cid]
        return Cause(cid, title, False, evidence, measured)

    def logits_cause(self, value: float, recomputed: tuple[float, float] | None) -> Cause | None:
        if self.logits_kind is None or not _near(value, recomputed):
            return None
        assert recomputed is not None
        measured = (
            f"the route's {value:.7g} is the sigmoid cross-entropy of the logits Keras attached to the "
            f"{self.logits_kind} output ({recomputed[0]:.7g}); the documented loss of the outputs is {self._ref_text()}"
        )
        rid = "softmax-output-read-as-sigmoid-logits" if self.logits_kind == "softmax" else "saturated-sigmoid-logits-recovered"
        return self.registered(rid, measured)

    def _ref_text(self) -> str:
        return "unavailable" if self.reference is None else f"{self.reference[0]:.7g}"


def diagnose(run: Any, y: np.ndarray, *, sample_weight: np.ndarray | None = None, registry: Registry | None = None, profile: str = "keras3") -> ModelReport:
    """Each route of ``run`` (a ``harness.frameworks.model.ModelRun``) against the documented BCE of its outputs."""
    d = _Diagnosis(run, y, sample_weight, registry or load_registry(), profile)
    if d.reference is None:
        raise UsageError(f"the model's outputs {run.outputs.shape} with labels {np.shape(y)} give no scalar BCE (reduction={run.loss.reduction!r})")
    ref = d.reference
    routes = [
        _plain_route(d, "loss on model.predict(x)", run.loss_on_predict),
        _plain_route(d, "loss on model(x)", run.loss_on_call, d.reference_called),
    ]
    if run.evaluate is not None:
        routes.append(_evaluate_route(d))
    routes.extend(_metric_route(d, m) for m in run.metrics)
    twin = _twin_route(d)
    if twin is not None:
        routes.append(twin)
    facts = {
        "output": f"{run.outputs.shape} {run.output_dtype}", "policy": run.policy, "last activation": run.activation,
        "loss": {k: v for k, v in run.loss.__dict__.items()}, "batch_size": run.batch_size, "replicas": run.replicas,
        "documented loss of the outputs": ref[0], "bound": ref[1], **run.versions,
    }  # fmt: skip
    if run.twin_note:
        facts["float32 twin"] = run.twin_note
    return ModelReport(routes=tuple(routes), facts=facts)


def _plain_route(d: _Diagnosis, name: str, value: float, ref: tuple[float, float] | None = None) -> RouteCheck:
    """A loss called on outputs; ``ref``: the documented loss of the outputs it read (default: predict's)."""
    ref = d.reference if ref is None else ref
    assert ref is not None
    if _near(value, ref):
        return RouteCheck(name, value, ref[0], ref[1], True)
    causes = [c for c in [d.logits_cause(value, d.recovered)] if c is not None]
    if not causes and d.run.replicas > 1 and _near(value * d.run.replicas, ref):
        causes.append(d.registered(
            "loss-halved-in-cross-replica-context",
            f"the route's {value:.7g} times the {d.run.replicas} replicas in sync is the documented {ref[0]:.7g}",
        ))  # fmt: skip
    return RouteCheck(name, value, ref[0], ref[1], False, tuple(causes), None if causes else "no catalogued cause")


def _evaluate_route(d: _Diagnosis) -> RouteCheck:
    run, ref = d.run, d.reference
    assert ref is not None
    name = f"evaluate (batch_size={run.batch_size})"
    if _near(run.evaluate, ref):
        return RouteCheck(name, run.evaluate, ref[0], ref[1], True)
    n = len(d.y)
    looped = d.value(run.outputs, run.output_dtype, batch_size=run.batch_size)
    recovered_loop = None if d.logits_kind is None else d.value(run.logits, run.output_dtype, from_logits=True, batch_size=run.batch_size)
    causes: list[Cause] = []
    # the logits are a cause only where reading them changes the loop's value
    logits = None if _near(run.evaluate, looped) else d.logits_cause(run.evaluate, recovered_loop)
    if logits is not None:
        causes.append(logits)
    # the batches are a cause only where the loop's value under the same reading is not the whole data's
    per_batch, whole = (looped, ref) if logits is None else (recovered_loop, d.recovered)
    if (logits is not None or _near(run.evaluate, looped)) and per_batch is not None and whole is not None and not _near(per_batch[0], whole):
        causes.append(d.documented(
            "evaluate-batch-size-dependence",
            f"{n} samples in batches of {run.batch_size}: the batch-size weighted mean of the per-batch "
            f"{run.loss.reduction!r} losses is {per_batch[0]:.7g}; in one batch (batch_size={n}) it is {whole[0]:.7g}",
        ))  # fmt: skip
    return RouteCheck(name, run.evaluate, ref[0], ref[1], False, tuple(causes), None if causes else "no catalogued cause")


def _metric_route(d: _Diagnosis, m: Any) -> RouteCheck:
    run = d.run
    name = f"compiled metric {m.name!r}" + (" (weighted_metrics)" if m.weighted else "")
    want = d.metric(run.outputs, run.output_dtype, from_logits=m.from_logits, ls=m.label_smoothing, weighted=m.weighted)
    if want is None:
        return RouteCheck(name, m.value, float("nan"), float("nan"), False, (), "the oracle has no scalar metric for these outputs")
    note = None
    if d.sw is not None and not m.weighted:
        note = "compile(metrics=...) is not weighted by sample_weight (weighted_metrics is), as compile documents"
    if _near(m.value, want):
        return RouteCheck(name, m.value, want[0], want[1], True, (), note)
    causes: list[Cause] = []
    if d.logits_kind is not None and not m.from_logits:
        rec = d.metric(run.logits, run.output_dtype, from_logits=True, ls=m.label_smoothing, weighted=m.weighted)
        cause = d.logits_cause(m.value, rec)
        if cause is not None:
            causes.append(cause)
    return RouteCheck(name, m.value, want[0], want[1], False, tuple(causes), note if causes else "no catalogued cause")


def _twin_route(d: _Diagnosis) -> RouteCheck | None:
    """Under a mixed policy: the documented loss of the same weights' float32 outputs, against the routes'."""
    run, ref = d.run, d.reference
    assert ref is not None
    if run.twin_outputs is None:
        return None
    twin = d.value(run.twin_outputs, "float32")
    if twin is None:
        return None
    name = f"the same weights in float32 (the routes read {run.output_dtype} outputs)"
    value = ref[0]
    if abs(value - twin[0]) <= ref[1] + twin[1] + 2 * F32_U * abs(twin[0]):
        return RouteCheck(name, value, twin[0], twin[1], True)
    p16 = np.asarray(run.outputs, dtype=np.float64)
    p32 = np.asarray(run.twin_outputs, dtype=np.float64)
    saturated = int(np.sum(((p16 == 0) | (p16 == 1)) & (p32 != 0) & (p32 != 1)))
    measured = (
        f"policy {run.policy}: outputs {run.output_dtype}, largest |p - p_float32| = {float(np.max(np.abs(p16 - p32))):.3g}, "
        f"{saturated} output(s) rounded to exactly 0 or 1; the documented loss of the {run.output_dtype} outputs is "
        f"{value:.7g}, of the float32 outputs {twin[0]:.7g}"
    )
    return RouteCheck(name, value, twin[0], twin[1], False, (d.documented("mixed-precision-outputs", measured),))


def check_model(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    batch_size: int | None = None,
    registry: Registry | None = None,
    profile: str = "keras3",
    evaluate: bool = True,
) -> ModelReport:
    """Run ``model`` (a Keras model, or the path of a saved one) the ways its loss is read, and diagnose each
    route.  Never trains or changes the model.  ``evaluate=False``: not evaluate nor the compiled metrics
    (for a check inside a running fit or evaluate, ``harness.keras.BCECheck``)."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UsageError(f"batch_size={batch_size!r} is not a positive integer")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(y) == 0:
        raise UsageError(f"x has {len(x)} samples and y {len(y)}: they must be the same, and not none")
    if sample_weight is not None and np.shape(sample_weight)[:1] != (len(y),):
        raise UsageError(f"sample_weight has shape {np.shape(sample_weight)}: it must have one weight per sample ({len(y)})")
    if not np.all(np.isfinite(y)):
        raise UsageError("y holds NaN or infinite labels")
    from harness.frameworks.model import load_model, run_model

    if isinstance(model, (str, Path)):
        model = load_model(model)
    y32 = np.asarray(y, dtype=np.float32)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
    run = run_model(model, x, y32, sample_weight=sw, batch_size=batch_size, evaluate=evaluate)
    return diagnose(run, y32, sample_weight=sw, registry=registry, profile=profile)


def render_text(report: ModelReport) -> str:
    """The report as a person reads it: the facts, each route with its verdict, and each cause's evidence."""
    f = report.facts
    lines = [
        f"model: output {f.get('output')}, policy {f.get('policy')}, last activation {f.get('last activation')}",
        "compiled loss: " + ", ".join(f"{k}={v!r}" for k, v in f.get("loss", {}).items()),
        f"documented BCE of the model's outputs (oracle): {f.get('documented loss of the outputs'):.7g} (bound {f.get('bound'):.2g})",
        "",
    ]
    width = max(len(r.route) for r in report.routes)
    for r in report.routes:
        verdict = "agrees" if r.agrees else "DEPARTS"
        lines.append(f"  {r.route:<{width}}  {r.value:.7g}  (expected {r.expected:.7g})  {verdict}")
        if r.note:
            lines.append(f"      note: {r.note}")
        for c in r.causes:
            kind = "registered divergence" if c.registered else "documented behaviour"
            lines.append(f"      cause: {c.id} ({kind}): {c.title}")
            lines.append(f"      measured: {c.measured}")
            lines.extend(f"      evidence: {e}" for e in c.evidence)
    lines.append("")
    if report.agrees:
        lines.append("verdict: every route agrees with the documented BCE of the model's outputs")
    else:
        departed = [r.route for r in report.routes if not r.agrees]
        named = sorted({c.id for r in report.routes for c in r.causes})
        lines.append(f"verdict: {len(departed)} route(s) depart: {'; '.join(departed)}")
        lines.append(f"cause(s): {', '.join(named) if named else 'no catalogued cause'}")
    return "\n".join(lines)


def as_json(report: ModelReport) -> str:
    return json.dumps(report.as_dict(), indent=1, default=str)

