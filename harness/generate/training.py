"""The ``training`` and ``replicas`` families: the loss as a training loop and as replicas reach it.

``training/<route>/...``: a tiny compiled model (harness.frameworks.training) through ``evaluate``,
``test_on_batch``, ``fit`` (one epoch, learning rate 0) and ``train_on_batch``, with batch sizes that do and
do not divide the data, ``sample_weight`` or ``class_weight``, a linear or sigmoid output, and the metric
``BinaryCrossentropy`` compiled beside the loss.  ``replicas/<route>/...``: the loss under
``MirroredStrategy`` on two logical CPU devices, inside and outside ``strategy.run``, on even and uneven
splits, and ``evaluate``/``fit`` under the strategy.

Building a model and tracing its step functions costs about a second, so the default suite holds a few
cases on two model signatures (the target reuses a model per signature) and the nightly suite the product.
Values are in the typical regime (probabilities in [0.02, 0.98], logits of scale 3): the loops, not the
formula's edges, are under test here, and a saturated sigmoid output is the registered
``saturated-sigmoid-logits-recovered``.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator

import numpy as np

from harness.case import Case, Options, TrainingSpec
from harness.dtypes import round_to

__all__ = ["replicas_family", "training_family"]

CLASS_WEIGHT = ((0, 0.5), (1, 2.0))


def _case(
    family: str, cid: str, seed: int, spec: TrainingSpec, n: int, *, width: int = 1, weights: bool = False,
    options: Options | None = None, soft: bool = False,
) -> Case:  # fmt: skip
    """A case of ``n`` samples of ``width`` columns with values drawn from (seed, id)."""
    rng = np.random.default_rng([seed, zlib.crc32(cid.encode())])
    options = options or Options()
    shape = (n, width)
    y = rng.uniform(0.0, 1.0, shape) if soft else rng.integers(0, 2, shape).astype(np.float64)
    if n >= 2 and not soft:
        y[:2, 0] = [0.0, 1.0]  # both classes present
    logits = spec.activation == "sigmoid" or options.from_logits
    p = rng.normal(0.0, 3.0, shape) if logits else rng.uniform(0.02, 0.98, shape)
    if spec.activation == "sigmoid" and n >= 2 and not soft:
        # a confident wrong output in every column (y = 1, sigmoid(-12) = 6.1e-6, far above the clip): where
        # Keras computes from the recovered logits and where from the clipped probability shows here
        y[1, :], p[1, :] = 1.0, -12.0
    w = round_to(rng.uniform(0.25, 2.0, n), "float32") if weights else None
    weight_form = "per_sample" if weights else ("class_weight" if spec.class_weight else "none")
    return Case(
        id=f"{family}/{cid}",
        y_true=round_to(y, "float32"),
        y_pred=round_to(p, "float32"),
        true_dtype="float32",
        pred_dtype="float32",
        options=options,
        sample_weight=w,
        training=spec,
        tags={"family": family, "regime": "soft_labels" if soft else "typical", "shape": f"{n}x{width}", "weights": weight_form},
    )


def training_family(seed: int, suite: str) -> Iterator[Case]:
    """Cheap rows in the default suite (one linear and one sigmoid model); the product in the nightly."""
    t = "training"
    # default: one model signature (width 1, linear, the metric in weighted_metrics) through the four routes,
    # with partial last batches, then a sigmoid output with the metric in metrics (not weighted)
    weighted = "weighted_metrics"
    yield _case(t, "evaluate/bs=4/n=10/weighted/weighted_metric", seed, TrainingSpec("evaluate", 4, metric=weighted), 10, weights=True)
    yield _case(t, "fit/bs=4/n=10/class_weight/weighted_metric", seed, TrainingSpec("fit", 4, metric=weighted, class_weight=CLASS_WEIGHT), 10)
    yield _case(t, "test_on_batch/n=6/weighted_metric", seed, TrainingSpec("test_on_batch", metric=weighted), 6)
    yield _case(t, "train_on_batch/n=6/weighted/weighted_metric", seed, TrainingSpec("train_on_batch", metric=weighted), 6, weights=True)
    # a Dense(1, activation="sigmoid") output: Keras recovers the logits in the traced step
    sigmoid = TrainingSpec("evaluate", 3, activation="sigmoid", metric="metrics")
    yield _case(t, "evaluate/sigmoid/bs=3/n=7/weighted/metric", seed, sigmoid, 7, weights=True)
    # reduction="sum": the documented loss of the data, which evaluate reports only in one batch (the loop's
    # mean of per-batch sums depends on the batch size: registered)
    for bs in (4, 10):
        yield _case(t, f"evaluate/sum/bs={bs}/n=10", seed, TrainingSpec("evaluate", bs), 10, options=Options(reduction="sum"))
    if suite != "nightly":
        return
    for route, activation, batch, weighting, width, metric in itertools.product(
        ("evaluate", "test_on_batch", "fit", "train_on_batch"), ("linear", "sigmoid"), (5, 4), ("none", "sample", "class"), (1, 3),
        ("metrics", "weighted_metrics"),
    ):
        on_batch = route.endswith("_on_batch")
        if (on_batch and batch != 5) or (weighting == "class" and route in ("evaluate", "test_on_batch")):
            continue
        if weighting == "none" and metric == "weighted_metrics":
            continue
        if weighting == "class" and width != 1:  # class_weight takes sparse labels (B, 1) or one-hot ones
            continue
        spec = TrainingSpec(
            route, None if on_batch else batch, activation=activation, metric=metric,
            class_weight=CLASS_WEIGHT if weighting == "class" else None,
        )  # fmt: skip
        size = "" if on_batch else f"bs={batch}/"
        cid = f"{route}/{activation}/{size}n=10/w={width}/{weighting}/{metric}"
        yield _case(t, f"nightly/{cid}", seed, spec, 10, width=width, weights=weighting == "sample")
    # the options the compiled loss carries, and soft labels
    for route, options, soft in itertools.product(
        ("evaluate", "fit"),
        (Options(from_logits=True), Options(reduction="sum"), Options(label_smoothing=0.1), Options(reduction="mean_with_sample_weight")),
        (False, True),
    ):
        tag = "soft" if soft else "hard"
        cid = f"nightly/{route}/options/logits={options.from_logits}/ls={options.label_smoothing}/{options.reduction}/{tag}"
        yield _case(t, cid, seed, TrainingSpec(route, 3, metric="weighted_metrics"), 8, weights=True, options=options, soft=soft)
    # both weightings at once: refused
    yield _case(t, "nightly/fit/class_weight+sample_weight", seed, TrainingSpec("fit", 4, class_weight=CLASS_WEIGHT), 8, weights=True)


def replicas_family(seed: int, suite: str) -> Iterator[Case]:
    """The loss under MirroredStrategy on two logical CPUs: even and uneven splits, inside and outside run."""
    r = "replicas"
    mirrored = "mirrored"
    mean = Options()
    yield _case(r, "run/even/sum_over_batch_size", seed, TrainingSpec("run", strategy=mirrored, splits=(3, 3)), 6)
    yield _case(r, "run/uneven/sum_over_batch_size", seed, TrainingSpec("run", strategy=mirrored, splits=(3, 2)), 5)
    yield _case(r, "run/uneven/sum/weighted", seed, TrainingSpec("run", strategy=mirrored, splits=(3, 2)), 5, weights=True, options=Options(reduction="sum"))
    yield _case(
        r, "run:compute_average_loss/uneven/weighted", seed, TrainingSpec("run:compute_average_loss", strategy=mirrored, splits=(3, 2)),
        5, weights=True, options=Options(reduction="none"),
    )  # fmt: skip
    yield _case(r, "cross_replica/sum_over_batch_size", seed, TrainingSpec("cross_replica", strategy=mirrored), 6, options=mean)
    # Keras's own loop under the strategy: an even first batch and a partial last one (split 1 / 0)
    yield _case(r, "evaluate/bs=4/n=5/metric", seed, TrainingSpec("evaluate", 4, metric="metrics", strategy=mirrored), 5)
    if suite != "nightly":
        return
    yield _case(r, "nightly/evaluate/bs=3/n=6", seed, TrainingSpec("evaluate", 3, strategy=mirrored), 6)
    yield _case(r, "nightly/run/even/mean_with_sample_weight", seed, TrainingSpec("run", strategy=mirrored, splits=(3, 3)), 6, weights=True, options=Options(reduction="mean_with_sample_weight"))
    yield _case(r, "nightly/run/even/weighted", seed, TrainingSpec("run", strategy=mirrored, splits=(4, 4)), 8, weights=True)
    yield _case(r, "nightly/run/uneven/sum/logits", seed, TrainingSpec("run", strategy=mirrored, splits=(5, 2)), 7, options=Options(from_logits=True, reduction="sum"))
    yield _case(r, "nightly/cross_replica/sum", seed, TrainingSpec("cross_replica", strategy=mirrored), 6, options=Options(reduction="sum"))
    yield _case(
        r, "nightly/run:compute_average_loss/even", seed, TrainingSpec("run:compute_average_loss", strategy=mirrored, splits=(4, 4)),
        8, options=Options(reduction="none"),
    )  # fmt: skip
    for route, weighting in itertools.product(("evaluate", "fit", "test_on_batch", "train_on_batch"), ("none", "sample", "class")):
        on_batch = route.endswith("_on_batch")
        if weighting == "class" and route in ("evaluate", "test_on_batch"):
            continue
        spec = TrainingSpec(
            route, None if on_batch else 4, metric="weighted_metrics", strategy=mirrored,
            class_weight=CLASS_WEIGHT if weighting == "class" else None,
        )  # fmt: skip
        yield _case(r, f"nightly/{route}/n=10/{weighting}", seed, spec, 10, weights=weighting == "sample")
