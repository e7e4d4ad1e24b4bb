"""A pytest plugin (entry point ``pytest11``) that puts a team's own BCE under the specification oracle.

* ``assert_bce_matches(loss_fn, y_true, y_pred, **options)``: the loss on those inputs against the documented
  semantics, within the derived error bound; on a mismatch an AssertionError in numpy.testing's shape (the
  tolerance, ``Mismatched elements: k / n``, rows of actual, expected, |diff| and ULP) and, when a catalogued
  hand-written variant reproduces the result, its name and likely cause (``harness.explain``).
* the ``bce`` fixture: the same assertion, and ``bce.expected(...)``, under the profile ``--bce-profile``
  chooses (default: the installed line's, as ``bce-harness run`` chooses it).
* the ``bce_loss`` marker: ``@pytest.mark.bce_loss(loss, max_examples=50, **draw)`` runs the test, then
  ``loss`` on cases the harness's Hypothesis strategies draw (``harness.generate.strategies.cases``), each
  asserted as above; Hypothesis shrinks a failure to a small case.  ``loss`` gets NumPy arrays and the options
  its signature names (from_logits, label_smoothing, axis, reduction, sample_weight); an option it does not
  name is held at Keras's default.  ``factory=`` instead takes a function of ``harness.case.Options``
  returning the loss (``bce-harness run --loss-factory``'s convention), and every option is drawn.

A loss's inputs are rounded to their dtypes first (float32 unless given), as a tensor conversion rounds them.
The plugin imports no framework: the loss under test imports what it needs.  Example: examples/test_custom_loss.py.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from harness.case import Case, Expected, Options, Outcome
from harness.explain import MANUAL_KWARGS, build_case, diagnose, run_manual
from harness.judge.compare import compare
from harness.oracle import expected

__all__ = ["BCEOracle", "assert_bce_matches", "check_case"]

_OPTION_NAMES = ("from_logits", "label_smoothing", "axis", "reduction", "dtype")


def _case(y_true: Any, y_pred: Any, options: Mapping[str, Any]) -> Case:
    opts = dict(options)
    weight = opts.pop("sample_weight", None)
    dtypes = {k: opts.pop(k) for k in ("true_dtype", "pred_dtype", "weight_dtype") if k in opts}
    unknown = set(opts) - set(_OPTION_NAMES)
    if unknown:
        raise TypeError(f"assert_bce_matches() got unknown option(s) {sorted(unknown)}")
    return build_case(
        np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64), options=Options(**opts),
        sample_weight=None if weight is None else np.asarray(weight, dtype=np.float64), **dtypes,
    )  # fmt: skip


def check_case(loss_fn: Callable[..., Any], case: Case, *, profile: str = "keras3", check_dtype: bool = False) -> None:
    """Assert that ``loss_fn`` computes ``case`` as the specification says (see the module docstring)."""
    exp: Expected = expected(case, profile=profile)
    value, dtype, error = run_manual(loss_fn, case)
    outcome = Outcome(error=error) if error is not None else Outcome(value=value, dtype=dtype if check_dtype else exp.dtype)
    comparison = compare(case, exp, outcome, target="your loss")
    if comparison.agrees:
        return
    lines = [f"BCE does not match the {profile} specification", comparison.message]
    if error is None and exp.raises is None:
        d = diagnose(_importable(loss_fn) or loss_fn, case, profile=profile)
        if d.verdict == "departs":
            lines.append("likely cause (bce-harness explain): " + d.message)
        elif d.verdict in ("uncatalogued", "shape", "ended"):
            lines.append("bce-harness explain: " + d.message)
        lines.extend(f"bce-harness explain: warning: {w}" for w in d.warnings)
    raise AssertionError("\n".join(lines))


def _importable(fn: Callable[..., Any]) -> str | None:
    """``module:name`` for a function a child process can import by name (the diagnosis then runs it there, with a
    timeout: harness.run.sandbox); None for a lambda, a closure, a bound method or a ``__main__`` function."""
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or not name.isidentifier() or getattr(sys.modules.get(module), name, None) is not fn:
        return None
    return f"{module}:{name}"


def assert_bce_matches(
    loss_fn: Callable[..., Any], y_true: Any, y_pred: Any, *, profile: str = "keras3", check_dtype: bool = False,
    **options: Any,
) -> None:  # fmt: skip
    """Assert that ``loss_fn(y_true, y_pred, ...)`` is binary cross-entropy with ``options`` (from_logits,
    label_smoothing, axis, reduction, dtype, sample_weight, and true_dtype/pred_dtype/weight_dtype for the
    inputs), within the error bound the specification derives for the compute dtype."""
    check_case(loss_fn, _case(y_true, y_pred, options), profile=profile, check_dtype=check_dtype)


class BCEOracle:
    """What the ``bce`` fixture gives: the oracle under one profile."""

    def __init__(self, profile: str) -> None:
        self.profile = profile

    def expected(self, y_true: Any, y_pred: Any, **options: Any) -> Expected:
        """The specification's value and error bound (or the error the call must raise)."""
        return expected(_case(y_true, y_pred, options), profile=self.profile)

    def assert_matches(self, loss_fn: Callable[..., Any], y_true: Any, y_pred: Any, **options: Any) -> None:
        assert_bce_matches(loss_fn, y_true, y_pred, profile=self.profile, **options)


def _profile(config: pytest.Config) -> str:
    from harness.oracle.profiles import select_profile

    return select_profile(config.getoption("bce_profile")).profile


# -- hooks ---------------------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    from harness.oracle import PROFILES

    group = parser.getgroup("bce-harness")
    group.addoption("--bce-profile", default="auto", choices=["auto", *sorted(PROFILES)],
                    help="semantics the bce fixture and bce_loss marker judge against (default: auto)")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "bce_loss(loss=None, *, factory=None, max_examples=50, **draw): after the test, check `loss` (or "
        "`factory(options)`) on BCE cases Hypothesis draws, against the specification oracle",
    )


@pytest.fixture
def bce(request: pytest.FixtureRequest) -> BCEOracle:
    """The specification oracle: ``bce.assert_matches(loss_fn, y_true, y_pred, **options)``, ``bce.expected``."""
    return BCEOracle(_profile(request.config))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("bce_loss")
    if marker is None:
        return None
    fixtures = pyfuncitem._fixtureinfo.argnames  # as pytest's own pytest_pyfunc_call passes them
    pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in fixtures})
    _check_drawn(marker, _profile(pyfuncitem.config))
    return True


def _check_drawn(marker: pytest.Mark, profile: str) -> None:
    from hypothesis import HealthCheck, given, settings

    from harness.generate.strategies import SHAPE_KINDS, cases

    kwargs = dict(marker.kwargs)
    loss = marker.args[0] if marker.args else kwargs.pop("loss", None)
    factory = kwargs.pop("factory", None)
    max_examples = kwargs.pop("max_examples", 50)
    if (loss is None) == (factory is None):
        raise pytest.UsageError("bce_loss: give the loss (first argument) or factory=, one of them")
    draw: dict[str, Any] = {"pred_dtypes": ("float32", "float64"), "label_dtypes": ("float32", "float64", "int32"),
            "weight_dtypes": ("float32",), "loss_dtypes": (None,), "allow_nan": False,
            "shape_kinds": tuple(k for k in SHAPE_KINDS if not k.startswith("empty"))}  # fmt: skip
    named: set[str] = set(MANUAL_KWARGS)
    if loss is not None:
        named = set(inspect.signature(loss).parameters) & set(MANUAL_KWARGS)
        held: dict[str, dict[str, Any]] = {"from_logits": {"from_logits": (False,)}, "label_smoothing": {"max_label_smoothing": 0.0},
                "reduction": {"reductions": ("sum_over_batch_size",)}, "sample_weight": {"weight_forms": ("none",)}}  # fmt: skip
        for name, restriction in held.items():
            if name not in named:
                draw.update(restriction)
    draw.update(kwargs)
    strategy = cases(**draw)
    if "axis" not in named:
        strategy = strategy.filter(lambda c: c.options.axis == -1)

    @settings(max_examples=max_examples, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
    @given(strategy)
    def drawn(case: Case) -> None:
        from hypothesis import assume

        exp = expected(case, profile=profile)
        assume(exp.raises is None)  # a call Keras must refuse says nothing about a custom loss's values
        check_case(loss if loss is not None else factory(case.options), case, profile=profile)

    drawn()
